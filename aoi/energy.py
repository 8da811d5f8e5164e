"""Synaptic operations, multiply-accumulates and energy, counted per sample and per timestep.

Convention (docs/method.md, "Energy accounting"; 45 nm figures of Horowitz, 2014):

    E = E_MAC_PJ x MACs + E_AC_PJ x SOPs        (picojoules)

What is counted, for every `nn.Conv1d`, `nn.Conv2d`, `nn.Conv3d` and `nn.Linear` (seen through
forward hooks, so any model built from them is covered, residual ones included), per sample and
per step:

- *spike input* (every element of that sample's input at that step is a non-negative
  integer: binary spikes, event-count frames, or the {0, 1, 2} sums of SEW-ResNet's ADD
  shortcuts): SOPs = sum over input elements of (value x exact fan-out), i.e. one accumulate
  per spike or event per synapse it reaches (an element holding 2 events is 2 deliveries, as on
  event-driven hardware). For a conv this is ``conv(values, ones)`` summed over the output,
  exact at borders and for any kernel shape, stride, padding, dilation and groups (a stride-1
  'same' 3x3 conv gives C_out x 9 per spike inside the map, fewer at the borders); for a linear
  layer it is (sum of the inputs) x out_features. Binary event frames are thus SOPs like any spikes.
- *real-valued input* (a direct-encoded image, a globally averaged feature vector):
  dense MACs = output elements x fan-in (C_in / groups x the kernel's elements for a conv,
  in_features for a linear), zero padding included. In the paper's frame models this is the
  first layer, docs/method.md's "MACs of the first (non-spiking input) layer"; any later layer
  fed real values is charged the same honest way.
- *average-pooled spikes* (an `nn.AvgPool1d`, `nn.AvgPool2d` or `nn.AvgPool3d` of spikes feeding
  a later layer, as in VGGSNN and the small models: values = counts / pool area, the area being
  the kernel's elements or the pool's ``divisor_override``): the pool is linear, so it folds into
  the layer; each pooled spike is one accumulate per synapse of its pooled element, SOPs = the
  spike-count rule on x x area. The counter recognises such an input as (a view of) the output
  of an average pool module (its own hook); global average pooling done by a tensor mean
  (ResNet heads) is not a module, so it is charged as real-valued input (MACs of a small linear
  layer); a pool over real values (an image) stays MACs.

Not counted: bias additions, batch norm (it folds into the preceding conv at inference),
pooling, residual additions and the neurons' own updates (the convention counts synapses only).
Any other layer with weights of its own (a transposed conv, nn.Bilinear, an embedding, attention)
has synapses this convention cannot count: `OperationCounter` refuses the model, naming the layer,
rather than report counts without it. Layers whose weights act per element (normalisation, PReLU)
have no synapses.

Models must fold time into the batch time-major (``x.flatten(0, 1)`` of [T, N, ...]), as every
aoi model does, so that a hooked layer's leading batch index is t * N + n.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from aoi.errors import UserError

E_MAC_PJ = 4.6  # energy of one 32-bit float multiply-accumulate, picojoules (45 nm)
E_AC_PJ = 0.9  # energy of one 32-bit float accumulate (a synaptic operation), picojoules (45 nm)

CONVOLUTIONS = MappingProxyType({nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d})
COUNTED_LAYERS = (*CONVOLUTIONS, nn.Linear)
AVERAGE_POOLS = MappingProxyType({nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3})  # pool: its spatial dims
PER_ELEMENT = (  # layers with weights of their own but no synapses (each weight acts on one element)
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.PReLU,
)
POOL_ROUNDING = 1e-3  # pooled x * area within this of an integer is that many spikes (area 9 is inexact)


class UncountableLayer(UserError, ValueError):
    """A model with a layer whose synapses aoi cannot count (the message names it)."""


class OperationCounts(NamedTuple):
    outputs: torch.Tensor  # per-step logits [T, N, K] of the counted forward
    synops: torch.Tensor  # synaptic operations (accumulates) [T, N], int64
    macs: torch.Tensor  # multiply-accumulates [T, N], int64


def energy_pj(synops: torch.Tensor, macs: torch.Tensor) -> torch.Tensor:
    """Energy in picojoules, E_AC_PJ x SOPs + E_MAC_PJ x MACs, elementwise (float64)."""
    return E_AC_PJ * synops.double() + E_MAC_PJ * macs.double()


def spike_counts(x: torch.Tensor, pool_area: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a layer input x [B, ...] as spike counts where it is one.

    Without ``pool_area``, a row is spike counts when all its elements are non-negative integers.
    When x is the output of an average pool of that area (values = counts / area), the counts
    are x * area, and a row is spike counts when they are non-negative integers.
    Returns:
        counts [B, ...] and spiking, bool [B] (rows that are spike counts).
    """
    counts = x if pool_area is None else x * pool_area
    rounded = counts.round()
    tolerance = 0.0 if pool_area is None else POOL_ROUNDING
    spiking = ((counts >= 0) & ((counts - rounded).abs() <= tolerance)).flatten(1).all(1)
    return rounded, spiking


