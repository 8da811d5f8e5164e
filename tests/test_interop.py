"""snnTorch networks as aoi models (aoi.interop.from_snntorch), checked against snnTorch itself,
and the refusal of models whose state aoi does not manage (aoi.neurons.streaming, predict)."""

import re

import pytest
import snntorch as snn
import torch
from snntorch import utils
from torch import nn

from aoi.anytime import predict
from aoi.cutoff import confidence_cutoff
from aoi.energy import count_operations
from aoi.interop import from_snntorch
from aoi.models.layers import TimeFolded
from aoi.neurons import LIF, lif_layers, set_recording, streaming
from aoi.regularisers import collect_factors

T, N = 6, 40


def leaky(**kwargs):
    return snn.Leaky(init_hidden=True, reset_mechanism="zero", **{"beta": 0.9, **kwargs})


def snntorch_net(readout: str = "linear", reset_delay: bool = True) -> nn.Sequential:
    """conv-BN-Leaky, avg-pool, flatten, linear (-Leaky), as in snnTorch's tutorials; weights that spike."""
    torch.manual_seed(0)
    layers = [
        nn.Conv2d(2, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        leaky(threshold=0.7, reset_delay=reset_delay),
        nn.AvgPool2d(2),
        nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 10)),
    ]
    if readout == "leaky":
        layers.append(leaky(beta=0.8, threshold=0.5, output=True, reset_delay=reset_delay))
    net = nn.Sequential(*layers)
    net[1].running_mean.uniform_(-0.5, 0.5)
    net[1].running_var.uniform_(0.5, 2.0)
    net[1].bias.data.uniform_(0.3, 1.0)
    net[4][1].weight.data *= 4
    return net.eval()


