"""The Spatial-Temporal Regulariser (STR).

The paper's exact STR formula is not published anywhere we can reach. This module follows the
authors' released code path (the RCS regulariser of their SNNCutoff toolkit, docs/method.md "STR"):

    r_t    = s_t + ReLU(m_t / theta)               per layer, m_t the post-reset membrane (the
                                                   soft spikes, computed by the LIF: aoi.lif_scan)
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


class _CosineToReference(torch.autograd.Function):
    """cs[t, n] = <r[t, n], ref[n]> / (sqrt(|r[t, n]|^2 + eps) sqrt(|ref[n]|^2 + eps)), r [T, N, F],
    ref [N, F] treated as a constant; the backward is one fused expression (two passes over r)."""

    @staticmethod
    def forward(ctx, r, ref):
        dot = (r * ref).sum(-1)
        norm_r = ((r * r).sum(-1) + NORM_EPS).sqrt()
        norm_ref = ((ref * ref).sum(-1) + NORM_EPS).sqrt()
        ctx.save_for_backward(r, ref, dot, norm_r, norm_ref)
        return dot / (norm_r * norm_ref)

    @staticmethod
    def backward(ctx, grad):
        r, ref, dot, norm_r, norm_ref = ctx.saved_tensors
        # d cs / d r = ref / (|r| |ref|) - dot * r / (|r|^3 |ref|)
        along_ref = grad / (norm_r * norm_ref)
        along_r = -along_ref * dot / norm_r**2
        return (ref * along_ref[..., None]).addcmul_(r, along_r[..., None]), None


def soft_spike_similarity(soft_spikes: torch.Tensor, beta: float = 0.3) -> torch.Tensor:
    """cs_t: cosine similarity of each step's soft spikes r_t to the late-step reference r_d.

    Args:
        soft_spikes: r = s + ReLU(m / theta), [T, N, ...].
        beta: fraction of the final steps averaged into the reference r_d (gradient stopped).
    Returns:
        [T, N].
    """
    r = soft_spikes.flatten(2)  # [T, N, F]
    T = r.shape[0]
    r_ref = r[T - last_steps(T, beta) :].mean(0).detach()  # [N, F]
    return _CosineToReference.apply(r, r_ref)


def stf_from_similarity(similarity: torch.Tensor) -> torch.Tensor:
    """STF = 1 / (mean_t cs_t + 1e-5), [T, N] -> [N]."""
    return 1.0 / (similarity.mean(0) + FACTOR_EPS)


def spatial_temporal_factor(soft_spikes: torch.Tensor, beta: float = 0.3) -> torch.Tensor:
    """STF of one layer, [N], from its soft spikes r [T, N, ...] (`soft_spike_similarity`)."""
    return stf_from_similarity(soft_spike_similarity(soft_spikes, beta))


def collect_factors(model: nn.Module, beta: float = 0.3) -> torch.Tensor:
    """STF of every `LIF` of ``model`` after its last forward, [N, L] (layers in registration order).

    Uses each layer's recorded soft spikes (computed inside the fused LIF, with their gradient);
    needs ``aoi.neurons.set_recording(model, True)`` before that forward.
    """
    factors = []
    for lif in lif_layers(model):
        if lif.soft_spikes is None:
            raise RuntimeError(
                "no recorded LIF state: call aoi.neurons.set_recording(model, True) "
                "before the forward whose STR you want"
            )
        factors.append(spatial_temporal_factor(lif.soft_spikes, beta))
    if not factors:
        raise ValueError("model has no aoi.neurons.LIF layers: STR needs spiking layers")
    return torch.stack(factors, dim=1)


def str_loss(outputs: torch.Tensor, targets: torch.Tensor, factors: torch.Tensor, window: float = 0.3) -> torch.Tensor:
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
    correct = outputs[T - last_steps(T, window) :].argmax(-1) == targets  # [w, N]
    mask = correct.all(0).to(factors.dtype).detach()  # [N]
    return (mask[:, None] * factors).max(0).values.mean()
