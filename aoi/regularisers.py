"""The Spatial-Temporal Regulariser (STR).

The paper's exact STR formula is not published anywhere we can reach. This module follows the
authors' released code path (the RCS regulariser of their SNNCutoff toolkit, METHOD.md "STR"):

    r_t    = s_t + ReLU(m_t)                       per layer; m_t post-reset membrane / theta
    r_d    = mean of r_t over the last int(beta*T) steps (all if 0), gradient stopped
    cs_t   = cos(r_t, r_d) over all non-time, non-batch dims, norms sqrt(sum x^2 + 1e-5)
    STF    = 1 / (mean_t cs_t + 1e-5)                                   [N] per layer
    mask_n = 1 if argmax O_t == y_n at each of the last int(window*T) steps (all if 0)
    L_STR  = mean over layers of max over the batch of mask_n * STF_n
"""
from __future__ import annotations

import torch
from torch import nn

from aoi.neurons import lif_layers

NORM_EPS = 1e-5
FACTOR_EPS = 1e-5


def last_steps(T: int, fraction: float) -> int:
    """Number of final steps a window ``fraction`` of T covers: int(fraction*T), or T if that is 0."""
    return int(fraction * T) or T


def cosine_similarity_per_step(spikes: torch.Tensor, membrane: torch.Tensor,
                               beta: float = 0.3) -> torch.Tensor:
    """cs_t: similarity of each step's soft spike r_t to the late-step reference r_d.

    Args:
        spikes: s, [T, N, ...] (0/1).
        membrane: post-reset membrane in units of the threshold, [T, N, ...].
        beta: fraction of the final steps averaged into the reference r_d.
    Returns:
        [T, N] cosine similarities.
    """
    r = spikes + torch.relu(membrane)
    T = r.shape[0]
    r_ref = r[T - last_steps(T, beta):].mean(0, keepdim=True).detach()
    dims = tuple(range(2, r.dim()))
    norm_r = (r.pow(2).sum(dims) + NORM_EPS).sqrt()
    norm_ref = (r_ref.pow(2).sum(dims) + NORM_EPS).sqrt()
    return (r * r_ref).sum(dims) / (norm_r * norm_ref)


def spatial_temporal_factor(spikes: torch.Tensor, membrane: torch.Tensor,
                            beta: float = 0.3) -> torch.Tensor:
    """STF of one layer: 1 / (mean_t cs_t + 1e-5), [N]. Arguments as `cosine_similarity_per_step`."""
    return 1.0 / (cosine_similarity_per_step(spikes, membrane, beta).mean(0) + FACTOR_EPS)


def collect_factors(model: nn.Module, beta: float = 0.3) -> torch.Tensor:
    """STF of every `LIF` of ``model`` after its last forward, [N, L] (layers in registration order).

    Needs ``aoi.neurons.set_recording(model, True)`` before that forward.
    """
    factors = []
    for lif in lif_layers(model):
        if lif.spikes is None:
            raise RuntimeError("no recorded LIF state: call aoi.neurons.set_recording(model, True) "
                               "before the forward whose STR you want")
        factors.append(spatial_temporal_factor(lif.spikes, lif.membrane / lif.threshold, beta))
    if not factors:
        raise ValueError("model has no aoi.neurons.LIF layers: STR needs spiking layers")
    return torch.stack(factors, dim=1)


def str_loss(outputs: torch.Tensor, targets: torch.Tensor, factors: torch.Tensor,
             window: float = 0.3) -> torch.Tensor:
    """L_STR: mean over layers of the largest STF among samples predicted right late in time.

    Args:
        outputs: per-step logits O, [T, N, K].
        targets: class indices, [N].
        factors: STF per sample and layer, [N, L] (`collect_factors`).
        window: fraction of the final steps at which the per-step prediction must be right.
    Returns:
        scalar; 0 when no sample qualifies.
    """
    T = outputs.shape[0]
    correct = outputs[T - last_steps(T, window):].argmax(-1) == targets  # [w, N]
    mask = correct.all(0).to(factors.dtype).detach()                        # [N]
    return (mask[:, None] * factors).max(0).values.mean()
