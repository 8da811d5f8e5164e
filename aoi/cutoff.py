"""Cutoff rules: when to stop a sample's inference, read on the accumulated output Y_t.

Each rule is a per-step predicate on Y_t [N, K] (used as is by the streaming engine
`aoi.anytime`) and a post-hoc function over the full-T outputs [T, N, K]. A sample exits at
the first step t (1-based) where its rule fires, else at T, and predicts argmax Y_t there.
Outputs that are not [T, N, K] or hold NaN or infinite values, and thresholds that are not
finite, are a `CutoffError` (NaN never fires a rule: every sample would run to T and predict class 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from aoi.errors import UserError


class CutoffError(UserError, ValueError):
    """Outputs or rule parameters a cutoff rule cannot use; the message says what it takes."""


class CutoffResult(NamedTuple):
    exit_steps: torch.Tensor  # [N] long, 1-based
    predictions: torch.Tensor  # [N] long, argmax of Y at the exit step


def confidence_stop(accumulated: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The paper's rule: max softmax(Y_t) > 1 - epsilon. [N, K] -> bool [N]."""
    return accumulated.softmax(-1).amax(-1) > 1 - epsilon


def topk_gap(accumulated: torch.Tensor) -> torch.Tensor:
    """top1 - top2 of Y_t, [N, K] -> [N]."""
    top2 = accumulated.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def topk_stop(accumulated: torch.Tensor, threshold: float) -> torch.Tensor:
    """The predecessor's rule: top1(Y_t) - top2(Y_t) > threshold. [N, K] -> bool [N]."""
    return topk_gap(accumulated) > threshold


def check_outputs(outputs: torch.Tensor) -> None:
    """A `CutoffError` unless ``outputs`` are finite per-step logits [T, N, K]."""
    if outputs.dim() != 3 or 0 in outputs.shape:
        raise CutoffError(f"outputs must be per-step logits [T, N, K], got shape {tuple(outputs.shape)}")
    bad = int((~torch.isfinite(outputs)).sum())
    if bad:
        raise CutoffError(
            f"outputs hold {bad} NaN or infinite values (of {outputs.numel()}): check the model's weights and inputs"
        )


def _first_exit(outputs: torch.Tensor, stop: Callable[[int, torch.Tensor], torch.Tensor]) -> CutoffResult:
    check_outputs(outputs)
    accumulated = outputs.cumsum(0)
    T, N = outputs.shape[:2]
    fired = torch.stack([stop(t, accumulated[t]) for t in range(T)])  # [T, N]
    fired[-1] = True
    exit_index = fired.int().argmax(0)  # first True
    predictions = accumulated[exit_index, torch.arange(N)].argmax(-1)
    return CutoffResult(exit_index + 1, predictions)


def confidence_cutoff(outputs: torch.Tensor, epsilon: float) -> CutoffResult:
    """Exit steps and predictions of the confidence rule on per-step logits [T, N, K]."""
    if not 0 <= epsilon < 1:
        raise CutoffError(f"epsilon must be in [0, 1), got {epsilon}")
    return _first_exit(outputs, lambda t, y: confidence_stop(y, epsilon))


def topk_cutoff(outputs: torch.Tensor, thresholds) -> CutoffResult:
    """Exit steps and predictions of the Top-K gap rule with per-step thresholds [T]."""
    thresholds = torch.as_tensor(thresholds, dtype=outputs.dtype)
    if thresholds.shape != (outputs.shape[0],) or not torch.isfinite(thresholds).all():
        raise CutoffError(
            f"thresholds must be finite, one value per step ({outputs.shape[0]}), got {thresholds.tolist()}"
        )
    return _first_exit(outputs, lambda t, y: topk_stop(y, thresholds[t]))


def calibrate_topk_thresholds(
    outputs: torch.Tensor, targets: torch.Tensor, precision: float = 1.0, bins: int = 100
) -> torch.Tensor:
    """Per-step Top-K gap thresholds beta_t, calibrated on training outputs (SNNCutoff's procedure).

    A sample is *safe* at step t when argmax Y stays correct from t through T. Candidate
    thresholds are ``bins`` evenly spaced values from the smallest to the largest gap seen;
    beta_t is the smallest candidate whose exits at step t (gap > beta) are at least one and
    safe with at least ``precision``; when none is, the largest candidate (as the toolkit does).

    Args:
        outputs: per-step logits [T, N, K] of the calibration (training) set.
        targets: [N].
    Returns:
        thresholds [T].
    """
    accumulated = outputs.cumsum(0)
    gaps = topk_gap(accumulated)  # [T, N]
    correct = accumulated.argmax(-1) == targets  # [T, N]
    safe = correct.flip(0).int().cummin(0).values.flip(0).bool()  # correct from t through T
    candidates = gaps.min() + (gaps.max() - gaps.min()) / bins * torch.arange(bins, dtype=gaps.dtype)
    exits = gaps[None] > candidates[:, None, None]  # [B, T, N]
    n_exit = exits.sum(-1)
    n_safe = (exits & safe[None]).sum(-1)
    ok = (n_exit > 0) & (n_safe >= precision * n_exit)  # [B, T]
    ok[-1] = True
    return candidates[ok.int().argmax(0)]
