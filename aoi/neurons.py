"""Leaky integrate-and-fire neurons with hard reset, as in TET and the authors' toolkit.

The neuron, per element and timestep t = 1..T (METHOD.md, "Neuron"):

    u_t = tau * m_{t-1} + x_t           membrane before reset, m_0 = 0
    s_t = H(u_t - theta)                spike (H(0) = 0, as in snnTorch and TET)
    m_t = u_t * (1 - s_t)               membrane after reset (hard reset to zero)

with the triangle surrogate gradient ds/du = max(0, g - |u - theta|) / g^2.

This is exactly snnTorch's ``snn.Leaky(beta=tau, threshold=theta, reset_mechanism="zero")``,
whose returned ``mem`` is u_t. Like snnTorch (and unlike the toolkit) the reset factor
(1 - s_t) is detached from the graph; the gradient difference is documented in the README.

`LIF` runs all T steps in one fused autograd function (`lif_multistep`) and keeps
``snn.Leaky`` as the step-by-step reference (``fused=False``); tests check that both agree
in the forward and the backward pass.

State is explicit: every forward starts from zero unless the neuron is *carrying* state
(`carry_state`), which is how `aoi.anytime` runs a model one timestep at a time.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import snntorch as snn
import torch
from torch import nn


class TriangleSpike(torch.autograd.Function):
    """Heaviside spike of ``v = u - theta`` with the triangle surrogate gradient of width g."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, width: float) -> torch.Tensor:
        ctx.save_for_backward(v)
        ctx.width = width
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (v,) = ctx.saved_tensors
        g = ctx.width
        return grad * (g - v.abs()).clamp(min=0) / g**2, None


def triangle_surrogate(width: float = 1.0):
    """A spike function ``v -> H(v)`` for snnTorch's ``spike_grad`` with the triangle surrogate."""

    def spike(v: torch.Tensor) -> torch.Tensor:
        return TriangleSpike.apply(v, width)

    return spike


class _LIFMultistep(torch.autograd.Function):
    """All T steps of the LIF in one autograd node. Saves only u [T, ...] for the backward."""

    @staticmethod
    def forward(ctx, x, m0, tau, theta, width, record):
        u_all = torch.empty_like(x)
        m = m0
        for t in range(x.shape[0]):
            u = torch.add(x[t], m, alpha=tau, out=u_all[t])
            m = u.masked_fill(u > theta, 0.0)
        fired = u_all > theta
        spikes = fired.to(x.dtype)
        membrane = u_all.masked_fill(fired, 0.0) if record else x.new_empty(0)
        ctx.save_for_backward(u_all)
        ctx.tau, ctx.theta, ctx.width = tau, theta, width
        ctx.mark_non_differentiable(m)
        return spikes, membrane, m

    @staticmethod
    def backward(ctx, grad_spikes, grad_membrane, _grad_state):
        (u_all,) = ctx.saved_tensors
        tau, theta, g = ctx.tau, ctx.theta, ctx.width
        silent = (u_all <= theta).to(u_all.dtype)  # d m_t / d u_t = 1 - s_t (reset detached)
        grad_u = grad_spikes * (g - (u_all - theta).abs()).clamp(min=0) / g**2
        if grad_membrane is not None and grad_membrane.numel():
            grad_u = grad_u + grad_membrane * silent
        grad_x = torch.empty_like(u_all)
        carried = torch.zeros_like(u_all[0])  # dL/du_{t+1} * tau, flowing back through m_t
        for t in range(u_all.shape[0] - 1, -1, -1):
            torch.addcmul(grad_u[t], carried, silent[t], out=grad_x[t])
            carried = grad_x[t] * tau
        return grad_x, carried, None, None, None, None


def lif_multistep(x: torch.Tensor, m0: torch.Tensor | None = None, tau: float = 0.5,
                  theta: float = 1.0, width: float = 1.0, record: bool = False):
    """Run the LIF over all steps of ``x``.

    Args:
        x: input currents [T, N, ...].
        m0: membrane after reset before step 1, [N, ...] (zeros when None).
        record: also return the post-reset membrane.
    Returns:
        spikes [T, N, ...] (0/1, dtype of x), post-reset membrane [T, N, ...] (empty tensor
        unless ``record``), and the post-reset membrane after the last step [N, ...] (detached).
    """
    if m0 is None:
        m0 = torch.zeros_like(x[0])
    return _LIFMultistep.apply(x, m0, float(tau), float(theta), float(width), bool(record))


