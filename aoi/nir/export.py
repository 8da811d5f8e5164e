"""`to_nir`: an aoi model as a NIR graph (the mapping is derived in `aoi.nir`)."""

from __future__ import annotations

import copy
import operator

import nir
import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from aoi.models.layers import TimeFolded
from aoi.neurons import LIF

DEFAULT_DT = 1e-4  # seconds; the dt snnTorch's and SpikingJelly's NIR importers assume
POOLS = ("avg", "sum")
RATIO_RTOL = 1e-6  # tolerance on r dt / tau = 1 when importing


class _Tracer(fx.Tracer):
    """Traces aoi models down to TimeFolded blocks, LIFs and torch.nn layers (aoi's subclasses of
    them, such as `aoi.models.layers.RowwiseLinear`, included)."""

    LEAVES = (TimeFolded, LIF, nn.Linear, nn.Conv2d, nn.AvgPool2d)

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        return isinstance(module, self.LEAVES) or super().is_leaf_module(module, qualname)


class _Exporter:
    """Builds NIR nodes and edges while walking a traced aoi model. A traced value is known
    by its ``sources``: the NIR nodes whose summed outputs it is, each with a pending scale
    (1, or 1/area after a SumPool2d, folded into the next weighted layer)."""

    def __init__(self, pool: str, meta: nn.Module):
        self.pool = pool
        self.meta = meta  # the model on the meta device: shapes without computing
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []

    def add(self, name: str, node: nir.NIRNode, sources: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Add ``node`` fed by ``sources`` (their pending scales already applied); its sources."""
        while name in self.nodes:
            name += "_"
        self.nodes[name] = node
        self.edges += [(source, name) for source, _ in sources]
        return [(name, 1.0)]

    @staticmethod
    def scale_of(name: str, sources: list[tuple[str, float]], weighted: bool) -> float:
        """The common pending scale of ``sources``; only a weighted layer may absorb one != 1."""
        scales = {scale for _, scale in sources}
        if len(scales) > 1 or (not weighted and scales != {1.0}):
            raise ValueError(
                f"to_nir: {name} receives sum-pooled values it cannot rescale: use pool='avg', or put a conv "
                "or linear layer after every pool"
            )
        return scales.pop()

    def passthrough(self, name, node, sources):
        """A linear node without weights (pool, flatten): a pending scale passes through it."""
        scale = self.scale_of(name, sources, weighted=True)
        return [(output, scale) for output, _ in self.add(name, node, [(s, 1.0) for s, _ in sources])]

    def conv(self, name, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, sources, shape):
        if conv.padding_mode != "zeros":
            raise ValueError(f"to_nir: {name} pads with {conv.padding_mode!r}; NIR's Conv2d pads with zeros")
        weight = conv.weight.detach().cpu().double() * self.scale_of(name, sources, weighted=True)
        bias = conv.bias.detach().cpu().double() if conv.bias is not None else weight.new_zeros(conv.out_channels)
        if bn is not None:
            statistics = (bn.running_mean, bn.running_var, bn.weight, bn.bias)
            mean, var, gamma, beta = (t.detach().cpu().double() for t in statistics)
            gain = gamma / (var + bn.eps).sqrt()
            weight = weight * gain[:, None, None, None]
            bias = (bias - mean) * gain + beta
        padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
        node = nir.Conv2d(
            input_shape=tuple(shape[1:]),
            weight=weight.to(conv.weight.dtype).numpy(),
            stride=tuple(conv.stride),
            padding=padding,
            dilation=tuple(conv.dilation),
            groups=conv.groups,
            bias=bias.to(conv.weight.dtype).numpy(),
        )
        return self.add(name, node, sources)

    def linear(self, name, linear: nn.Linear, sources):
        weight = (linear.weight.detach().cpu() * self.scale_of(name, sources, weighted=True)).numpy()
        if linear.bias is None:
            return self.add(name, nir.Linear(weight=weight), sources)
        return self.add(name, nir.Affine(weight=weight, bias=linear.bias.detach().cpu().numpy()), sources)

    def avg_pool(self, name, kernel, stride, sources, divisor: int):
        """Window sums / ``divisor``: AvgPool2d (divisor = window area, pool "avg"), else SumPool2d
        with 1/divisor pending."""
        arrays = dict(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array([0, 0]))
        if divisor == kernel[0] * kernel[1] != 1 and self.pool == "avg":
            return self.passthrough(name, nir.AvgPool2d(**arrays), sources)
        scale = self.scale_of(name, sources, weighted=True) / divisor
        return [(output, scale) for output, _ in self.add(name, nir.SumPool2d(**arrays), sources)]

    def flatten(self, name, shape, start_dim: int, end_dim: int, sources):
        node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start_dim, end_dim=end_dim)
        return self.passthrough(name, node, sources)

    def lif(self, name, lif: LIF, shape, dt: float, sources):
        self.scale_of(name, sources, weighted=False)
        if not 0 <= lif.tau < 1:
            raise ValueError(f"to_nir: {name} has decay {lif.tau}; NIR's LIF needs 0 <= decay < 1 (tau = dt / (1 - d))")
        full = np.ones(tuple(shape), dtype=np.float64)
        tau = dt / (1.0 - lif.tau)
        node = nir.LIF(
            tau=tau * full, r=tau / dt * full, v_leak=0 * full, v_threshold=lif.threshold * full, v_reset=0 * full
        )
        return self.add(name, node, sources)


def _dtype(module: nn.Module) -> torch.dtype:
    """The dtype of ``module``'s parameters (float32 when it has none)."""
    return next(module.parameters(), torch.zeros((), dtype=torch.float32)).dtype


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _export_pool(exporter: _Exporter, name: str, pool: nn.AvgPool2d, sources):
    if pool.ceil_mode or _pair(pool.padding) != (0, 0):
        raise ValueError(f"to_nir: {name} (AvgPool2d) uses padding or ceil_mode; NIR's pools have neither here")
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride or pool.kernel_size)
    return exporter.avg_pool(name, kernel, stride, sources, pool.divisor_override or kernel[0] * kernel[1])


