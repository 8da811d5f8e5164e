"""Operation and energy counting (aoi.energy) against counts worked out by hand or by brute force."""

import itertools

import pytest
import snntorch as snn
import torch
from torch import nn

from aoi.anytime import predict
from aoi.energy import (
    E_AC_PJ,
    E_MAC_PJ,
    OperationCounter,
    UncountableLayer,
    count_operations,
    energy_pj,
    layer_operations,
    sum_until_exit,
)
from aoi.interop import from_snntorch
from aoi.models.layers import TimeFolded


def spike_map(*positions, size=4):
    x = torch.zeros(1, 1, size, size)
    for row, col in positions:
        x[0, 0, row, col] = 1.0
    return x


def test_energy_constants_are_the_45nm_figures():
    # Horowitz (ISSCC 2014), 45 nm, 32-bit float: add 0.9 pJ, multiply 3.7 pJ; a MAC is one of each
    float_add, float_mult = 0.9, 3.7
    assert float_add == E_AC_PJ and pytest.approx(float_mult + float_add) == E_MAC_PJ
    # 10 accumulates and 2 multiply-accumulates: 9.0 + 9.2 pJ
    assert energy_pj(torch.tensor([10]), torch.tensor([2])).item() == pytest.approx(18.2)


def test_linear_sops_are_spikes_times_out_features():
    linear = nn.Linear(4, 3)
    # [T=2, N=2, 4]: spike counts 2, 0 (sample 0) and 4, 1 (sample 1)
    spikes = torch.tensor([[[1.0, 0, 1, 0], [1, 1, 1, 1]], [[0.0, 0, 0, 0], [0, 0, 1, 0]]])
    counts = count_operations(linear, spikes)
    assert counts.synops.tolist() == [[2 * 3, 4 * 3], [0, 1 * 3]]
    assert counts.macs.tolist() == [[0, 0], [0, 0]]
    assert counts.outputs.shape == (2, 2, 3)


def test_linear_on_real_values_is_dense_macs():
    linear = nn.Linear(4, 3)
    x = torch.tensor([[[0.5, 0, 0, 0], [1, 0, 1, 0]]])  # [T=1, N=2, 4]: first row real, second binary
    synops, macs = layer_operations(linear, x[0], linear(x[0]))
    assert synops.tolist() == [0, 2 * 3]
    assert macs.tolist() == [4 * 3, 0]


def test_conv_fanout_at_corner_and_inside():
    # 1 -> 1 channel, 3x3, stride 1, padding 1 on 4x4. A spike at the corner (0, 0) reaches the
    # outputs (0,0), (0,1), (1,0), (1,1): 4. A spike at (1, 1) reaches outputs rows 0-2 x cols 0-2: 9.
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    x = spike_map((0, 0), (1, 1))
    synops, macs = layer_operations(conv, x, conv(x))
    assert synops.tolist() == [4 + 9]
    assert macs.tolist() == [0]
    # two output channels: every connection doubles
    conv2 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    assert layer_operations(conv2, x, conv2(x))[0].tolist() == [2 * 13]


def test_conv_fanout_with_stride_two():
    # stride 2, padding 1 on 4x4: output (i, j) is centred on input (2i, 2j), i, j in {0, 1}.
    # (0, 0) lies only in the window centred on (0, 0): 1. (1, 1) lies in all four windows: 4.
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
    x = spike_map((0, 0), (1, 1))
    assert layer_operations(conv, x, conv(x))[0].tolist() == [1 + 4]


def test_grouped_conv_spike_drives_only_its_group():
    # 2 -> 4 channels, groups 2, 1x1 kernel: a spike in channel c drives the 2 outputs of its group.
    conv = nn.Conv2d(2, 4, 1, groups=2, bias=False)
    x = torch.zeros(1, 2, 3, 3)
    x[0, 0, 1, 1] = x[0, 1, 0, 2] = x[0, 1, 2, 2] = 1
    assert layer_operations(conv, x, conv(x))[0].tolist() == [3 * 2]


