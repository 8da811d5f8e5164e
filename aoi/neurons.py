"""Leaky integrate-and-fire neurons with hard reset, as in TET and the authors' toolkit.

The neuron, per element and timestep t = 1..T (docs/method.md, "Neuron"):

    u_t = tau * m_{t-1} + x_t           membrane before reset, m_0 = 0
    s_t = H(u_t - theta)                spike (H(0) = 0, as in snnTorch and TET)
    m_t = u_t * (1 - s_t)               membrane after reset (hard reset to zero)

with the triangle surrogate gradient ds/du = max(0, g - |u - theta|) / g^2.

The forward pass is exactly snnTorch's ``snn.Leaky(beta=tau, threshold=theta,
reset_mechanism="zero")``, whose returned ``mem`` is u_t. The backward pass lets the gradient
flow through the reset factor (1 - s_t), as TET and the authors' toolkit do; with
``detach_reset=True`` the reset factor is detached, as in snnTorch.

`LIF` runs all T steps in one fused autograd function (`aoi.lif_scan.lif_multistep`: compiled
kernels on CPU and CUDA). It keeps ``snn.Leaky`` as the step-by-step reference (``fused=False``,
detached reset only); tests check that the paths agree in the forward and the backward pass.

State is explicit: every forward starts from zero unless the neuron is *carrying* state
(`carry_state`), which is how `aoi.anytime` runs a model one timestep at a time.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import snntorch as snn
import torch
from torch import nn

from aoi.lif_scan import lif_inference, lif_multistep


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


class LIF(nn.Module):
    """Multistep LIF layer: [T, N, ...] input currents -> [T, N, ...] spikes.

    After a forward with ``record = True`` the layer keeps that call's [T, N, ...] tensors for STR:
    ``spikes``, ``soft_spikes`` r = s + ReLU(m / theta) (with their graph: STR's gradient flows
    through them), and ``membrane``, the post-reset membrane m in input units (no gradient).
    With ``carry_state = True`` each forward starts from ``state`` (post-reset membrane [N, ...]
    left by the previous call) instead of zero; `streaming` sets this up for a whole model.
    A forward that needs no gradient and records nothing (inference) skips autograd and updates
    the carried ``state`` in place.
    """

    def __init__(
        self,
        tau: float = 0.5,
        threshold: float = 1.0,
        width: float = 1.0,
        fused: bool = True,
        detach_reset: bool = False,
    ):
        super().__init__()
        if not fused and not detach_reset:
            raise ValueError("LIF(fused=False) steps snnTorch's Leaky, whose reset is detached: pass detach_reset=True")
        self.tau, self.threshold, self.width, self.fused = float(tau), float(threshold), float(width), fused
        self.detach_reset = bool(detach_reset)
        self.record = False
        self.carry_state = False
        self.state: torch.Tensor | None = None
        self.spikes: torch.Tensor | None = None
        self.soft_spikes: torch.Tensor | None = None
        self.potential: torch.Tensor | None = None  # pre-reset u [T, N, ...] of the recorded forward

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, threshold={self.threshold}, width={self.width}, fused={self.fused}, "
            f"detach_reset={self.detach_reset}"
        )

    @property
    def membrane(self) -> torch.Tensor | None:
        """Post-reset membrane m [T, N, ...] of the recorded forward (input units, no gradient)."""
        if self.potential is None:
            return None
        return self.potential.masked_fill(self.potential > self.threshold, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and not self.record and not (x.requires_grad and torch.is_grad_enabled()):
            return self._infer(x)
        m0 = self.state if self.carry_state and self.state is not None else None
        if self.fused:
            spikes, soft, potential, last = lif_multistep(
                x, m0, self.tau, self.threshold, self.width, self.record, self.detach_reset
            )
        else:
            spikes, soft, potential, last = self._forward_snntorch(x, m0)
        self.state = last.detach() if self.carry_state else None
        recorded = (spikes, soft, potential.detach()) if self.record else (None, None, None)
        self.spikes, self.soft_spikes, self.potential = recorded
        return spikes

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """Forward without autograd (`aoi.lif_scan.lif_inference`): a carried state is updated in place."""
        m = self.state if self.carry_state and self.state is not None else x.new_zeros(x.shape[1:])
        spikes = lif_inference(x, m, self.tau, self.threshold)
        if self.state is not (m if self.carry_state else None):  # nn.Module.__setattr__ is slow: set on change only
            self.state = m if self.carry_state else None
        if self.potential is not None:
            self.spikes = self.soft_spikes = self.potential = None
        return spikes

    def fold(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Inference on time-folded rows x [steps * N, ...] (row t * N + n) -> spikes [steps * N, ...]: `_infer`
        without the module call, for `aoi.models.layers.run_folded`."""
        return self._infer(x.view(steps, -1, *x.shape[1:])).flatten(0, 1)

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


def _layers(model: nn.Module | list[LIF]) -> list[LIF]:
    return model if isinstance(model, list) else lif_layers(model)


def keep_samples(model: nn.Module | list[LIF], index: torch.Tensor) -> None:
    """Keep only the samples ``index`` (a [N'] long or [N] bool tensor) in every carried state.
    ``model`` may be the list of its `lif_layers`, to spare the search at every call."""
    for lif in _layers(model):
        if lif.state is not None:
            lif.state = lif.state[index]


def forward_in_pieces(model: nn.Module, x: torch.Tensor, samples: int, layers: list[LIF]) -> torch.Tensor:
    """``model(x)`` for x [t, n, ...] inside `streaming`, on at most ``samples`` samples at a time (as few
    pieces as that allows, of even sizes). Meanwhile each of ``layers`` (the model's `lif_layers`)
    carries the state of the piece's samples: a view of its state, updated in place; a state not made
    yet is joined from the pieces'. The same outputs [t, n, K] and states as one forward, when each
    sample's result does not depend on the others' (aoi models, bit for bit on CPU)."""
    if x.shape[1] <= samples:
        return model(x)
    samples = math.ceil(x.shape[1] / math.ceil(x.shape[1] / samples))  # as few pieces, evenly filled
    states = [lif.state for lif in layers]
    outputs, pieces = [], [[] for _ in layers]
    for start in range(0, x.shape[1], samples):
        for lif, state in zip(layers, states):
            lif.state = None if state is None else state[start : start + samples]
        outputs.append(model(x[:, start : start + samples]))
        for made, lif in zip(pieces, layers):
            made.append(lif.state)
    for lif, state, made in zip(layers, states, pieces):
        lif.state = torch.cat(made) if state is None else state
    return torch.cat(outputs, dim=1)


def append_samples(model: nn.Module | list[LIF], count: int) -> None:
    """Add ``count`` samples at rest (zero membrane) after the carried ones: state [n, ...] -> [n + count, ...]."""
    for lif in _layers(model):
        if lif.state is not None:
            lif.state = torch.cat([lif.state, lif.state.new_zeros(count, *lif.state.shape[1:])])


def restart_samples(model: nn.Module | list[LIF], mask: torch.Tensor) -> None:
    """Put the samples ``mask`` (an [N] bool tensor) back at rest (zero membrane), in place: their places
    can take new samples without reallocating any state. Only their rows are written (a masked fill
    passes over every row of every state): on the CPU one ``zero_`` per row (5-10x faster than an
    indexed write), elsewhere one indexed write per state."""
    rows = mask.nonzero().squeeze(1)
    for lif in _layers(model):
        if lif.state is None:
            continue
        if lif.state.device.type == "cpu":
            for row in rows.tolist():
                lif.state[row].zero_()
        else:
            lif.state[rows] = 0.0