def _chain(folded: TimeFolded) -> list[nn.Module]:
    return list(folded.module) if isinstance(folded.module, nn.Sequential) else [folded.module]


def _export_folded(exporter: _Exporter, name: str, folded: TimeFolded, shape, sources):
    """The NIR nodes of a time-folded block; shape: its per-sample input shape."""
    modules = _chain(folded)
    meta_modules = _chain(exporter.meta.get_submodule(name))
    x = torch.zeros(1, *shape, dtype=_dtype(folded), device="meta")
    skip = False
    for index, (module, meta_module) in enumerate(zip(modules, meta_modules)):
        part = f"{name}.{index}" if len(modules) > 1 else name
        following = modules[index + 1] if index + 1 < len(modules) else None
        if skip:
            skip = False
        elif isinstance(module, nn.Conv2d):
            skip = isinstance(following, nn.BatchNorm2d)
            sources = exporter.conv(part, module, following if skip else None, sources, x.shape[1:])
        elif isinstance(module, nn.AvgPool2d):
            sources = _export_pool(exporter, part, module, sources)
        elif isinstance(module, nn.Flatten):
            if module.start_dim % x.dim() == 0:
                raise ValueError(f"to_nir: {part} (Flatten) flattens the folded time and batch dimension")
            end = module.end_dim - 1 if module.end_dim > 0 else module.end_dim
            sources = exporter.flatten(part, tuple(x.shape[1:]), module.start_dim % x.dim() - 1, end, sources)
        elif isinstance(module, nn.Linear):
            sources = exporter.linear(part, module, sources)
        elif not isinstance(module, (nn.Identity, nn.Dropout)):
            what = (
                "BatchNorm2d not right after a Conv2d" if isinstance(module, nn.BatchNorm2d) else type(module).__name__
            )
            raise ValueError(f"to_nir: {part} ({what}) has no NIR equivalent aoi can export")
        x = meta_module(x)
    return sources


def _spatial_mean_dims(node: fx.Node, rank: int) -> bool:
    dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    dims = {d % rank for d in dims} if isinstance(dims, (tuple, list)) else None
    return rank == 5 and dims == {3, 4} and not node.kwargs.get("keepdim", False)