def event_inputs(seed: int = 0) -> torch.Tensor:
    return (torch.rand(T, N, 2, 8, 8, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def run_snntorch(net: nn.Sequential, inputs: torch.Tensor) -> torch.Tensor:
    """snnTorch's own time loop: reset the hidden states, call the net once per step, stack."""
    utils.reset(net)
    with torch.no_grad():
        outputs = [net(x) for x in inputs]
    return torch.stack([out[0] if isinstance(out, tuple) else out for out in outputs])


@pytest.mark.parametrize("readout", ["linear", "leaky"])
@pytest.mark.parametrize("reset_delay", [True, False])
def test_converted_network_gives_snntorchs_per_step_outputs(readout, reset_delay):
    net = snntorch_net(readout, reset_delay)
    inputs = event_inputs()
    model = from_snntorch(net)
    assert [type(m) for m in model] == [TimeFolded, LIF, TimeFolded] + [LIF] * (readout == "leaky")
    assert model[1].tau == pytest.approx(0.9) and model[1].threshold == pytest.approx(0.7)
    set_recording(model, True)
    with torch.no_grad():
        outputs = model(inputs)
    assert torch.equal(outputs, run_snntorch(net, inputs))  # readout "leaky": snnTorch's spk of (spk, mem)
    for lif in lif_layers(model):
        assert 0.02 < lif.spikes.mean() < 0.98  # the layers really spike
    assert model[0].module[0].weight is not net[0].weight  # a copy: training one leaves the other alone


def test_converted_network_supports_str_counting_and_streaming_exits():
    """The issue's case: predict on an snnTorch net gave exits that differ from the post-hoc rule."""
    model = from_snntorch(snntorch_net())
    inputs = event_inputs(1)
    set_recording(model, True)
    outputs = model(inputs)
    assert collect_factors(model).shape == (N, 1)
    set_recording(model, False)
    counts = count_operations(model, inputs)
    assert counts.synops.shape == (T, N) and (counts.synops > 0).all() and counts.macs.sum() == 0
    epsilon = 1 - outputs[0].detach().softmax(-1).max(-1).values.median().item()  # about half exit at step 1
    reference = confidence_cutoff(outputs.detach(), epsilon)
    result = predict(model, inputs, epsilon=epsilon)
    assert torch.equal(result.exit_steps, reference.exit_steps)
    assert torch.equal(result.predictions, reference.predictions)
    assert len(result.exit_steps.unique()) > 1  # samples exit at different steps


class TimeLoop(nn.Module):
    """What a new user writes around an snnTorch network: [T, N, ...] -> [T, N, K]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.stack([self.net(x_t) for x_t in x])


@pytest.mark.parametrize(
    "model, where",
    [
        (TimeLoop(snntorch_net()).eval(), "layer net.2 (Leaky)"),
        (nn.Sequential(nn.GRU(4, 4)), "layer 0 (GRU)"),
        (nn.Sequential(nn.Linear(4, 4), nn.RNNCell(4, 4)), "layer 1 (RNNCell)"),
    ],
)
def test_streaming_and_predict_refuse_state_they_do_not_manage(model, where):
    with pytest.raises(ValueError, match="keeps hidden state") as error, streaming(model):
        pass
    assert str(error.value).startswith(where) and "from_snntorch" in str(error.value) and "\n" not in str(error.value)
    if isinstance(model, TimeLoop):
        with pytest.raises(ValueError, match=f"^{re.escape(where)}"):
            predict(model, event_inputs(), epsilon=0.1)


class Doubler(nn.Module):
    def forward(self, x):
        return 2 * x


@pytest.mark.parametrize(
    "layer, reason",
    [
        (snn.Leaky(beta=0.9, init_hidden=True), "reset_mechanism='subtract'"),
        (leaky(learn_beta=True), "learnable beta"),
        (leaky(beta=torch.full((8, 8, 8), 0.9)), r"per-neuron beta \(shape \(8, 8, 8\)\)"),
        (leaky(learn_threshold=True), "learnable threshold"),
        (leaky(graded_spikes_factor=2.0), "graded spikes"),
        (leaky(output=True), "only the last layer may"),
        (snn.Synaptic(alpha=0.5, beta=0.9, init_hidden=True, reset_mechanism="zero"), "snn.Synaptic: its synaptic"),
        (snn.RLeaky(beta=0.9, linear_features=8, init_hidden=True, reset_mechanism="zero"), "snn.RLeaky: recurrent"),
        (nn.LSTM(8, 8), "is recurrent"),
        (Doubler(), "not a torch.nn layer"),
    ],
)
def test_layers_without_an_exact_aoi_equivalent_are_named_with_the_reason(layer, reason):
    net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.Sequential(leaky(), layer), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=f"layer 1.1 .*{reason}") as error:
        from_snntorch(net)
    assert "\n" not in str(error.value)


def test_recording_a_network_without_aoi_neurons_is_refused():
    with pytest.raises(ValueError, match="Sequential has no aoi.neurons.LIF layer to record .*from_snntorch"):
        set_recording(snntorch_net(), True)
    set_recording(snntorch_net(), False)  # dropping recorded state: nothing to do, no error


def test_only_sequential_networks_with_neurons_are_converted():
    with pytest.raises(ValueError, match="converts an nn.Sequential called once per step, got TimeLoop"):
        from_snntorch(TimeLoop(snntorch_net()))
    with pytest.raises(ValueError, match="has no snn.Leaky"):
        from_snntorch(nn.Sequential(nn.Linear(2, 2)))


def test_the_surrogate_becomes_aois_triangle_of_the_chosen_width():
    model = from_snntorch(nn.Sequential(nn.Linear(1, 1, bias=False), leaky(beta=0.5)), width=0.5)
    model[0].module.weight.data.fill_(1.0)
    x = torch.tensor([[[1.2]], [[0.0]]], requires_grad=True)  # u_1 = 1.2: ds/du = max(0, 0.5 - 0.2) / 0.25
    model(x)[0].sum().backward()
    assert x.grad[0, 0, 0].item() == pytest.approx(1.2)