def test_conv_on_real_values_is_dense_macs():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    x = torch.full((1, 1, 4, 4), 0.3)
    synops, macs = layer_operations(conv, x, conv(x))
    assert synops.tolist() == [0]
    assert macs.tolist() == [2 * 4 * 4 * 9]  # output elements x fan-in


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation,groups,padding_mode",
    [
        ((3, 3), 1, 1, 1, 1, "zeros"),
        ((3, 3), 2, 1, 1, 1, "zeros"),
        ((3, 3), 1, 0, 1, 2, "zeros"),
        ((3, 3), 2, 2, 2, 2, "zeros"),
        ((3, 3), 1, 1, 1, 1, "reflect"),
        ((3, 3), 3, 1, 1, 1, "zeros"),
        ((2, 3), 1, 1, 1, 1, "zeros"),
        ((3, 1), 2, 1, 2, 2, "zeros"),
    ],
)
def test_conv_sops_match_brute_force(kernel, stride, padding, dilation, groups, padding_mode):
    torch.manual_seed(0)
    conv = nn.Conv2d(
        4, 6, kernel, stride, padding, dilation=dilation, groups=groups, padding_mode=padding_mode, bias=False
    )
    x = (torch.rand(2, 4, 7, 6) < 0.3).float()
    out = conv(x)
    expected = []
    for sample in x:
        padded = nn.functional.pad(sample, (padding,) * 4, mode="constant" if padding_mode == "zeros" else padding_mode)
        total = 0
        per_group_in, per_group_out = 4 // groups, 6 // groups
        positions = itertools.product(range(6), range(out.shape[2]), range(out.shape[3]), *map(range, kernel))
        for o, i, j, a, b in positions:
            g = o // per_group_out
            for c in range(g * per_group_in, (g + 1) * per_group_in):
                total += int(padded[c, i * stride + a * dilation, j * stride + b * dilation])
        expected.append(total)
    assert layer_operations(conv, x, out)[0].tolist() == expected


def test_spike_counts_are_one_accumulate_per_event():
    # an element holding 2 events (event-count frame, SEW ADD output) is delivered twice
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    x = 2 * spike_map((0, 0)) + spike_map((1, 1))
    assert layer_operations(conv, x, conv(x))[0].tolist() == [2 * 4 + 9]
    linear = nn.Linear(4, 3)
    x = torch.tensor([[2.0, 0, 3, 1]])
    assert layer_operations(linear, x, linear(x))[0].tolist() == [6 * 3]


def test_average_pooled_spikes_fold_into_the_next_layer():
    # spikes at (0,0), (0,1), (1,1) of a 4x4 map, avg-pooled 2x2 -> one pooled element of 3/4 at
    # (0,0) of a 2x2 map. A 3x3 conv with padding 1 on 2x2: every output sees every input, so the
    # pooled element's fan-out is 4, and each of its 3 spikes is delivered 4 times: 12 SOPs.
    pooled = nn.functional.avg_pool2d(spike_map((0, 0), (0, 1), (1, 1)), 2)
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    synops, macs = layer_operations(conv, pooled, conv(pooled), pool_area=4)
    assert (synops.tolist(), macs.tolist()) == ([12], [0])
    synops, macs = layer_operations(conv, pooled, conv(pooled))  # without the pool: real values
    assert (synops.tolist(), macs.tolist()) == ([0], [4 * 9])
    image = nn.functional.avg_pool2d(torch.full((1, 1, 4, 4), 0.3), 2)  # a pooled image: 0.3 x 4 is no count
    assert layer_operations(conv, image, conv(image), pool_area=4)[1].tolist() == [4 * 9]
    # 3x3 pool (area 9, inexact in floating point): 2 spikes -> 2/9 -> 2 spikes x fan-out of 1
    pooled9 = nn.functional.avg_pool2d(spike_map((0, 0), (2, 2), size=3), 3)
    linear = nn.Linear(1, 5)
    assert layer_operations(linear, pooled9.flatten(1), None, pool_area=9)[0].tolist() == [2 * 5]


