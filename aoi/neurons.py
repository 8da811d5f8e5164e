"""Leaky integrate-and-fire neurons with hard reset, as in TET and the authors' toolkit.

The neuron, per element and timestep t = 1..T (METHOD.md, "Neuron"):

    u_t = tau * m_{t-1} + x_t           membrane before reset, m_0 = 0
    s_t = H(u_t - theta)                spike (H(0) = 0, as in snnTorch and TET)
    m_t = u_t * (1 - s_t)               membrane after reset (hard reset to zero)

with the triangle surrogate gradient ds/du = max(0, g - |u - theta|) / g^2.

This is exactly snnTorch's ``snn.Leaky(beta=tau, threshold=theta, reset_mechanism="zero")``,
whose returned ``mem`` is u_t. Like snnTorch (and unlike the toolkit) the reset factor
(1 - s_t) is detached from the graph; the gradient difference is documented in the README.

`LIF` runs all T steps in one fused autograd function (`lif_multistep`): on the CPU each
element's time loop runs in a compiled (numba) kernel, one pass over memory per direction; on
GPUs as a PyTorch loop over t. It keeps ``snn.Leaky`` as the step-by-step reference
(``fused=False``); tests check that all three agree in the forward and the backward pass.

State is explicit: every forward starts from zero unless the neuron is *carrying* state
(`carry_state`), which is how `aoi.anytime` runs a model one timestep at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numba
import numpy as np
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


_ZERO, _ONE = np.float32(0.0), np.float32(1.0)  # the CPU kernels compute in float32, as PyTorch does
_BLOCK = 4096  # elements per kernel task: the state of a block stays in cache and the inner loop vectorises


@numba.njit(parallel=True, cache=True)
def _scan_forward_cpu(x, m0, tau, theta, record, u_out, s_out, r_out, m_last):
    """CPU kernel of the forward scan: x [T, M], m0 [M] -> u, s (and r if ``record``) [T, M], m_T [M].
    One pass over memory: each block of elements runs all T steps with its state in cache."""
    T, M = x.shape
    for b in numba.prange((M + _BLOCK - 1) // _BLOCK):
        lo, hi = b * _BLOCK, min((b + 1) * _BLOCK, M)
        m = m0[lo:hi].copy()
        for t in range(T):
            x_t, u_t, s_t, r_t = x[t, lo:hi], u_out[t, lo:hi], s_out[t, lo:hi], r_out[t, lo:hi]
            for j in range(hi - lo):
                u = x_t[j] + tau * m[j]
                u_t[j] = u
                fired = u > theta
                s_t[j] = _ONE if fired else _ZERO
                m[j] = _ZERO if fired else u
                if record:
                    r_t[j] = _ONE if fired else max(u, _ZERO) / theta
        m_last[lo:hi] = m


@numba.njit(parallel=True, cache=True)
def _scan_backward_cpu(u, grad_s, grad_r, has_grad_r, tau, theta, width, grad_x, grad_m0):
    """CPU kernel of the backward scan, [T, M] tensors: dL/dx_t = dL/du_t, from t = T down to 1."""
    T, M = u.shape
    scale = _ONE / (width * width)
    for b in numba.prange((M + _BLOCK - 1) // _BLOCK):
        lo, hi = b * _BLOCK, min((b + 1) * _BLOCK, M)
        carried = np.zeros(hi - lo, dtype=np.float32)  # tau * dL/du_{t+1}, flowing back through m_t
        for t in range(T - 1, -1, -1):
            u_t, gs_t, gr_t, gx_t = u[t, lo:hi], grad_s[t, lo:hi], grad_r[t, lo:hi], grad_x[t, lo:hi]
            for j in range(hi - lo):
                v = u_t[j] - theta
                surrogate = max(width - abs(v), _ZERO) * scale
                g = gs_t[j] * surrogate
                if has_grad_r:  # r = s + ReLU(m / theta)
                    g += gr_t[j] * surrogate
                if v <= _ZERO:  # silent: m_t = u_t (the reset factor is detached)
                    g += carried[j]
                    if has_grad_r and u_t[j] > _ZERO:
                        g += gr_t[j] / theta
                gx_t[j] = g
                carried[j] = tau * g
        grad_m0[lo:hi] = carried


def _use_cpu_kernel(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32


def _soft_spikes(u: torch.Tensor, theta: float) -> torch.Tensor:
    """r = s + ReLU(m / theta) from the pre-reset potential u: 1 where fired, else ReLU(u) / theta."""
    return torch.where(u > theta, torch.ones_like(u), u.clamp(min=0) / theta)


def _scan_forward(x, m0, tau, theta, record):
    """u [T, ...] (pre-reset potentials), spikes, soft spikes (empty unless ``record``), last m [...]."""
    if _use_cpu_kernel(x):
        x2, m2 = x.detach().contiguous().view(x.shape[0], -1), m0.detach().contiguous().view(-1)
        u, spikes, last = torch.empty_like(x2), torch.empty_like(x2), torch.empty_like(m2)
        soft = torch.empty_like(x2) if record else spikes
        numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        _scan_forward_cpu(
            x2.numpy(),
            m2.numpy(),
            np.float32(tau),
            np.float32(theta),
            record,
            u.numpy(),
            spikes.numpy(),
            soft.numpy(),
            last.numpy(),
        )
        soft = soft.view(x.shape) if record else x.new_empty(0)
        return u.view(x.shape), spikes.view(x.shape), soft, last.view(m0.shape)
    u = torch.empty_like(x)
    m = m0
    for t in range(x.shape[0]):
        torch.add(x[t], m, alpha=tau, out=u[t])
        m = u[t].masked_fill(u[t] > theta, 0.0)
    soft = _soft_spikes(u, theta) if record else x.new_empty(0)
    return u, (u > theta).to(x.dtype), soft, m


def _scan_backward(u, grad_spikes, grad_soft, tau, theta, width):
    """dL/dx [T, ...] and dL/dm0 [...] from the gradients of the spikes and the soft spikes."""
    has_grad_soft = grad_soft is not None and grad_soft.numel() > 0
    if _use_cpu_kernel(u):
        shape = u.shape
        u2 = u.view(shape[0], -1)
        gs = grad_spikes.contiguous().view_as(u2)
        gr = grad_soft.contiguous().view_as(u2) if has_grad_soft else gs
        grad_x, grad_m0 = torch.empty_like(u2), torch.empty_like(u2[0])
        numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        _scan_backward_cpu(
            u2.numpy(),
            gs.numpy(),
            gr.numpy(),
            has_grad_soft,
            np.float32(tau),
            np.float32(theta),
            np.float32(width),
            grad_x.numpy(),
            grad_m0.numpy(),
        )
        return grad_x.view(shape), grad_m0.view(shape[1:])
    silent = (u <= theta).to(u.dtype)
    surrogate = (width - (u - theta).abs()).clamp(min=0) / width**2
    grad_u = grad_spikes * surrogate
    if has_grad_soft:
        grad_u = grad_u + grad_soft * (surrogate + silent * (u > 0) / theta)
    grad_x = torch.empty_like(u)
    carried = torch.zeros_like(u[0])
    for t in range(u.shape[0] - 1, -1, -1):
        torch.addcmul(grad_u[t], carried, silent[t], out=grad_x[t])
        carried = grad_x[t] * tau
    return grad_x, carried


class _LIFMultistep(torch.autograd.Function):
    """All T steps of the LIF in one autograd node; saves only u [T, ...] for the backward.
    On CPU (float32) both scans run as compiled kernels, elsewhere as PyTorch loops."""

    @staticmethod
    def forward(ctx, x, m0, tau, theta, width, record):
        u, spikes, soft, last = _scan_forward(x, m0, tau, theta, record)
        ctx.save_for_backward(u)
        ctx.tau, ctx.theta, ctx.width = tau, theta, width
        ctx.mark_non_differentiable(u, last)
        return spikes, soft, u, last

    @staticmethod
    def backward(ctx, grad_spikes, grad_soft, _grad_u, _grad_last):
        (u,) = ctx.saved_tensors
        grad_x, grad_m0 = _scan_backward(u, grad_spikes, grad_soft, ctx.tau, ctx.theta, ctx.width)
        return grad_x, grad_m0, None, None, None, None


def lif_multistep(
    x: torch.Tensor,
    m0: torch.Tensor | None = None,
    tau: float = 0.5,
    theta: float = 1.0,
    width: float = 1.0,
    record: bool = False,
):
    """Run the LIF over all steps of ``x``.

    Args:
        x: input currents [T, N, ...].
        m0: membrane after reset before step 1, [N, ...] (zeros when None).
        record: also return the soft spikes r = s + ReLU(m / theta) (STR's input), with their gradient.
    Returns:
        spikes [T, N, ...] (0/1, dtype of x); soft spikes [T, N, ...] (empty tensor unless
        ``record``); pre-reset potentials u [T, N, ...] (no gradient); post-reset membrane after
        the last step [N, ...] (no gradient).
    """
    if m0 is None:
        m0 = torch.zeros_like(x[0])
    return _LIFMultistep.apply(x, m0, float(tau), float(theta), float(width), bool(record))


class LIF(nn.Module):
    """Multistep LIF layer: [T, N, ...] input currents -> [T, N, ...] spikes.

    After a forward with ``record = True`` the layer keeps that call's [T, N, ...] tensors for STR:
    ``spikes``, ``soft_spikes`` r = s + ReLU(m / theta) (with their graph: STR's gradient flows
    through them), and ``membrane``, the post-reset membrane m in input units (no gradient).
    With ``carry_state = True`` each forward starts from ``state`` (post-reset membrane [N, ...]
    left by the previous call) instead of zero; `streaming` sets this up for a whole model.
    """

    def __init__(self, tau: float = 0.5, threshold: float = 1.0, width: float = 1.0, fused: bool = True):
        super().__init__()
        self.tau, self.threshold, self.width, self.fused = float(tau), float(threshold), float(width), fused
        self.record = False
        self.carry_state = False
        self.state: torch.Tensor | None = None
        self.spikes: torch.Tensor | None = None
        self.soft_spikes: torch.Tensor | None = None
        self.potential: torch.Tensor | None = None  # pre-reset u [T, N, ...] of the recorded forward

    def extra_repr(self) -> str:
        return f"tau={self.tau}, threshold={self.threshold}, width={self.width}, fused={self.fused}"

    @property
    def membrane(self) -> torch.Tensor | None:
        """Post-reset membrane m [T, N, ...] of the recorded forward (input units, no gradient)."""
        if self.potential is None:
            return None
        return self.potential.masked_fill(self.potential > self.threshold, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m0 = self.state if self.carry_state and self.state is not None else None
        if self.fused:
            spikes, soft, potential, last = lif_multistep(x, m0, self.tau, self.threshold, self.width, self.record)
        else:
            spikes, soft, potential, last = self._forward_snntorch(x, m0)
        self.state = last.detach() if self.carry_state else None
        recorded = (spikes, soft, potential.detach()) if self.record else (None, None, None)
        self.spikes, self.soft_spikes, self.potential = recorded
        return spikes

    def _forward_snntorch(self, x: torch.Tensor, m0: torch.Tensor | None):
        """Reference path: snnTorch's ``Leaky`` stepped over time (the time loop made visible)."""
        leaky = snn.Leaky(
            beta=self.tau, threshold=self.threshold, reset_mechanism="zero", spike_grad=triangle_surrogate(self.width)
        )
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
        soft = spikes + torch.relu(membrane / self.threshold)
        return spikes, soft, potentials, membrane[-1]

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One timestep with carried state: [N, ...] -> spikes [N, ...]."""
        carry, self.carry_state = self.carry_state, True
        try:
            return self.forward(x.unsqueeze(0))[0]
        finally:
            self.carry_state = carry

    def reset(self) -> None:
        """Forget the carried state and the recorded tensors."""
        self.state = self.spikes = self.soft_spikes = self.potential = None


def lif_layers(model: nn.Module) -> list[LIF]:
    """Every `LIF` in ``model`` in registration order (nested ones included)."""
    return [m for m in model.modules() if isinstance(m, LIF)]


def reset_state(model: nn.Module) -> None:
    """Reset every `LIF` of ``model`` (and only of ``model``)."""
    for lif in lif_layers(model):
        lif.reset()


def set_recording(model: nn.Module, record: bool = True) -> None:
    """Make every `LIF` of ``model`` keep (or drop) its spikes, soft spikes and membrane for STR.
    Raises ValueError when asked to record a model without any `LIF` (nothing would be kept)."""
    if record and not lif_layers(model):
        raise ValueError(
            f"{type(model).__name__} has no aoi.neurons.LIF layer to record for STR "
            "(an snnTorch nn.Sequential: convert it with aoi.interop.from_snntorch(net))"
        )
    for lif in lif_layers(model):
        lif.record = record
        if not record:
            lif.spikes = lif.soft_spikes = lif.potential = None


def check_state_managed(model: nn.Module) -> None:
    """Raise ValueError if ``model`` holds a module with hidden state that aoi does not carry,
    slice per sample and reset (an snnTorch neuron, a torch RNN, a SpikingJelly memory module):
    run step by step, such a module would keep wrong state without any error."""
    for name, module in model.named_modules():
        if isinstance(module, (snn.SpikingNeuron, nn.RNNBase, nn.RNNCellBase)) or any(
            base.__name__ == "MemoryModule" for base in type(module).__mro__
        ):
            where = f"layer {name}" if name else "the model"
            raise ValueError(
                f"{where} ({type(module).__name__}) keeps hidden state that aoi.neurons.streaming and "
                "aoi.anytime.predict cannot carry, slice per sample or reset: build the network from "
                "aoi.neurons.LIF (an snnTorch nn.Sequential: aoi.interop.from_snntorch(net))"
            )


@contextlib.contextmanager
def streaming(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` one timestep at a time: inside the block every `LIF` carries its state
    from one forward to the next, starting from zero. Feed inputs of shape [1, N, ...].
    Refuses a model with hidden state of its own (`check_state_managed`)."""
    check_state_managed(model)
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