def _conv_connections(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-row spike deliveries of a 1d, 2d or 3d ``conv`` on spike counts x [B, C, *S] -> [B]: sum
    over (input element, output element it reaches) of the input's count.

    Output channel o of group g sees the input channels of g through the kernel's window, so the
    count is (C_out / groups) x sum over groups and output positions of the spikes in the window:
    a conv of the per-group spike sums with a ones kernel, padded exactly like ``conv``.
    """
    groups = conv.groups
    per_group = x.unflatten(1, (groups, -1)).sum(2)  # [B, groups, *S]
    ones = per_group.new_ones(groups, 1, *conv.kernel_size)
    if conv.padding_mode != "zeros":
        per_group = F.pad(per_group, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        padding = 0
    else:
        padding = conv.padding
    convolve = next(function for kind, function in CONVOLUTIONS.items() if isinstance(conv, kind))
    window = convolve(per_group, ones, None, conv.stride, padding, conv.dilation, groups)
    return window.flatten(1).sum(1, dtype=torch.float64).long() * (conv.out_channels // groups)


def layer_operations(
    layer: nn.Module, x: torch.Tensor, output: torch.Tensor, pool_area: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """SOPs and MACs of one call of a conv or linear layer, per leading batch row.

    Args:
        layer: an `nn.Conv1d`, `nn.Conv2d` or `nn.Conv3d` ([B, C, *S] input) or `nn.Linear`
            ([..., F] input; all leading dims are flattened into B).
        x: the layer's input; output: its output (read for a conv only: its number of elements).
        pool_area: when x is the output of an average pool, that pool's area (see `spike_counts`).
    Returns:
        (synops [B], macs [B]), int64: rows whose input is spike counts are charged SOPs (exact
        fan-out), the others dense MACs, as the module docstring says.
    """
    if isinstance(layer, tuple(CONVOLUTIONS)):
        fan_in = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        dense = output[0].numel() * fan_in
        counts, spiking = spike_counts(x, pool_area)
        if spiking.all():
            synops = _conv_connections(layer, counts)
        else:
            synops = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            if spiking.any():
                synops[spiking] = _conv_connections(layer, counts[spiking])
    elif isinstance(layer, nn.Linear):
        counts, spiking = spike_counts(x.reshape(-1, layer.in_features), pool_area)
        dense = layer.in_features * layer.out_features
        synops = counts.sum(1, dtype=torch.float64).long() * layer.out_features * spiking
    else:
        raise TypeError(f"can count only {[c.__name__ for c in COUNTED_LAYERS]}, got {type(layer).__name__}")
    macs = (~spiking).long() * dense
    return synops, macs


def _pool_area(pool: nn.Module) -> int:
    """The divisor of an average pool: the number of elements of its kernel (or its divisor_override)."""
    if getattr(pool, "divisor_override", None):
        return int(pool.divisor_override)
    size = pool.kernel_size
    dims = next(dims for kind, dims in AVERAGE_POOLS.items() if isinstance(pool, kind))
    return math.prod((size,) * dims if isinstance(size, int) else size)


def uncountable_layers(model: nn.Module) -> list[str]:
    """ "name (type)" of every layer of ``model`` with synapses that are not counted: weights of its
    own, and neither a counted layer nor a `PER_ELEMENT` one."""
    return [
        f"{name or 'the model'} ({type(module).__name__})"
        for name, module in model.named_modules()
        if next(module.parameters(recurse=False), None) is not None
        and not isinstance(module, (*COUNTED_LAYERS, *PER_ELEMENT))
    ]


class OperationCounter:
    """Context manager that counts SOPs and MACs of every conv/linear layer of a model; a model with
    a layer whose synapses it cannot count (`uncountable_layers`) is an `UncountableLayer`.

    Every hooked call adds its per-row counts to ``synops`` and ``macs`` ([B] int64, B the
    layers' leading batch size, the same for all layers of one forward); `take` returns and
    clears them. Use one forward per `take`:

        with OperationCounter(model) as counter:
            model(x)                       # x [T, N, ...]; layers see B = T * N rows
            synops, macs = counter.take()  # [T * N] each, row t * N + n
    """

    def __init__(self, model: nn.Module):
        uncountable = uncountable_layers(model)
        if uncountable:
            raise UncountableLayer(
                f"cannot count the synaptic operations of {', '.join(uncountable)}: aoi counts nn.Conv1d, "
                "nn.Conv2d, nn.Conv3d and nn.Linear layers; count without it (predict(..., count=False))"
            )
        self.layers = [m for m in model.modules() if isinstance(m, COUNTED_LAYERS)]
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no nn.Conv1d/2d/3d or nn.Linear layer to count")
        self.pools = [m for m in model.modules() if isinstance(m, tuple(AVERAGE_POOLS))]
        self.synops: torch.Tensor | None = None
        self.macs: torch.Tensor | None = None
        self._pooled: dict[int, tuple[torch.Tensor, int]] = {}  # storage address -> (pool output, area)
        self._handles: list = []

    def _pool_hook(self, pool: nn.Module, args: tuple, output: torch.Tensor) -> None:
        # kept alive until `take`, so that its address cannot be reused by another tensor meanwhile
        self._pooled[output.untyped_storage().data_ptr()] = (output, _pool_area(pool))

    def _hook(self, layer: nn.Module, args: tuple, output: torch.Tensor) -> None:
        x = args[0]
        pooled = self._pooled.get(x.untyped_storage().data_ptr())  # x is (a view of) a pool's output
        synops, macs = layer_operations(layer, x, output, pooled[1] if pooled else None)
        if self.synops is None:
            self.synops, self.macs = synops, macs
        elif self.synops.shape != synops.shape:
            raise ValueError(
                f"{type(layer).__name__} saw {synops.shape[0]} batch rows, earlier layers "
                f"{self.synops.shape[0]}: fold time into the batch as [T * N, ...] everywhere"
            )
        else:
            self.synops = self.synops + synops
            self.macs = self.macs + macs

    def take(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(synops [B], macs [B]) accumulated since the last `take`, and clear them."""
        if self.synops is None:
            raise RuntimeError("no conv or linear layer ran since the last take(): run a forward first")
        counts = (self.synops, self.macs)
        self.synops = self.macs = None
        self._pooled.clear()
        return counts

    def __enter__(self) -> OperationCounter:
        self._handles = [layer.register_forward_hook(self._hook) for layer in self.layers]
        self._handles += [pool.register_forward_hook(self._pool_hook) for pool in self.pools]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.synops = self.macs = None
        self._pooled.clear()


def count_operations(model: nn.Module, inputs: torch.Tensor) -> OperationCounts:
    """Run the ordinary full-T forward of ``model`` on inputs [T, N, ...] under no_grad and
    count every step's operations per sample.

    Returns:
        `OperationCounts` with the logits [T, N, K] and synops, macs [T, N] (int64). The cost
        of a sample that exits at step e is the sum over t <= e (`sum_until_exit`).
    """
    T, N = inputs.shape[:2]
    with torch.no_grad(), OperationCounter(model) as counter:
        outputs = model(inputs)
        synops, macs = counter.take()
    if synops.shape[0] != T * N:
        raise ValueError(
            f"the model's layers saw {synops.shape[0]} batch rows, expected T * N = {T * N}: "
            "fold time into the batch as inputs.flatten(0, 1)"
        )
    return OperationCounts(outputs, synops.view(T, N), macs.view(T, N))


def sum_until_exit(per_step: torch.Tensor, exit_steps: torch.Tensor) -> torch.Tensor:
    """Sum per-step counts [T, N] over each sample's executed steps t <= exit_steps [N] (1-based) -> [N]."""
    steps = torch.arange(1, per_step.shape[0] + 1, device=per_step.device)[:, None]
    return (per_step * (steps <= exit_steps.to(per_step.device)[None])).sum(0)
