"""Models: shapes, architecture tables, parameter counts (hand-computed), streaming equality."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from aoi.models import DEFAULT_MODEL, MODELS, get_model
from aoi.models.layers import AvgPool2, folded_inference
from aoi.neurons import LIF, lif_layers, streaming

torch.set_num_threads(1)  # the CI box has 2 shared cores; threads spinning against each other cost 10x

# name, input_shape (C, H, W), T, N: small enough for a CPU test, large enough for every pooling stage
CASES = [
    ("digits_snn", (1, 8, 8), 4, 3),  # digits frames
    ("digits_snn", (2, 16, 16), 10, 3),  # ndigits events
    ("fashion_snn", (1, 28, 28), 4, 2),  # fashion-mnist frames
    ("fashion_snn", (2, 34, 34), 3, 2),  # nfashion events
    ("resnet19", (3, 32, 32), 2, 2),
    ("vggsnn", (2, 48, 48), 2, 2),
    ("sew_resnet34", (3, 32, 32), 2, 1),
]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def convs(model: nn.Module, kernel: int | None = None) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and kernel in (None, m.kernel_size[0])]


def test_every_registered_model_is_covered():
    assert {name for name, *_ in CASES} == set(MODELS)
    assert set(DEFAULT_MODEL.values()) <= set(MODELS)


@pytest.mark.parametrize("name, shape, T, N", CASES)
def test_output_is_per_step_logits(name, shape, T, N):
    torch.manual_seed(0)
    model = get_model(name, 7, shape, T)
    outputs = model(torch.rand(T, N, *shape))
    assert outputs.shape == (T, N, 7)
    assert model.T == T


def model_in_eval(name, shape, T, N, seed):
    """(model in eval mode, inputs [T, N, *shape]) with batch norm holding these inputs' statistics."""
    torch.manual_seed(seed)
    model = get_model(name, 5, shape, T)
    inputs = 4 * torch.rand(T, N, *shape)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = 1.0  # the training forward below sets the running statistics to this batch's
    if name == "resnet19":
        model.fc1.weight.data *= 30  # at init the LIF after fc1 stays silent on pooled spike rates
    model.train()
    model(inputs)
    return model.eval(), inputs


@pytest.mark.parametrize("name, shape, T, N", CASES)
def test_streaming_one_step_at_a_time_equals_full_forward_bit_for_bit(name, shape, T, N):
    model, inputs = model_in_eval(name, shape, T, N, seed=1)
    with torch.no_grad():
        full = model(inputs)
        with streaming(model):
            streamed = torch.cat([model(inputs[t : t + 1]) for t in range(T)])
        alone = []  # each sample on its own: batches of one row, where PyTorch would pick other kernels
        for n in range(N):
            with streaming(model):
                alone.append(torch.cat([model(inputs[t : t + 1, n : n + 1]) for t in range(T)]))
    assert not torch.allclose(full[0], full[-1]), "no temporal dynamics: the test would prove nothing"
    assert torch.equal(streamed, full)  # bit for bit (aoi.anytime's exactness rests on it)
    assert torch.equal(torch.cat(alone, 1), full)


@pytest.mark.parametrize(
    "name, shape, T, N", [case for case in CASES if case[0] in ("digits_snn", "fashion_snn", "vggsnn")]
)
def test_the_folded_inference_path_gives_the_module_path_bits(name, shape, T, N):
    """ConvSNN and VGGSNN infer without module calls (`run_folded`) when nothing watches them; a hook
    anywhere, or autograd, takes the module path. The same kernels in the same order: the same bits."""
    model, inputs = model_in_eval(name, shape, T, N, seed=2)
    with torch.no_grad():
        assert folded_inference(model, inputs)
        folded = model(inputs)
        handle = lif_layers(model)[-1].register_forward_hook(lambda *args: None)
        assert not folded_inference(model, inputs)
        module = model(inputs)
        handle.remove()
    with_autograd = model(inputs)
    assert with_autograd.requires_grad
    assert folded.abs().sum() > 0 and not torch.allclose(folded[0], folded[-1])
    assert torch.equal(folded, module)
    assert torch.equal(folded, with_autograd.detach())
    for lif in lif_layers(model):  # a recording LIF (STR's analysis) is a watcher too
        lif.record = True
        assert not folded_inference(model, inputs)
        lif.record = False


