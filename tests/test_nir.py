"""NIR export and import (aoi.nir): parameters by hand, every exportable model against an executor
of NIR's documented equations written here, round trips through nir.write / nir.read, and the
graphs imported by snnTorch, SpikingJelly and nirtorch (skipped when a package is absent)."""

import copy
import functools

import h5py
import numpy as np
import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

nir = pytest.importorskip("nir")

from aoi.anytime import predict  # noqa: E402
from aoi.cutoff import confidence_cutoff  # noqa: E402
from aoi.interop import from_snntorch  # noqa: E402
from aoi.models import VGGSNN, get_model  # noqa: E402
from aoi.models.layers import TimeFolded  # noqa: E402
from aoi.neurons import LIF, lif_layers, set_recording  # noqa: E402
from aoi.nir import from_nir, to_nir  # noqa: E402

T, N = 3, 6
METADATA = {"cutoff_rule": "confidence", "source": "aoi"}
SHAPES = {"digits_snn": (1, 8, 8), "fashion_snn": (2, 34, 34), "vggsnn": (2, 16, 16), "resnet19": (3, 8, 8)}


def spiking_model(name: str):
    """(model in eval mode, inputs [T, N, ...]), fresh copies of `built_model`."""
    model, inputs = built_model(name)
    return copy.deepcopy(model), inputs.clone()


@functools.cache
def built_model(name: str):
    """BN statistics of a forward on random inputs with random BN weights and biases, so that
    every layer spikes; event inputs, images (2 of them) for resnet19."""
    torch.manual_seed(0)
    if name == "snntorch":  # an snnTorch pooled MLP (decay 0.9, threshold 0.8), converted
        leaky = snn.Leaky(beta=0.9, threshold=0.8, init_hidden=True, reset_mechanism="zero")
        net = nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(32, 32), leaky, nn.Linear(32, 10))
        model = from_snntorch(net).eval()
        model[0].module[2].weight.data *= 3
        model.T = T
        return model, (torch.rand(T, N, 2, 8, 8) < 0.3).float()
    shape = SHAPES[name]
    model = get_model(name, 10, shape, T) if name != "vggsnn" else VGGSNN(10, shape, width=0.25)  # 16 to 128 channels
    model.T = T
    inputs = torch.rand(T, 2, *shape) if name == "resnet19" else (torch.rand(T, N, *shape) < 0.3).float()
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = 1.0
    model.train()(inputs)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(0.2, 0.8)
    if name == "resnet19":
        model.fc1.weight.data *= 30  # pooled spike rates are small: make the LIF after fc1 spike
    return model.eval(), inputs


def run_nir(graph: nir.NIRGraph, inputs: torch.Tensor) -> torch.Tensor:
    """NIR's documented equations, float64, one step at a time: every node gets the sum of its
    incoming edges; LIF: tau dv/dt = (v_leak - v) + r I by forward Euler with the metadata's dt,
    z = v > v_threshold, then v = v_reset where z."""
    dt = float(graph.metadata["dt"])
    incoming = {name: [a for a, b in graph.edges if b == name] for name in graph.nodes}
    order, done = [], set()
    while len(order) < len(graph.nodes):  # Kahn's algorithm
        ready = [n for n in graph.nodes if n not in done and all(s in done for s in incoming[n])]
        order += ready
        done.update(ready)
    membrane, outputs = {}, []
    for x in inputs.double():
        values = {}
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                values[name] = x
                continue
            current = sum(values[s] for s in incoming[name])
            values[name] = _node_step(node, current, membrane, name, dt)
        outputs.append(next(values[n] for n, node in graph.nodes.items() if isinstance(node, nir.Output)))
    return torch.stack(outputs)


def _node_step(node, i, membrane, name, dt):
    def tensor(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.float64)

    if isinstance(node, nir.Conv2d):
        stride, padding, dilation = (tuple(int(v) for v in a) for a in (node.stride, node.padding, node.dilation))
        return F.conv2d(i, tensor(node.weight), tensor(node.bias), stride, padding, dilation, int(node.groups))
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        kernel, stride = tuple(int(k) for k in node.kernel_size), tuple(int(s) for s in node.stride)
        mean = F.avg_pool2d(i, kernel, stride)
        return mean * kernel[0] * kernel[1] if isinstance(node, nir.SumPool2d) else mean
    if isinstance(node, nir.Flatten):  # dims of one sample: shift past the batch dim
        return i.flatten(int(node.start_dim) + 1, int(node.end_dim) + 1 if node.end_dim >= 0 else -1)
    if isinstance(node, nir.Affine):
        return i @ tensor(node.weight).T + tensor(node.bias)
    if isinstance(node, nir.Linear):
        return i @ tensor(node.weight).T
    if isinstance(node, nir.LIF):
        v = membrane.get(name, torch.zeros_like(i))
        v = v + dt / tensor(node.tau) * (tensor(node.v_leak) - v + tensor(node.r) * i)
        spikes = v > tensor(node.v_threshold)
        membrane[name] = torch.where(spikes, tensor(node.v_reset).expand_as(v), v)
        return spikes.double()
    assert isinstance(node, nir.Output), type(node)
    return i