def _export_node(exporter: _Exporter, node: fx.Node, model: nn.Module, values: dict, dt: float):
    """The sources of the value an fx node computes."""
    first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    shape = tuple(first.meta["tensor_meta"].shape) if first is not None else None
    inputs = values[first] if first is not None else None
    name = str(node.target) if node.op == "call_module" else node.name
    if node.op == "call_module":
        module = model.get_submodule(node.target)
        if isinstance(module, TimeFolded):
            return _export_folded(exporter, name, module, shape[2:], inputs)
        if isinstance(module, LIF):
            return exporter.lif(name, module, shape[2:], dt, inputs)
        if isinstance(module, nn.Linear):
            return exporter.linear(name, module, inputs)
        if isinstance(module, (nn.Identity, nn.Dropout)):
            return inputs
        raise ValueError(f"to_nir: {name} ({type(module).__name__}) has no NIR equivalent aoi can export")
    if node.op == "call_method" and node.target == "flatten":
        start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0) % len(shape)
        end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1) % len(shape)
        if start < 2:
            raise ValueError(f"to_nir: {name} flattens the time or batch dimension of [T, N, ...]")
        return exporter.flatten(name, shape[2:], start - 2, -1 if end == len(shape) - 1 else end - 2, inputs)
    if node.op == "call_method" and node.target == "mean" and _spatial_mean_dims(node, len(shape)):
        pooled = exporter.avg_pool(name, shape[3:], shape[3:], inputs, shape[3] * shape[4])
        return exporter.flatten(f"{name}.flatten", (shape[2], 1, 1), 0, -1, pooled)
    if node.op == "call_function" and node.target in (operator.add, torch.add) and not node.kwargs:
        terms = [values[arg] for arg in node.args if isinstance(arg, fx.Node)]
        merged = [source for term in terms for source in term]
        if len(terms) != 2 or len({source for source, _ in merged}) != len(merged):
            raise ValueError(f"to_nir: {name} adds a constant or a value to itself; NIR sums distinct edges only")
        return merged
    raise ValueError(f"to_nir: {name} ({node.op} {node.target}) has no NIR equivalent aoi can export")


def to_nir(
    model: nn.Module,
    input_shape,
    T: int | None = None,
    dt: float = DEFAULT_DT,
    epsilon: float = 0.01,
    pool: str = "avg",
) -> nir.NIRGraph:
    """The NIR graph of an aoi model (eval mode), one timestep of one sample.

    Args:
        model: an aoi model, [T, N, *input_shape] -> [T, N, K] (digits_snn, fashion_snn, vggsnn,
            resnet19, `aoi.interop.from_snntorch` and `from_nir` models).
        input_shape: (C, H, W) of one frame.
        T: timesteps, for the metadata (default: ``model.T``).
        dt: the timestep in seconds that the NIR time constants assume (metadata "dt").
        epsilon: the confidence cutoff's epsilon (exit once max softmax > 1 - epsilon), for the metadata.
        pool: "avg" (AvgPool2d nodes) or "sum" (SumPool2d, 1/area folded into the next weights).
    Returns:
        ``nir.NIRGraph`` with nodes named after the model's modules, an "input" and an "output"
        node, and metadata dt, T, cutoff_rule, cutoff_epsilon, source.
    """
    T = getattr(model, "T", None) if T is None else T
    if T is None or int(T) < 1:
        raise ValueError(f"to_nir needs T >= 1 for the graph's metadata (model has no .T): pass T=, got {T!r}")
    if pool not in POOLS or not dt > 0 or not 0 <= epsilon < 1:
        raise ValueError(f"to_nir needs pool in {POOLS}, dt > 0 and epsilon in [0, 1); got {pool!r}, {dt}, {epsilon}")
    if model.training:
        raise ValueError("to_nir folds batch norm with its running statistics: call model.eval() first")
    input_shape = tuple(int(s) for s in input_shape)
    built_for = getattr(model, "input_shape", None)
    if built_for is not None and input_shape != tuple(built_for):
        raise ValueError(f"to_nir: input_shape {input_shape} is not the model's input_shape {tuple(built_for)}")
    meta = copy.deepcopy(model).to("meta")
    graph_module = fx.GraphModule(meta, _Tracer().trace(model))
    try:
        ShapeProp(graph_module).propagate(torch.zeros(1, 1, *input_shape, dtype=_dtype(model), device="meta"))
    except (RuntimeError, ValueError) as error:
        cause = error.__cause__ or error
        raise ValueError(
            f"to_nir: the model cannot take frames of input_shape {input_shape} ({type(cause).__name__}: "
            f"{(str(cause).splitlines() or [''])[0]}): pass the (C, H, W) of one frame it was built for"
        ) from None
    exporter = _Exporter(pool, meta)
    values = {}
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            values[node] = exporter.add("input", nir.Input(input_type=np.array(input_shape)), [])
        elif node.op == "output":
            shape = tuple(node.args[0].meta["tensor_meta"].shape[2:])
            exporter.scale_of("output", values[node.args[0]], weighted=False)
            exporter.add("output", nir.Output(output_type=np.array(shape)), values[node.args[0]])
        else:
            values[node] = _export_node(exporter, node, model, values, dt)
    metadata = {"dt": float(dt), "T": int(T), "cutoff_rule": "confidence", "cutoff_epsilon": float(epsilon)}
    return nir.NIRGraph(exporter.nodes, exporter.edges, metadata={**metadata, "source": "aoi"})