class Heaviside(nn.Module):
    """Another neuron in a LIF's place (no state): spikes where the current passes 1, [T, N, ...]."""

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return (current > 1).to(current.dtype)


def test_a_model_changed_after_a_call_takes_the_path_its_modules_allow():
    """Inference lists a model's modules once: a neuron swapped in later (not an aoi LIF) runs as
    a module, and a convolution swapped in later with a hook sees its call."""
    model, inputs = model_in_eval("digits_snn", (2, 16, 16), 4, 2, seed=3)
    with torch.no_grad():
        model(inputs)  # lists the modules
        blocks = [block for block in model.modules() if hasattr(block, "lif")]
        for block in blocks:
            block.lif = Heaviside()
        assert not folded_inference(model, inputs)
        swapped = model(inputs)
        rows = inputs
        for block in model.features:  # the same chain by hand, module by module
            rows = block(rows)
        assert torch.equal(swapped, model.readout(rows.flatten(2)))
    model, inputs = model_in_eval("digits_snn", (2, 16, 16), 4, 2, seed=3)
    calls, block = [], model.features[0]
    conv = block.conv_bn.module[0]
    replacement = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding, bias=False)
    replacement.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        model(inputs)  # lists the modules again
        block.conv_bn.module[0] = replacement
        model(inputs)
    assert calls == [1]


def test_every_lif_is_its_own_module():
    """A LIF used at two places would mix their carried states and STR recordings."""
    for name, shape, T, _ in CASES:
        model = get_model(name, 10, shape, T)
        lifs = lif_layers(model)
        assert len({id(lif) for lif in lifs}) == len(lifs) == sum(isinstance(m, LIF) for m in model.modules())


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet50'.*digits_snn.*resnet19.*vggsnn"):
        get_model("resnet50", 10, (3, 32, 32), 4)


def test_bad_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="vggsnn needs inputs of at least 16x16"):
        get_model("vggsnn", 10, (2, 8, 8), 10)


# ---------------------------------------------------------------- architecture tables (docstrings)


def test_digits_snn_table_and_parameter_count():
    model = get_model("digits_snn", 10, (1, 8, 8), 4)
    assert [(c.in_channels, c.out_channels) for c in convs(model, 3)] == [(1, 32), (32, 64)]
    assert len(lif_layers(model)) == 2
    assert model.readout.in_features == 64 * 2 * 2
    # conv 9*1*32 + BN 2*32 + conv 9*32*64 + BN 2*64 + Linear 256*10 + 10
    assert count_params(model) == 288 + 64 + 18432 + 128 + 2570 == 21482
    # ndigits: 2 polarities on 16x16 -> 64 x 4 x 4 features
    events = get_model("digits_snn", 10, (2, 16, 16), 10)
    assert count_params(events) == 9 * 2 * 32 + 64 + 18432 + 128 + (64 * 16 + 1) * 10 == 29450


def test_fashion_snn_table_and_parameter_count():
    model = get_model("fashion_snn", 10, (1, 28, 28), 4)
    assert [c.out_channels for c in convs(model, 3)] == [32, 64, 128]
    assert model.readout.in_features == 128 * 3 * 3
    assert count_params(model) == 288 + 64 + 18432 + 128 + 73728 + 256 + (1152 + 1) * 10 == 104426


def test_resnet19_table():
    model = get_model("resnet19", 10, (3, 32, 32), 4)
    main_path = [c.out_channels for c in convs(model, 3)]
    assert main_path == [64] + [128] * 6 + [256] * 6 + [512] * 4  # stem + 3/3/2 blocks of 2 convs
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs(model, 1)] == [
        (64, 128, 1),
        (128, 256, 2),
        (256, 512, 2),
    ]  # shortcut projections
    assert all(c.bias is None for c in convs(model))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(512, 256), (256, 10)]
    assert len(main_path) + len(linears) == 19
    assert len(lif_layers(model)) == 1 + 2 * 8 + 1  # stem, two per block, fc1
    stem = 3 * 64 * 9 + 128
    stage1 = (64 * 128 * 9 + 256) + (128 * 128 * 9 + 256) + (64 * 128 + 256) + 2 * 2 * (128 * 128 * 9 + 256)
    stage2 = (128 * 256 * 9 + 512) + (256 * 256 * 9 + 512) + (128 * 256 + 512) + 2 * 2 * (256 * 256 * 9 + 512)
    stage3 = (256 * 512 * 9 + 1024) + (512 * 512 * 9 + 1024) + (256 * 512 + 1024) + 2 * (512 * 512 * 9 + 1024)
    head = (512 * 256 + 256) + (256 * 10 + 10)
    assert count_params(model) == stem + stage1 + stage2 + stage3 + head == 12_630_858
    # spatial sizes: 32 -> 32 -> 16 -> 8 for CIFAR
    features = model.stages(model.stem(torch.rand(1, 1, 3, 32, 32)))
    assert features.shape == (1, 1, 512, 8, 8)