def test_lif_parameters_by_hand():
    model = nn.Sequential(TimeFolded(nn.Linear(3, 4)), LIF(tau=0.75, threshold=0.5)).eval()
    graph = to_nir(model, (3,), T=5, dt=1e-3, epsilon=0.05)
    lif = graph.nodes["1"]
    # d = 0.75, dt = 1 ms: tau = dt / (1 - d) = 4 ms, r = tau / dt = 4
    assert lif.tau == pytest.approx(np.full(4, 4e-3), rel=1e-12) and lif.r == pytest.approx(np.full(4, 4.0))
    assert (lif.v_leak == 0).all() and (lif.v_reset == 0).all() and (lif.v_threshold == 0.5).all()
    assert graph.metadata == {**METADATA, "dt": 1e-3, "T": 5, "cutoff_epsilon": 0.05}
    back = from_nir(graph)
    assert back.layers["1"].tau == pytest.approx(0.75, abs=1e-12) and back.layers["1"].threshold == 0.5


def test_batch_norm_folds_into_the_conv_by_hand():
    conv, bn = nn.Conv2d(1, 1, 1, bias=False), nn.BatchNorm2d(1, eps=1.0)
    conv.weight.data.fill_(2.0)
    bn.weight.data.fill_(3.0)
    bn.bias.data.fill_(1.0)
    bn.running_mean.fill_(0.5)
    bn.running_var.fill_(3.0)
    model = nn.Sequential(TimeFolded(nn.Sequential(conv, bn)), LIF(), TimeFolded(nn.Flatten()), nn.Linear(4, 2))
    graph = to_nir(model.eval(), (1, 2, 2), T=1)
    folded = graph.nodes["0.0"]
    # g = 3 / sqrt(3 + 1) = 1.5: W' = 2 * 1.5 = 3, b' = (0 - 0.5) * 1.5 + 1 = 0.25
    assert folded.weight.flatten().tolist() == [3.0] and folded.bias.tolist() == [0.25]
    assert list(graph.nodes) == ["input", "0.0", "1", "2", "3", "output"]
    assert graph.nodes["2"].start_dim == 0 and graph.nodes["2"].end_dim == -1  # over (C, H, W) of one sample


@pytest.mark.parametrize("name", [*SHAPES, "snntorch"])
def test_export_follows_nirs_equations(name):
    model, inputs = spiking_model(name)
    shape = inputs.shape[2:]
    for pool in ("avg", "sum"):
        graph = to_nir(model, shape, pool=pool)
        assert any(isinstance(n, nir.SumPool2d if pool == "sum" else nir.AvgPool2d) for n in graph.nodes.values())
        with torch.no_grad():
            expected = copy.deepcopy(model).double()(inputs.double())
        torch.testing.assert_close(run_nir(graph, inputs), expected, rtol=0, atol=1e-9)


ROUND_TRIPS = [(name, torch.float64) for name in SHAPES] + [("snntorch", torch.float64), ("snntorch", torch.float32)]


@pytest.mark.parametrize("pool", ["avg", "sum"])
@pytest.mark.parametrize("name, dtype", ROUND_TRIPS)
def test_round_trip_through_a_file_gives_the_same_logits_and_streaming_exits(name, dtype, pool, tmp_path):
    """Exact in float64 (BN folding rounds differently from BN in float32, which can flip a spike
    whose potential is within rounding of the threshold); bitwise in float32 for a model without BN."""
    model, inputs = spiking_model(name)
    model, inputs = model.to(dtype), inputs.to(dtype)
    set_recording(model, True)
    with torch.no_grad():
        outputs = model(inputs)
    for lif in lif_layers(model):
        assert 0.005 < lif.spikes.mean() < 0.995  # every layer spikes, none saturates
    nir.write(tmp_path / "model.nir", to_nir(model, inputs.shape[2:], epsilon=0.02, pool=pool))
    imported = from_nir(tmp_path / "model.nir", dtype=dtype)
    assert imported.T == T and imported.input_shape == tuple(inputs.shape[2:])
    assert imported.metadata == {**METADATA, "dt": 1e-4, "T": T, "cutoff_epsilon": 0.02}
    with torch.no_grad():
        imported_outputs = imported(inputs)
    if dtype == torch.float32:
        assert torch.equal(imported_outputs, outputs)
    torch.testing.assert_close(imported_outputs, outputs, rtol=0, atol=1e-9)
    epsilon = 1 - outputs[0].softmax(-1).max(-1).values.median().item()  # about half exit at step 1
    reference = confidence_cutoff(outputs, epsilon)
    for net in (model, imported):
        result = predict(net, inputs, epsilon=epsilon)
        assert torch.equal(result.exit_steps, reference.exit_steps)
        assert torch.equal(result.predictions, reference.predictions)
    assert len(reference.exit_steps.unique()) > 1


