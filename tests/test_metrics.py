"""Per-step accuracy, OCT and cutoff curves on outputs worked out by hand."""

import pytest
import torch

from aoi.metrics import accumulate, accuracy_per_step, cutoff_curve, optimal_cutoff_timestep


def example():
    """T=3, N=4, K=2; targets [0, 0, 1, 1].
    sample 0: Y = [3,0] throughout                       right from t=1
    sample 1: Y = [0.5,0], [2.5,0], [2.5,0]              right from t=1
    sample 2: Y = [0,0.1], [0,0.2], [0,0.3]              right from t=1
    sample 3: Y = [2.5,0], [2.5,5], [2.5,5]              wrong at t=1, right from t=2
    """
    outputs = torch.tensor(
        [
            [[3.0, 0.0], [0.5, 0.0], [0.0, 0.1], [2.5, 0.0]],
            [[0.0, 0.0], [2.0, 0.0], [0.0, 0.1], [0.0, 5.0]],
            [[0.0, 0.0], [0.0, 0.0], [0.0, 0.1], [0.0, 0.0]],
        ]
    )
    return outputs, torch.tensor([0, 0, 1, 1])


def test_accumulate_and_accuracy_per_step():
    outputs, targets = example()
    assert accumulate(outputs)[1, 3].tolist() == [2.5, 5.0]
    assert accuracy_per_step(outputs, targets).tolist() == [0.75, 1.0, 1.0]


def test_optimal_cutoff_timestep():
    outputs, targets = example()
    assert optimal_cutoff_timestep(outputs, targets).tolist() == [1, 1, 1, 2]


def test_oct_patterns():
    # per-step correctness patterns (accumulated argmax): FTT -> 2, TFT -> 3, TTT -> 1, TTF -> T=3
    right, wrong = [1.0, 0.0], [-1.0, 0.0]
    patterns = [[wrong, right, right], [right, wrong, right], [right, right, right], [right, right, wrong]]
    Y = torch.tensor(patterns).transpose(0, 1)  # [T, N, 2] accumulated
    outputs = torch.cat([Y[:1], Y[1:] - Y[:-1]])  # per-step outputs
    targets = torch.zeros(4, dtype=torch.long)
    assert optimal_cutoff_timestep(outputs, targets).tolist() == [2, 3, 1, 3]


def test_cutoff_curve_by_hand():
    outputs, targets = example()
    curve = cutoff_curve(outputs, targets, [0.0, 0.1])
    assert list(curve.columns) == ["epsilon", "accuracy", "mean_exit_step", "speedup", "accuracy_drop"]
    eps0, eps1 = curve.iloc[0], curve.iloc[1]
    assert (eps0.accuracy, eps0.mean_exit_step, eps0.speedup, eps0.accuracy_drop) == (1.0, 3.0, 1.0, 0.0)
    # epsilon 0.1: exits [1, 2, 3, 1]; sample 3 leaves at t=1 with the wrong class
    assert eps1.accuracy == 0.75
    assert eps1.mean_exit_step == 1.75
    assert eps1.speedup == pytest.approx(3 / 1.75)
    assert eps1.accuracy_drop == pytest.approx(0.25)
