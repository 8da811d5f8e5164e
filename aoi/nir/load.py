"""`from_nir`: a NIR graph as an aoi model on [T, N, ...] (the mapping is derived in `aoi.nir`)."""

from __future__ import annotations

import graphlib
import math
import os
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from aoi.models.layers import TimeFolded
from aoi.neurons import LIF
from aoi.nir.export import RATIO_RTOL


class NIRNetwork(nn.Module):
    """An aoi model running a feed-forward NIR graph: [T, N, *input_shape] -> [T, N, *output_shape].

    ``layers`` holds the module of every computing node (`TimeFolded` stateless layers, `LIF`,
    ``nn.Linear`` on [T, N, F]); ``wiring`` lists in topological order (node key, its source
    keys), "input" being the graph's input; a node's input is the sum of its sources' outputs
    (NIR's semantics), and the value of "output" is the model's output.
    """

    def __init__(self, layers: dict[str, nn.Module], wiring: list[tuple[str, list[str]]]):
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.wiring = wiring

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {"input": x}
        for key, sources in self.wiring:
            total = values[sources[0]]
            for source in sources[1:]:
                total = total + values[source]
            values[key] = self.layers[key](total) if key in self.layers else total
        return values["output"]


def _read_graph(source) -> nir.NIRGraph:
    if isinstance(source, nir.NIRGraph):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"from_nir takes a nir.NIRGraph or the path of a NIR file, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such NIR file")
    try:
        return nir.read(path)
    except Exception as error:
        reason = (str(error).splitlines() or [""])[0]
        raise ValueError(
            f"{path} is not a NIR graph file ({type(error).__name__}: {reason}); "
            "write one with nir.write(path, aoi.nir.to_nir(model, input_shape))"
        ) from error


def _plain(value):
    """A metadata value as a plain Python value (h5py reads numpy scalars and bytes)."""
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0 else value


def _lif_from_node(name: str, node: nir.LIF, dt: float, width: float) -> LIF:
    def uniform(field: str) -> float:
        values = np.unique(np.asarray(getattr(node, field), dtype=np.float64))
        if values.size != 1:
            raise ValueError(f"from_nir: LIF {name!r} has per-neuron {field}; aoi's LIF has one value per layer")
        return float(values[0])

    tau, r, leak, reset, threshold = (uniform(f) for f in ("tau", "r", "v_leak", "v_reset", "v_threshold"))
    if not 0 < threshold < math.inf:
        raise ValueError(f"from_nir: LIF {name!r} has v_threshold = {threshold}; aoi's LIF needs a finite one > 0")
    if not tau >= dt:
        raise ValueError(f"from_nir: LIF {name!r} has tau = {tau} < dt = {dt}: forward Euler would be unstable")
    if abs(r * dt / tau - 1) > RATIO_RTOL or leak != 0 or reset != 0:
        raise ValueError(
            f"from_nir: LIF {name!r} is not aoi's hard-reset LIF under forward Euler with dt = {dt}: it needs "
            f"r = tau / dt, v_leak = 0, v_reset = 0; got r dt / tau = {r * dt / tau}, v_leak = {leak}, "
            f"v_reset = {reset}"
        )
    return LIF(tau=1.0 - dt / tau, threshold=threshold, width=width)


def _ints(value) -> tuple[int, int]:
    return tuple(int(v) for v in np.broadcast_to(np.asarray(value), (2,)))


def _layer_from_node(name: str, node: nir.NIRNode, dt: float, width: float, dtype: torch.dtype) -> nn.Module:
    """The aoi module of one computing NIR node, its weights in ``dtype``."""

    def tensor(array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=dtype)

    if isinstance(node, nir.Conv2d):
        weight = tensor(node.weight)
        padding = node.padding if isinstance(node.padding, str) else _ints(node.padding)
        groups = int(node.groups)
        out_channels, in_per_group = weight.shape[:2]
        shape = dict(kernel_size=tuple(weight.shape[2:]), stride=_ints(node.stride), dilation=_ints(node.dilation))
        conv = nn.Conv2d(in_per_group * groups, out_channels, padding=padding, groups=groups, **shape)
        conv.weight.data, conv.bias.data = weight, tensor(node.bias)
        return TimeFolded(conv)
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        if any(_ints(node.padding)):
            raise ValueError(f"from_nir: pool {name!r} has padding {_ints(node.padding)}; aoi imports unpadded pools")
        divisor = 1 if isinstance(node, nir.SumPool2d) else None
        return TimeFolded(nn.AvgPool2d(_ints(node.kernel_size), _ints(node.stride), divisor_override=divisor))
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return TimeFolded(nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end))
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = tensor(node.weight)
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=isinstance(node, nir.Affine))
        linear.weight.data = weight
        if linear.bias is not None:
            linear.bias.data = tensor(node.bias)
        return linear
    if isinstance(node, nir.LIF):
        return _lif_from_node(name, node, dt, width)
    raise ValueError(
        f"from_nir: node {name!r} is nir.{type(node).__name__}, which aoi cannot run exactly; aoi imports "
        "Conv2d, AvgPool2d, SumPool2d, Flatten, Affine, Linear and LIF nodes"
    )


