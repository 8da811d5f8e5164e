"""The TET loss (Deng et al., ICLR 2022), as used by the paper with STR on top."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def tet_loss(outputs: torch.Tensor, targets: torch.Tensor, lamb: float = 1e-3, means: float = 1.0) -> torch.Tensor:
    """Temporal Efficient Training loss.

        L = (1 - lamb) * (1/T) * sum_t CE(O_t, y) + lamb * MSE(O, means)

    Args:
        outputs: per-step logits O, [T, N, K].
        targets: class indices, [N].
        lamb: weight of the MSE term that pulls every logit towards ``means``.
    Returns:
        scalar loss.
    """
    T, N, K = outputs.shape
    ce = F.cross_entropy(outputs.reshape(T * N, K), targets.repeat(T))  # mean over t and n
    mse = F.mse_loss(outputs, torch.full_like(outputs, means))
    return (1 - lamb) * ce + lamb * mse
