"""Cutoff rules and Top-K calibration on outputs whose exits are worked out by hand."""

import math

import pytest
import torch

from aoi.cutoff import (
    CutoffError,
    calibrate_topk_thresholds,
    confidence_cutoff,
    confidence_stop,
    topk_cutoff,
    topk_stop,
)


def example_outputs():
    """T=3, N=3, K=2 per-step logits.
    sample 0: Y = [3,0], [3,0], [3,0]          max softmax at t=1: 1/(1+e^-3) = 0.953
    sample 1: Y = [0.5,0], [2.5,0], [2.5,0]    0.622, then 0.924
    sample 2: Y = [0,0.1], [0,0.2], [0,0.3]    never above 0.58
    """
    return torch.tensor(
        [
            [[3.0, 0.0], [0.5, 0.0], [0.0, 0.1]],
            [[0.0, 0.0], [2.0, 0.0], [0.0, 0.1]],
            [[0.0, 0.0], [0.0, 0.0], [0.0, 0.1]],
        ]
    )


def test_confidence_exits_by_hand():
    result = confidence_cutoff(example_outputs(), epsilon=0.1)  # exit when max softmax > 0.9
    assert result.exit_steps.tolist() == [1, 2, 3]
    assert result.predictions.tolist() == [0, 0, 1]
    assert confidence_cutoff(example_outputs(), epsilon=0.05).exit_steps.tolist() == [1, 3, 3]


def test_epsilon_zero_runs_every_sample_to_T():
    outputs = torch.tensor([[[50.0, 0.0]], [[50.0, 0.0]]])  # softmax rounds to exactly 1.0
    assert confidence_cutoff(outputs, 0.0).exit_steps.tolist() == [2]
    assert confidence_cutoff(example_outputs(), 0.0).exit_steps.tolist() == [3, 3, 3]


def test_stop_rules_on_one_step():
    y = torch.tensor([[math.log(9.0) + 1e-3, 0.0], [math.log(9.0) - 1e-3, 0.0]])
    assert confidence_stop(y, 0.1).tolist() == [True, False]  # softmax 0.9 is the boundary
    assert topk_stop(torch.tensor([[5.0, 1.0, 3.0]]), 1.9).tolist() == [True]
    assert topk_stop(torch.tensor([[5.0, 1.0, 3.0]]), 2.0).tolist() == [False]


def test_topk_exits_by_hand():
    # gaps of Y: sample 0: 3, 3, 3; sample 1: 0.5, 2.5, 2.5; sample 2: 0.1, 0.2, 0.3
    result = topk_cutoff(example_outputs(), [2.5, 2.0, 10.0])
    assert result.exit_steps.tolist() == [1, 2, 3]
    assert result.predictions.tolist() == [0, 0, 1]


def test_bad_arguments_say_what_to_do():
    with pytest.raises(CutoffError, match="epsilon"):
        confidence_cutoff(example_outputs(), 1.0)
    with pytest.raises(CutoffError, match="one value per step"):
        topk_cutoff(example_outputs(), [1.0, 2.0])
    with pytest.raises(CutoffError, match=r"must be finite, one value per step \(3\), got \[1.0, nan, 2.0\]"):
        topk_cutoff(example_outputs(), [1.0, math.nan, 2.0])  # NaN would never fire


def test_outputs_that_are_not_finite_per_step_logits_are_refused():
    outputs = example_outputs()
    outputs[1, 2, 0] = math.nan  # NaN never fires: sample 2 would run to T and predict class 0
    for cutoff in (lambda o: confidence_cutoff(o, 0.1), lambda o: topk_cutoff(o, [1.0, 1.0, 1.0])):
        with pytest.raises(CutoffError, match=r"^outputs hold 1 NaN or infinite values \(of 18\): check the"):
            cutoff(outputs)
        with pytest.raises(CutoffError, match=r"^outputs must be per-step logits \[T, N, K\], got shape \(3, 2\)$"):
            cutoff(example_outputs()[-1])  # the logits [N, K] of one step