def _wiring(graph: nir.NIRGraph) -> tuple[str, str, list[tuple[str, list[str]]]]:
    """(input node name, output node name, [(name, its sources)] in topological order)."""
    inputs = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    outputs = [name for name, node in graph.nodes.items() if isinstance(node, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"from_nir needs one Input and one Output node, got inputs {inputs} and outputs {outputs}")
    sources = {name: [] for name in graph.nodes}
    for source, target in graph.edges:
        if source not in sources or target not in sources:
            raise ValueError(f"from_nir: edge ({source!r}, {target!r}) names a node the graph does not have")
        sources[target].append(source)
    feeding = {source for source, _ in graph.edges}
    for name in graph.nodes:
        if (name != inputs[0] and not sources[name]) or (name != outputs[0] and name not in feeding):
            side = "into" if name != inputs[0] and not sources[name] else "out of"
            raise ValueError(
                f"from_nir: node {name!r} is dangling (no edge {side} it): every node must lie on a path "
                "from the Input to the Output node"
            )
    try:
        order = list(graphlib.TopologicalSorter({name: set(s) for name, s in sources.items()}).static_order())
    except graphlib.CycleError as error:
        raise ValueError(
            f"from_nir: the graph is recurrent (cycle {error.args[1]}); aoi imports feed-forward graphs"
        ) from None
    return inputs[0], outputs[0], [(name, sources[name]) for name in order if name != inputs[0]]


def from_nir(
    graph_or_path, dt: float | None = None, width: float = 1.0, dtype: torch.dtype = torch.float32
) -> NIRNetwork:
    """The aoi model of a NIR graph (or NIR file): [T, N, *input_shape] -> [T, N, K].

    Args:
        graph_or_path: a ``nir.NIRGraph`` or the path of a file written by ``nir.write``.
        dt: the timestep in seconds; default: the graph's metadata "dt" (`to_nir` writes it).
        width: width of the LIFs' triangle surrogate gradient (training only).
        dtype: of the weights (the graph's arrays are cast to it).
    Returns:
        `NIRNetwork`, in eval mode, with ``metadata`` (the graph's, as plain values), ``T`` (the
        metadata's, or None) and ``input_shape``; the cutoff's epsilon is
        ``model.metadata["cutoff_epsilon"]`` for graphs written by `to_nir`.
    """
    graph = _read_graph(graph_or_path)
    if not graph.nodes:
        raise ValueError("from_nir: the NIR graph has no nodes")
    metadata = {key: _plain(value) for key, value in (graph.metadata or {}).items()}
    dt = metadata.get("dt") if dt is None else dt
    if dt is None or not float(dt) > 0:
        raise ValueError(
            f"from_nir: the graph's metadata has no dt (got {dt!r}): pass dt=, the timestep in seconds its time "
            "constants assume (snnTorch's and SpikingJelly's exporters use 1e-4)"
        )
    input_name, output_name, wiring = _wiring(graph)
    keys = {input_name: "input", output_name: "output"}
    for name, _ in wiring:
        keys.setdefault(name, name.replace(".", "_"))
    if len(set(keys.values())) != len(keys):
        raise ValueError(f"from_nir: node names collide once '.' becomes '_': {sorted(graph.nodes)}")
    layers = {
        keys[name]: _layer_from_node(name, graph.nodes[name], float(dt), width, dtype)
        for name, _ in wiring
        if name != output_name
    }
    model = NIRNetwork(layers, [(keys[name], [keys[s] for s in sources]) for name, sources in wiring]).eval()
    model.metadata = metadata
    model.T = int(metadata["T"]) if "T" in metadata else None
    model.input_shape = tuple(int(s) for s in graph.nodes[input_name].input_type["input"])
    return model