def test_counter_recognises_average_pooled_spikes():
    class Net(nn.Module):  # image -> conv -> spikes -> avg pool 2 -> linear
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1, bias=False)
            nn.init.ones_(self.conv.weight)
            self.pool = nn.AvgPool2d(2)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            spikes = (self.conv(x.flatten(0, 1)) > 0.5).float()
            return self.fc(self.pool(spikes).flatten(1)).unflatten(0, x.shape[:2])

    x = torch.zeros(1, 1, 1, 4, 4)
    x[0, 0, 0, :2, :] = 0.75  # the image: real-valued, MACs
    x[0, 0, 0, 3, 3] = 0.25
    counts = count_operations(Net(), x)
    assert counts.macs.tolist() == [[16 * 1]]  # the 1x1 conv on 16 pixels
    # 8 spikes (rows 0-1) pooled into two elements equal to 1: each is 4 spikes, not 1, x 3 outputs
    assert counts.synops.tolist() == [[8 * 3]]


def test_mixed_rows_are_charged_separately():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    negative = -spike_map((0, 0))  # integer but negative: not spikes, so dense MACs
    x = torch.cat([spike_map((0, 0)), torch.full((1, 1, 4, 4), 0.5), negative])
    synops, macs = layer_operations(conv, x, conv(x))
    assert synops.tolist() == [4, 0, 0]
    assert macs.tolist() == [0, 16 * 9, 16 * 9]


def test_first_real_layer_macs_then_spiking_layer_sops():
    # real-valued image -> conv (MACs) -> threshold to spikes -> linear (SOPs), per step and sample
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
            nn.init.zeros_(self.conv.weight)
            self.conv.weight.data[0, 0, 1, 1] = 1.0  # identity conv
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            y = (self.conv(x.flatten(0, 1)) > 0.5).float()
            return self.fc(y.flatten(1)).unflatten(0, x.shape[:2])

    x = torch.zeros(2, 1, 1, 4, 4)  # [T=2, N=1, 1, 4, 4]
    x[0, 0, 0, 0, :3] = 0.9  # 3 pixels above 0.5 at step 1
    x[1, 0, 0, 2, 2] = 0.7  # 1 at step 2
    x[1, 0, 0, 3, 3] = 0.2  # below threshold, still a real input
    counts = count_operations(Net(), x)
    assert counts.macs.tolist() == [[16 * 9], [16 * 9]]
    assert counts.synops.tolist() == [[3 * 5], [1 * 5]]
    assert energy_pj(counts.synops, counts.macs).sum().item() == pytest.approx(4.6 * 2 * 144 + 0.9 * 20)


def test_sum_until_exit_counts_only_executed_steps():
    per_step = torch.tensor([[1, 10], [2, 20], [4, 40]])  # [T=3, N=2]
    assert sum_until_exit(per_step, torch.tensor([2, 3])).tolist() == [1 + 2, 10 + 20 + 40]
    assert sum_until_exit(per_step, torch.tensor([1, 1])).tolist() == [1, 10]


def test_layers_must_fold_time_into_the_batch():
    class Unfolded(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):  # sums over time first: the linear sees N rows, not T * N
            return self.fc(x.sum(0))[None].expand(x.shape[0], -1, -1)

    with pytest.raises(ValueError, match="fold time"):
        count_operations(Unfolded(), torch.zeros(3, 2, 4))


def test_counter_removes_its_hooks():
    linear = nn.Linear(4, 3)
    with OperationCounter(linear) as counter:
        linear(torch.ones(2, 4))
        assert counter.take()[0].tolist() == [12, 12]
    assert not linear._forward_hooks
    with pytest.raises(ValueError, match="no nn.Conv1d/2d/3d or nn.Linear"):
        OperationCounter(nn.ReLU())


