"""snnTorch networks as aoi models: `from_snntorch`.

An snnTorch per-step network is an ``nn.Sequential`` of stateless torch layers and
``snn.Leaky(init_hidden=True)`` neurons, called once per timestep on [N, ...]. `from_snntorch`
turns it into an aoi model on [T, N, ...] that gives the same per-step outputs: each run of
stateless layers becomes one `aoi.models.layers.TimeFolded` module (applied to all T steps at once
over the folded [T*N, ...] batch, time-major, as `aoi.energy` requires), each Leaky an
`aoi.neurons.LIF`. STR (`set_recording`, `collect_factors`), the cutoff,
`aoi.energy.count_operations` and streaming `aoi.anytime.predict` then work on it.

Why the neuron is exact: with reset_mechanism="zero", snnTorch's Leaky computes per step
reset = H(mem - theta) of the stored pre-reset potential, mem = beta (1 - reset) mem + x_t,
spk = H(mem - theta) (H(0) = 0); with m_{t-1} = (1 - s_{t-1}) u_{t-1} this is aoi's
u_t = tau m_{t-1} + x_t, s_t = H(u_t - theta) with tau = beta (``reset_delay=False`` stores the
post-reset membrane instead: the same dynamics). What is not converted, because aoi's LIF cannot
run it exactly, raises a ValueError naming the layer: subtract reset, learnable or per-neuron beta
or threshold, graded spikes, inhibition, state quantisation, snn.Synaptic, snn.Alpha, recurrent
neurons (snn.RLeaky, snn.RSynaptic) and torch RNNs, and modules that are not torch.nn layers.

Differences that remain, none in the forward pass of an eval-mode network:
- the surrogate gradient: snnTorch's Leaky uses ``spike_grad`` (arctan by default), aoi's LIF the
  triangle of width ``width``; spikes are identical, training gradients differ.
- a Leaky with ``output=True`` (allowed as the last layer only) returns (spk, mem) in snnTorch; the
  aoi model returns spk, whose sum over steps is snnTorch's usual spike-count prediction.
- BatchNorm in training mode normalises over all T*N rows of the folded batch (as TET and aoi do),
  snnTorch over the N rows of each step; running statistics and eval mode are per sample alike.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import snntorch as snn
import torch
from torch import nn

from aoi.models.layers import TimeFolded
from aoi.neurons import LIF

_NEURON_REASONS = {
    "Synaptic": "its synaptic current is a second state variable; aoi's LIF has only the membrane",
    "Alpha": "its two synaptic currents are extra state variables; aoi's LIF has only the membrane",
    "RLeaky": "recurrent connections (aoi's LIF has none)",
    "RSynaptic": "recurrent connections and a synaptic current (aoi's LIF has neither)",
}


def _layers(net: nn.Sequential, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """(path, module) of every layer of ``net`` in call order, nested nn.Sequential flattened."""
    for name, module in net.named_children():
        path = f"{prefix}{name}"
        if isinstance(module, nn.Sequential):
            yield from _layers(module, f"{path}.")
        else:
            yield path, module


def _scalar(value, what: str, learnable: str) -> tuple[float | None, str | None]:
    """(value as a float, None), or (None, why it cannot be converted)."""
    if isinstance(value, nn.Parameter):
        return None, f"learnable {what} ({learnable}=True): aoi's LIF has a fixed {what}"
    value = torch.as_tensor(value)
    if value.numel() != 1:
        return None, f"per-neuron {what} (shape {tuple(value.shape)}): aoi's LIF has one {what} per layer"
    return float(value), None


def _leaky_problem(leaky: snn.SpikingNeuron, last: bool) -> str | None:
    """Why ``leaky`` has no exact aoi LIF, or None."""
    name = type(leaky).__name__
    if type(leaky) is not snn.Leaky:
        reason = _NEURON_REASONS.get(name, "only snn.Leaky has an exact aoi equivalent")
        return f"snn.{name}: {reason}"
    if leaky.reset_mechanism != "zero":
        return f"reset_mechanism={leaky.reset_mechanism!r}: aoi's LIF resets to zero (use reset_mechanism='zero')"
    if leaky.inhibition:
        return "inhibition=True couples the neurons of a layer; aoi's LIF neurons are independent"
    if leaky.state_quant:
        return "state_quant quantises the membrane; aoi's LIF does not"
    if float(leaky.graded_spikes_factor) != 1.0 or isinstance(leaky.graded_spikes_factor, nn.Parameter):
        return "graded spikes (graded_spikes_factor != 1): aoi's LIF emits 0/1 spikes"
    if leaky.output and not last:
        return "output=True returns (spk, mem) in the middle of the network: only the last layer may"
    for value, what, flag in ((leaky.beta, "beta", "learn_beta"), (leaky.threshold, "threshold", "learn_threshold")):
        problem = _scalar(value, what, flag)[1]
        if problem:
            return problem
    return None


def _lif_from_leaky(path: str, leaky: snn.SpikingNeuron, width: float, last: bool) -> LIF:
    problem = _leaky_problem(leaky, last)
    if problem:
        raise ValueError(f"from_snntorch: layer {path} cannot be converted exactly: {problem}")
    beta = min(max(_scalar(leaky.beta, "beta", "")[0], 0.0), 1.0)  # snnTorch clamps beta to [0, 1]
    return LIF(tau=beta, threshold=_scalar(leaky.threshold, "threshold", "")[0], width=width)


def _check_stateless(path: str, module: nn.Module) -> None:
    if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        raise ValueError(
            f"from_snntorch: layer {path} ({type(module).__name__}) is recurrent: its hidden state runs across "
            "steps, and aoi applies stateless layers to every step alike"
        )
    if not type(module).__module__.startswith("torch.nn."):
        raise ValueError(
            f"from_snntorch: layer {path} ({type(module).__module__}.{type(module).__name__}) is not a torch.nn "
            "layer or snn.Leaky: only those are known to act on each step alike"
        )


def from_snntorch(net: nn.Module, width: float = 1.0) -> nn.Sequential:
    """The aoi model of an snnTorch per-step network: [T, N, ...] -> per-step outputs [T, N, ...].

    Args:
        net: ``nn.Sequential`` of torch.nn layers and ``snn.Leaky(reset_mechanism="zero")``
            (nested nn.Sequential allowed), as called once per step on [N, ...].
        width: width of the triangle surrogate gradient of the aoi LIFs (replacing snnTorch's
            ``spike_grad``: same spikes, different training gradient).
    Returns:
        ``nn.Sequential`` of `TimeFolded` runs of copies of the stateless layers and `LIF`s,
        in ``net``'s training mode; output [T, N, ...] equals stacking ``net``'s per-step
        outputs (the spikes of a last Leaky with ``output=True``).
    Raises:
        ValueError naming the layer that cannot be converted exactly, and why.
    """
    if not isinstance(net, nn.Sequential):
        raise ValueError(
            f"from_snntorch converts an nn.Sequential called once per step, got {type(net).__name__}: "
            "a network with its own forward must be rebuilt from aoi.models.layers.TimeFolded and aoi.neurons.LIF"
        )
    layers = list(_layers(net))
    if not any(isinstance(module, snn.SpikingNeuron) for _, module in layers):
        raise ValueError("from_snntorch: the network has no snn.Leaky neuron; nothing to convert to spiking layers")
    blocks, run = [], []
    for position, (path, module) in enumerate(layers):
        if isinstance(module, snn.SpikingNeuron):
            lif = _lif_from_leaky(path, module, width, last=position == len(layers) - 1)
            if run:
                blocks.append(TimeFolded(run[0] if len(run) == 1 else nn.Sequential(*run)))
                run = []
            blocks.append(lif)
        else:
            _check_stateless(path, module)
            run.append(copy.deepcopy(module))
    if run:
        blocks.append(TimeFolded(run[0] if len(run) == 1 else nn.Sequential(*run)))
    return nn.Sequential(*blocks).train(net.training)