class LIF(nn.Module):
    """Multistep LIF layer: [T, N, ...] input currents -> [T, N, ...] spikes.

    After a forward with ``record = True``, ``spikes`` and ``membrane`` (post-reset, in the
    same units as the input) hold that call's [T, N, ...] tensors, with their graph, for STR.
    With ``carry_state = True`` each forward starts from ``state`` (post-reset membrane [N, ...]
    left by the previous call) instead of zero; `streaming` sets this up for a whole model.
    """

    def __init__(self, tau: float = 0.5, threshold: float = 1.0, width: float = 1.0,
                 fused: bool = True):
        super().__init__()
        self.tau, self.threshold, self.width, self.fused = float(tau), float(threshold), float(width), fused
        self.record = False
        self.carry_state = False
        self.state: torch.Tensor | None = None
        self.spikes: torch.Tensor | None = None
        self.membrane: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"tau={self.tau}, threshold={self.threshold}, width={self.width}, fused={self.fused}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m0 = self.state if self.carry_state and self.state is not None else None
        if self.fused:
            spikes, membrane, last = lif_multistep(x, m0, self.tau, self.threshold, self.width, self.record)
        else:
            spikes, membrane, last = self._forward_snntorch(x, m0)
        self.state = last.detach() if self.carry_state else None
        self.spikes, self.membrane = (spikes, membrane) if self.record else (None, None)
        return spikes

    def _forward_snntorch(self, x: torch.Tensor, m0: torch.Tensor | None):
        """Reference path: snnTorch's ``Leaky`` stepped over time (the time loop made visible)."""
        leaky = snn.Leaky(beta=self.tau, threshold=self.threshold, reset_mechanism="zero",
                          spike_grad=triangle_surrogate(self.width))
        snn.SpikingNeuron.instances.remove(leaky)  # we own the state; keep snnTorch's global list clean
        leaky = leaky.to(x.device)
        # snnTorch's state is the pre-reset potential; a post-reset m0 is an equivalent start.
        mem = torch.zeros_like(x[0]) if m0 is None else m0
        spikes, potentials = [], []
        for t in range(x.shape[0]):
            spk, mem = leaky(x[t], mem)
            spikes.append(spk)
            potentials.append(mem)
        spikes, potentials = torch.stack(spikes), torch.stack(potentials)
        membrane = potentials * (1 - spikes.detach())
        return spikes, membrane, membrane[-1]

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One timestep with carried state: [N, ...] -> spikes [N, ...]."""
        carry, self.carry_state = self.carry_state, True
        try:
            return self.forward(x.unsqueeze(0))[0]
        finally:
            self.carry_state = carry

    def reset(self) -> None:
        """Forget the carried state and the recorded tensors."""
        self.state = self.spikes = self.membrane = None


def lif_layers(model: nn.Module) -> list[LIF]:
    """Every `LIF` in ``model`` in registration order (nested ones included)."""
    return [m for m in model.modules() if isinstance(m, LIF)]


def reset_state(model: nn.Module) -> None:
    """Reset every `LIF` of ``model`` (and only of ``model``)."""
    for lif in lif_layers(model):
        lif.reset()


def set_recording(model: nn.Module, record: bool = True) -> None:
    """Make every `LIF` of ``model`` keep (or drop) its spikes and membrane for STR."""
    for lif in lif_layers(model):
        lif.record = record
        if not record:
            lif.spikes = lif.membrane = None


@contextlib.contextmanager
def streaming(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` one timestep at a time: inside the block every `LIF` carries its state
    from one forward to the next, starting from zero. Feed inputs of shape [1, N, ...]."""
    layers = lif_layers(model)
    for lif in layers:
        lif.reset()
        lif.carry_state = True
    try:
        yield model
    finally:
        for lif in layers:
            lif.carry_state = False
            lif.reset()


def keep_samples(model: nn.Module, index: torch.Tensor) -> None:
    """Keep only the samples ``index`` (a [N'] long or [N] bool tensor) in every carried state."""
    for lif in lif_layers(model):
        if lif.state is not None:
            lif.state = lif.state[index]


def append_samples(model: nn.Module, count: int) -> None:
    """Add ``count`` samples at rest (zero membrane) after the carried ones: state [n, ...] -> [n + count, ...]."""
    for lif in lif_layers(model):
        if lif.state is not None:
            lif.state = torch.cat([lif.state, lif.state.new_zeros(count, *lif.state.shape[1:])])