def test_non_square_kernels_by_hand():
    # a 2x3 kernel, no padding, on a 3x4 map: 2x2 outputs, output (i, j) sees rows i..i+1, columns j..j+2.
    # (0, 0) lies in the window of output (0, 0) only: 1. (1, 2) lies in all four windows: 4.
    conv = nn.Conv2d(1, 1, (2, 3), bias=False)
    x = spike_map((0, 0), (1, 2), size=4)[..., :3, :]  # [1, 1, 3, 4]
    assert layer_operations(conv, x, conv(x))[0].tolist() == [1 + 4]
    real = torch.full((1, 1, 3, 4), 0.3)
    assert layer_operations(conv, real, conv(real))[1].tolist() == [2 * 2 * (2 * 3)]  # outputs x fan-in
    # the transposed kernel 3x2 on the same map: 1x3 outputs; (0, 0): 1; (1, 2) in the windows j = 1, 2: 2
    tall = nn.Conv2d(1, 1, (3, 2), bias=False)
    assert layer_operations(tall, x, tall(x))[0].tolist() == [1 + 2]
    assert layer_operations(tall, real, tall(real))[1].tolist() == [1 * 3 * (3 * 2)]


def test_conv1d_and_conv3d_by_hand():
    # Conv1d 1 -> 2 channels, kernel 3, padding 1, on [1, 0, 1, 0, 0]: output j sees inputs j-1..j+1.
    # The spike at 0 reaches outputs 0, 1; the one at 2 outputs 1, 2, 3: (2 + 3) x 2 channels.
    conv1d = nn.Conv1d(1, 2, 3, padding=1, bias=False)
    x = torch.tensor([[[1.0, 0, 1, 0, 0]]])
    assert layer_operations(conv1d, x, conv1d(x))[0].tolist() == [(2 + 3) * 2]
    real = torch.full((1, 1, 5), 0.5)
    assert layer_operations(conv1d, real, conv1d(real))[1].tolist() == [2 * 5 * 3]
    # Conv3d kernel (1, 2, 3), no padding, on D, H, W = 2, 3, 4: 2 x 2 x 2 outputs of fan-in 6. The spike
    # at (0, 1, 1) lies in the windows d = 0, i = 0..1, j = 0..1: 4; the one at (1, 0, 3) in d = 1, i = 0, j = 1: 1.
    conv3d = nn.Conv3d(1, 1, (1, 2, 3), bias=False)
    x = torch.zeros(1, 1, 2, 3, 4)
    x[0, 0, 0, 1, 1] = x[0, 0, 1, 0, 3] = 1
    assert layer_operations(conv3d, x, conv3d(x))[0].tolist() == [4 + 1]
    real = torch.full((1, 1, 2, 3, 4), 0.5)
    assert layer_operations(conv3d, real, conv3d(real))[1].tolist() == [8 * 6]


def test_two_layers_that_both_cost_macs_add_up():
    # real input -> Linear 4 -> 3 (every output 4 x 0.25 x 0.5 + 0.1 = 0.6, still real) -> Linear 3 -> 2
    first, second = nn.Linear(4, 3), nn.Linear(3, 2)
    for layer in (first, second):
        nn.init.constant_(layer.weight, 0.25)
        nn.init.constant_(layer.bias, 0.1)
    counts = count_operations(nn.Sequential(first, second), torch.full((2, 3, 4), 0.5))  # [T=2, N=3, 4]
    assert counts.macs.tolist() == [[4 * 3 + 3 * 2] * 3] * 2
    assert counts.synops.tolist() == [[0] * 3] * 2


def pooled_linear(pool: nn.Module, features: int) -> nn.Module:
    """[T, N, 1, *S] -> pool -> flatten -> Linear(features, 3) with the time folded into the batch."""
    return TimeFolded(nn.Sequential(pool, nn.Flatten(), nn.Linear(features, 3)))