def test_topk_calibration_by_hand():
    """T=2, N=4, targets 0, logits [a, 0] (gap |a|, right when a > 0).
    A: Y = 4, 4    safe at t=1, 2         gaps 4, 4
    B: Y = 2, -1   safe at neither        gaps 2, 1
    C: Y = 1, 2    safe at t=1, 2         gaps 1, 2
    D: Y = -1, 2   safe at t=2 only       gaps 1, 2
    Candidates (bins=3, gaps from 1 to 4): 1, 2, 3.
    t=1: beta=1 lets A, B exit (1 of 2 safe); beta=2 lets A exit (safe) -> 2.
    t=2: beta=1 lets A, C, D exit, all safe -> 1.
    """
    a = torch.tensor([[4.0, 2.0, 1.0, -1.0], [0.0, -3.0, 1.0, 3.0]])
    outputs = torch.stack([a, torch.zeros_like(a)], dim=-1)
    targets = torch.zeros(4, dtype=torch.long)
    assert calibrate_topk_thresholds(outputs, targets, bins=3).tolist() == [2.0, 1.0]
    assert calibrate_topk_thresholds(outputs, targets, precision=0.5, bins=3).tolist() == [1.0, 1.0]


def test_topk_exits_by_hand_with_more_steps_than_samples():
    """T=4, N=2, K=3 (T != N: a step axis read as the sample axis fails here).
    sample 0: O = [1,0,0], 0, [0,2,0], 0  ->  Y = [1,0,0], [1,0,0], [1,2,0], [1,2,0]      gaps 1, 1, 1, 1
    sample 1: O = [0,0,.2], [0,0,.2], [0,3,0], 0  ->  Y_3 = [0,3,.4]                       gaps .2, .4, 2.6, 2.6
    thresholds 1.5, 0.5, 0.5, 10: sample 0 exits at 2 (1 > 0.5) predicting 0, sample 1 at 3 predicting 1."""
    outputs = torch.zeros(4, 2, 3)
    outputs[0, 0, 0], outputs[2, 0, 1] = 1.0, 2.0
    outputs[0, 1, 2] = outputs[1, 1, 2] = 0.2
    outputs[2, 1, 1] = 3.0
    result = topk_cutoff(outputs, [1.5, 0.5, 0.5, 10.0])
    assert result.exit_steps.tolist() == [2, 3] and result.predictions.tolist() == [0, 1]
    never = topk_cutoff(outputs, [10.0] * 4)  # no rule fires: both run to T = 4, argmax Y_4
    assert never.exit_steps.tolist() == [4, 4] and never.predictions.tolist() == [1, 1]


def test_topk_calibration_falls_back_to_the_largest_candidate_when_no_exit_qualifies():
    """T=3, N=2, targets 0, logits [a, 0] (gap |Y|, right when Y > 0); bins=4 over gaps 0.5..4.5:
    candidates 0.5, 1.5, 2.5, 3.5.
    sample 0: Y = -0.5, 4.5, 4.5     safe at t=2, 3
    sample 1: Y = -1.5, 2.5, -0.5    safe at no step
    t=1: 0.5 lets sample 1 exit, unsafe; from 1.5 nobody exits, and an exit is required: no candidate
         qualifies, the fallback is the largest, 3.5 (1.5 if no exit counted as safe, 0.5 without the fallback).
    t=2: 0.5 and 1.5 let both exit (1 of 2 safe); 2.5 lets sample 0 exit, safe -> 2.5 (precision 0.5: 0.5).
    t=3: 0.5 lets sample 0 exit (0.5 is not > 0.5), safe -> 0.5."""
    a = torch.tensor([[-0.5, -1.5], [5.0, 4.0], [0.0, -3.0]])  # [T, N] per-step outputs of class 0
    outputs = torch.stack([a, torch.zeros_like(a)], dim=-1)
    targets = torch.zeros(2, dtype=torch.long)
    assert calibrate_topk_thresholds(outputs, targets, bins=4).tolist() == [3.5, 2.5, 0.5]
    assert calibrate_topk_thresholds(outputs, targets, precision=0.5, bins=4).tolist() == [3.5, 0.5, 0.5]