def test_vggsnn_table():
    model = get_model("vggsnn", 10, (2, 48, 48), 10)
    assert [(c.in_channels, c.out_channels) for c in convs(model, 3)] == [
        (2, 64),
        (64, 128),
        (128, 256),
        (256, 256),
        (256, 512),
        (512, 512),
        (512, 512),
        (512, 512),
    ]
    assert all(c.bias is not None for c in convs(model))  # TET's Layer keeps the conv bias
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 4
    assert len(lif_layers(model)) == 8
    assert (model.classifier.in_features, model.classifier.out_features) == (512 * 3 * 3, 10)
    conv_params = [9 * i * o + o for i, o in [(2, 64), (64, 128), (128, 256), (256, 256), (256, 512)]]
    conv_params += [9 * 512 * 512 + 512] * 3
    bn_params = 2 * (64 + 128 + 256 + 256 + 512 * 4)
    assert count_params(model) == sum(conv_params) + bn_params + 4608 * 10 + 10 == 9_271_498


def test_sew_resnet34_table():
    model = get_model("sew_resnet34", 1000, (3, 224, 224), 4)
    assert [(c.out_channels, c.stride[0]) for c in convs(model, 7)] == [(64, 2)]
    main_path = [c.out_channels for c in convs(model, 3)]
    assert main_path == [64] * 6 + [128] * 8 + [256] * 12 + [512] * 6  # 3/4/6/3 blocks of 2 convs
    assert [(c.in_channels, c.out_channels) for c in convs(model, 1)] == [(64, 128), (128, 256), (256, 512)]
    assert 1 + len(main_path) + 1 == 34  # stem + convs + fc
    assert len(lif_layers(model)) == 1 + 2 * 16 + 3  # stem, two per block, shortcuts
    assert (model.fc.in_features, model.fc.out_features) == (512, 1000)
    # same convs, BNs and fc as torchvision's ResNet-34; the LIFs have no parameters
    reference = torchvision.models.resnet34(weights=None)
    assert count_params(model) == count_params(reference) == 21_797_672


def test_sew_block_adds_spikes_after_the_neuron():
    """SEW ADD: the block output is spikes(residual) + shortcut spikes, so it can exceed 1."""
    torch.manual_seed(0)
    model = get_model("sew_resnet34", 10, (3, 32, 32), 2)
    block = model.stages[0][0]
    spikes = (torch.rand(2, 2, 64, 8, 8) > 0.5).float()
    out = block(spikes)
    assert set(out.unique().tolist()) <= {0.0, 1.0, 2.0}
    assert torch.equal(out - spikes, block.lif2(block.conv_bn2(block.lif1(block.conv_bn1(spikes)))))


@pytest.mark.parametrize(
    "shape,layout",
    [
        ((4, 40, 16, 16), torch.contiguous_format),
        ((2, 40, 17, 19), torch.contiguous_format),
        ((3, 5, 8, 8), torch.contiguous_format),
        ((3, 6, 10, 12), torch.channels_last),
    ],
    ids=["even", "odd", "small", "channels-last"],
)
def test_fast_average_pool_equals_torchs_bit_for_bit(shape, layout):
    """AvgPool2 reorders nothing: the same sums in the same order, forward and backward, for any values."""
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 3).contiguous(memory_format=layout)
    grad = torch.randn(*shape[:2], shape[2] // 2, shape[3] // 2, generator=torch.Generator().manual_seed(1))
    results = []
    for pool in (AvgPool2(), nn.AvgPool2d(2)):
        xi = x.clone().requires_grad_()
        out = pool(xi)
        out.backward(grad)
        results.append((out, xi.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