@pytest.mark.parametrize(
    "pool, shape",
    [
        (nn.AvgPool2d((1, 2)), (1, 1, 4)),  # a tuple kernel: area 2
        (nn.AvgPool2d((1, 2), divisor_override=3), (1, 1, 4)),  # values are sums / 3, not / 2
        (nn.AvgPool2d(1, divisor_override=1), (1, 1, 4)),  # a sum pool (NIR's SumPool2d): area 1
        (nn.AvgPool1d(2), (1, 4)),
        (nn.AvgPool3d((1, 1, 2)), (1, 1, 1, 4)),
    ],
    ids=["tuple-kernel", "divisor-override", "sum-pool", "1d", "3d"],
)
def test_average_pools_of_every_kind_fold_into_the_next_layer(pool, shape):
    # spikes 1, 1, 0, 1 along the last axis. A pool of 2 along it holds 2 and 1 spikes (1 pool: 1, 1, 0, 1);
    # each spike reaches the 3 outputs of the linear layer: (2 + 1) x 3 = 9 SOPs, no MACs.
    spikes = torch.tensor([1.0, 1, 0, 1]).view(1, 1, *shape)  # [T=1, N=1, C=1, *S]
    features = 4 if pool.kernel_size in (1, (1, 1)) else 2
    counts = count_operations(pooled_linear(pool, features), spikes)
    assert (counts.synops.tolist(), counts.macs.tolist()) == ([[3 * 3]], [[0]])


def test_counts_are_int64_and_energy_float64():
    model = pooled_linear(nn.AvgPool2d(2), 4).eval()
    model.T = 3
    inputs = (torch.rand(3, 5, 1, 4, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    counts = count_operations(model, inputs)
    assert counts.synops.dtype == counts.macs.dtype == torch.int64
    assert energy_pj(counts.synops, counts.macs).dtype == torch.float64
    result = predict(model, inputs, epsilon=0.1)
    assert result.synops.dtype == result.macs.dtype == torch.int64 and result.energy_pj.dtype == torch.float64


def leaky():
    return snn.Leaky(beta=0.9, threshold=0.5, init_hidden=True, reset_mechanism="zero")


def test_a_converted_conv1d_network_counts_as_its_conv2d_twin():
    # the same synapses as a Conv1d on [C, L] and as a Conv2d with a 1 x 3 kernel on [C, 1, L]
    torch.manual_seed(0)
    conv1d, conv2d = nn.Conv1d(2, 4, 3, padding=1), nn.Conv2d(2, 4, (1, 3), padding=(0, 1))
    conv2d.weight.data, conv2d.bias.data = conv1d.weight.data[:, :, None].clone(), conv1d.bias.data.clone()
    linear = nn.Linear(4 * 6, 3)
    one_d = from_snntorch(nn.Sequential(conv1d, leaky(), nn.Flatten(), linear)).eval()
    two_d = from_snntorch(nn.Sequential(conv2d, leaky(), nn.Flatten(), linear)).eval()
    inputs = (torch.rand(5, 7, 2, 6, generator=torch.Generator().manual_seed(1)) < 0.4).float()  # [T, N, C, L]
    counts_1d, counts_2d = count_operations(one_d, inputs), count_operations(two_d, inputs[:, :, :, None])
    assert torch.equal(counts_1d.outputs, counts_2d.outputs)
    assert torch.equal(counts_1d.synops, counts_2d.synops) and torch.equal(counts_1d.macs, counts_2d.macs)
    assert counts_1d.synops.min() > 0  # both layers counted: the conv's input spikes are never all zero here
    result = predict(one_d, inputs, epsilon=0.1)
    assert torch.equal(result.synops, predict(two_d, inputs[:, :, :, None], epsilon=0.1).synops)


@pytest.mark.parametrize(
    "layer, where",
    [
        (nn.ConvTranspose1d(2, 2, 3, padding=1), "0.module (ConvTranspose1d)"),
        (nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), nn.MultiheadAttention(6, 1)), None),
    ],
    ids=["transposed-conv", "attention"],
)
def test_a_layer_whose_synapses_cannot_be_counted_is_named(layer, where):
    model = from_snntorch(nn.Sequential(layer, leaky(), nn.Flatten(), nn.Linear(2 * 6, 3))).eval()
    where = where or "0.module.1 (MultiheadAttention)"
    inputs = torch.ones(2, 1, 2, 6)
    for count in (lambda: count_operations(model, inputs), lambda: predict(model, inputs, epsilon=0.1)):
        with pytest.raises(UncountableLayer) as error:
            count()
        assert str(error.value) == (
            f"cannot count the synaptic operations of {where}: aoi counts nn.Conv1d, nn.Conv2d, nn.Conv3d and "
            "nn.Linear layers; count without it (predict(..., count=False))"
        )