def test_resnet19_shortcuts_are_edges_into_the_neuron():
    model, _ = spiking_model("resnet19")
    graph = to_nir(model, SHAPES["resnet19"])
    into = {name: sorted(a for a, b in graph.edges if b == name) for name in graph.nodes}
    assert into["stages.0.0.lif2"] == ["stages.0.0.conv_bn2.0", "stages.0.0.shortcut.0"]  # 1x1 conv-BN projection
    assert into["stages.0.1.lif2"] == ["stages.0.0.lif2", "stages.0.1.conv_bn2.0"]  # identity shortcut
    assert into["fc1"] == ["mean.flatten"] and into["mean"] == ["stages.2.1.lif2"]  # global mean: pool + flatten


@pytest.mark.parametrize(
    "model, shape, message",
    [
        (get_model("sew_resnet34", 10, (3, 32, 32), 2), (3, 32, 32), r"max_pool \(MaxPool2d\) has no NIR equivalent"),
        (nn.Sequential(TimeFolded(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())), LIF()), (1, 4, 4), r"0.1 \(ReLU\)"),
        (nn.Sequential(TimeFolded(nn.BatchNorm2d(1)), LIF()), (1, 4, 4), r"0 \(BatchNorm2d not right after a Conv2d"),
        (nn.Sequential(TimeFolded(nn.AvgPool2d(2)), LIF()), (1, 4, 4), "1 receives sum-pooled values"),
    ],
)
def test_what_nir_cannot_express_is_refused_in_one_line(model, shape, message):
    with pytest.raises(ValueError, match=message) as error:
        to_nir(model.eval(), shape, T=2, pool="sum")
    assert "\n" not in str(error.value)


def test_training_mode_and_missing_T_are_refused():
    model, _ = spiking_model("digits_snn")
    with pytest.raises(ValueError, match="call model.eval"):
        to_nir(model.train(), SHAPES["digits_snn"])
    with pytest.raises(ValueError, match="pass T="):
        to_nir(nn.Sequential(TimeFolded(nn.Linear(2, 2)), LIF()).eval(), (2,))


def test_an_input_shape_the_model_cannot_take_is_refused_in_one_line():
    model, _ = spiking_model("digits_snn")  # built for (1, 8, 8); 9x9 frames would still flow through it
    with pytest.raises(ValueError, match=r"input_shape \(1, 9, 9\) is not the model's input_shape \(1, 8, 8\)"):
        to_nir(model, (1, 9, 9))
    converted, _ = spiking_model("snntorch")  # no input_shape of its own: 3 channels meet a Linear of 2
    with pytest.raises(ValueError, match=r"cannot take frames of input_shape \(3, 8, 8\) \(RuntimeError: ") as error:
        to_nir(converted, (3, 8, 8))
    assert "\n" not in str(error.value)


def lif_node(**changes):
    fields = {"tau": 2e-4, "r": 2.0, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0, **changes}
    return nir.LIF(**{k: np.full(3, v) for k, v in fields.items()})


