"""Anytime metrics on per-step logits O [T, N, K]: accuracy per step, OCT, cutoff curves.

Accuracies are fractions in [0, 1]; steps are 1-based.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch

from aoi.cutoff import confidence_cutoff


def accumulate(outputs: torch.Tensor) -> torch.Tensor:
    """Y_t = sum_{i<=t} O_i, [T, N, K] -> [T, N, K]."""
    return outputs.cumsum(0)


def accuracy_per_step(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Accuracy of argmax Y_t at each fixed step t, [T] (float fractions)."""
    return (accumulate(outputs).argmax(-1) == targets).float().mean(1)


def optimal_cutoff_timestep(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """OCT per sample, [N] long: the first step from which argmax Y_t stays correct through T;
    T for samples wrong at T. Its mean is the latency lower bound of any cutoff rule."""
    correct = accumulate(outputs).argmax(-1) == targets  # [T, N]
    T = correct.shape[0]
    stays = correct.flip(0).int().cummin(0).values.flip(0)  # correct from t on
    n_stays = stays.sum(0)  # trailing run length
    return torch.where(n_stays > 0, T - n_stays + 1, torch.full_like(n_stays, T)).long()


def cutoff_curve(outputs: torch.Tensor, targets: torch.Tensor, epsilons: Iterable[float]) -> pd.DataFrame:
    """Accuracy against mean exit step as the confidence threshold is swept.

    Returns:
        one row per epsilon: epsilon, accuracy, mean_exit_step, speedup (T / mean exit step),
        accuracy_drop (accuracy at T minus accuracy with cutoff).
    """
    T = outputs.shape[0]
    full = accuracy_per_step(outputs, targets)[-1].item()
    rows = []
    for epsilon in epsilons:
        result = confidence_cutoff(outputs, float(epsilon))
        accuracy = (result.predictions == targets).float().mean().item()
        mean_exit = result.exit_steps.float().mean().item()
        rows.append(
            {
                "epsilon": float(epsilon),
                "accuracy": accuracy,
                "mean_exit_step": mean_exit,
                "speedup": T / mean_exit,
                "accuracy_drop": full - accuracy,
            }
        )
    return pd.DataFrame(rows, columns=["epsilon", "accuracy", "mean_exit_step", "speedup", "accuracy_drop"])