def small_graph(node, metadata=None, edges=None):
    nodes = {"input": nir.Input(np.array([3])), "x": node, "output": nir.Output(np.array([3]))}
    edges = edges or [("input", "x"), ("x", "output")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": 1e-4} if metadata is None else metadata, type_check=False)


def dangling(side: str) -> nir.NIRGraph:
    """input -> x -> output, and a LIF y with an edge only out of it (into output) or only into it (from x)."""
    nodes = {"input": nir.Input(np.array([3])), "x": lif_node(), "y": lif_node(), "output": nir.Output(np.array([3]))}
    edges = [("input", "x"), ("x", "output"), ("y", "output") if side == "into" else ("x", "y")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": 1e-4}, type_check=False)


def written(path, data: bytes):
    path.write_bytes(data)
    return path


def foreign_h5(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("weights", data=np.ones(3))
    return path


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda p: p / "missing.nir", FileNotFoundError, "no such NIR file"),
        (lambda p: written(p / "empty.nir", b""), ValueError, "empty.nir is not a NIR graph file"),
        (lambda p: written(p / "notes.txt", b"hello"), ValueError, "notes.txt is not a NIR graph file"),
        (lambda p: foreign_h5(p / "other.h5"), ValueError, "other.h5 is not a NIR graph file"),
        (lambda p: nir.NIRGraph({}, [], metadata={"dt": 1e-4}), ValueError, "has no nodes"),
        (lambda p: small_graph(lif_node(), metadata={}), ValueError, "has no dt"),
        (lambda p: small_graph(lif_node(v_leak=0.5)), ValueError, "not aoi's hard-reset LIF .* v_leak = 0.5"),
        (lambda p: small_graph(lif_node(r=1.0)), ValueError, "r dt / tau = 0.5"),
        (lambda p: small_graph(lif_node(v_threshold=np.arange(3.0))), ValueError, "per-neuron v_threshold"),
        (lambda p: small_graph(lif_node(v_threshold=np.nan)), ValueError, "v_threshold = nan; aoi.s LIF needs"),
        (lambda p: small_graph(lif_node(v_threshold=-1.0)), ValueError, "v_threshold = -1.0; aoi.s LIF needs"),
        (lambda p: dangling("into"), ValueError, "node 'y' is dangling \\(no edge into it\\): every node must lie"),
        (lambda p: dangling("out of"), ValueError, "node 'y' is dangling \\(no edge out of it\\)"),
        (lambda p: small_graph(nir.I(r=np.ones(3))), ValueError, "'x' is nir.I, which aoi cannot run exactly"),
        (
            lambda p: small_graph(lif_node(), edges=[("input", "x"), ("x", "x"), ("x", "output")]),
            ValueError,
            "recurrent",
        ),
        (lambda p: 42, TypeError, "a nir.NIRGraph or the path"),
    ],
)
def test_bad_nir_input_fails_in_one_line(make, error, message, tmp_path):
    with pytest.raises(error, match=message) as raised:
        from_nir(make(tmp_path))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("name", ["resnet19", "snntorch"])
def test_snntorch_importer_reproduces_aoi_with_dt_1e4_and_flatten_fixed(name):
    """snnTorch 1.0.0's import_from_nir hard-codes dt = 1e-4 (aoi's default) and keeps NIR's
    batch-less Flatten dims, so its Flatten modules must be shifted past the batch dim."""
    import_nir = pytest.importorskip("snntorch.import_nir")
    model, inputs = spiking_model(name)
    graph = to_nir(model, inputs.shape[2:])
    net = import_nir.import_from_nir(graph)
    for module in net.modules():
        if isinstance(module, nn.Flatten):
            module.start_dim = 1
    with torch.no_grad():
        assert torch.equal(torch.stack([net(x)[0] for x in inputs]), from_nir(graph)(inputs))


@pytest.mark.parametrize("name", ["resnet19", "snntorch"])
def test_spikingjelly_importer_reproduces_aoi_with_the_graphs_dt(name):
    nir_exchange = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    model, inputs = spiking_model(name)
    graph = to_nir(model, inputs.shape[2:])
    net = nir_exchange.import_from_nir(graph, dt=graph.metadata["dt"], step_mode="m")
    with torch.no_grad():
        assert torch.equal(net(inputs)[0], from_nir(graph)(inputs))


def test_nirtorch_reproduces_aoi_with_its_affine_and_flatten_maps_replaced():
    """nirtorch 2.6's default Affine map drops the bias and its Flatten map ignores the batch dim;
    with those two replaced and a LIF map, its graph executor gives aoi's outputs."""
    nirtorch = pytest.importorskip("nirtorch")
    model, inputs = spiking_model("resnet19")

    class StepLIF(nn.Module):  # the NIR LIF by forward Euler, state passed as nirtorch does
        def __init__(self, node):
            super().__init__()
            self.decay, self.threshold = 1 - 1e-4 / float(node.tau.flat[0]), float(node.v_threshold.flat[0])

        def forward(self, x, state=None):
            v = x if state is None else self.decay * state + x
            spikes = (v > self.threshold).float()
            return spikes, v * (1 - spikes)

    def affine(node):
        linear = nn.Linear(node.weight.shape[1], node.weight.shape[0])
        linear.weight.data, linear.bias.data = torch.from_numpy(node.weight), torch.from_numpy(node.bias)
        return linear

    node_map = {nir.LIF: StepLIF, nir.Affine: affine, nir.Flatten: lambda node: nn.Flatten(node.start_dim + 1)}
    graph = to_nir(model, SHAPES["resnet19"])
    net = nirtorch.nir_to_torch(graph, node_map)
    state, outputs = None, []
    with torch.no_grad():
        for x in inputs:
            output, state = net(x, state)
            outputs.append(output)
        assert torch.equal(torch.stack(outputs), from_nir(graph)(inputs))
