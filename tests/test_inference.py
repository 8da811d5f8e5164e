"""Full-T inference in chunks (aoi.inference) equals the plain folded forward, bit for bit."""

import pytest
import torch
from torch import nn

from aoi.inference import chunk_shape, full_forward, row_bytes
from aoi.models import get_model

torch.set_num_threads(1)  # the CI box has 2 shared cores


def event_model(name, input_shape, T):
    """An aoi model in eval mode whose batch norm holds the statistics of count inputs (so spikes flow)."""
    torch.manual_seed(0)
    model = get_model(name, 10, input_shape, T)
    inputs = (torch.rand(T, 6, *input_shape) * torch.linspace(0.5, 4, 6).view(1, 6, 1, 1, 1)).floor()
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = None
    with torch.no_grad():
        model(inputs)
    return model.eval(), inputs


def test_chunk_shape_fills_the_rows_with_whole_samples_else_groups_of_steps():
    assert chunk_shape(T=10, N=64, rows=40) == (4, 10)
    assert chunk_shape(T=10, N=3, rows=40) == (3, 10)
    assert chunk_shape(T=10, N=64, rows=7) == (1, 7)
    assert chunk_shape(T=10, N=64, rows=0) == (1, 1)


@pytest.mark.parametrize(
    "name,input_shape,T",
    [
        ("digits_snn", (2, 16, 16), 5),
        ("fashion_snn", (1, 28, 28), 4),
        ("vggsnn", (2, 16, 16), 3),
        ("resnet19", (3, 8, 8), 3),
    ],
)
def test_chunked_forward_equals_the_folded_forward(name, input_shape, T):
    model, inputs = event_model(name, input_shape, T)
    with torch.no_grad():
        expected = model(inputs)
    one_row = row_bytes(model, inputs)
    assert one_row >= inputs[0, 0].nbytes
    for rows in (T * inputs.shape[1], 2 * T, T, 2, 1):  # one chunk; 2 samples; 1 sample; 2 steps; 1 step
        assert torch.equal(full_forward(model, inputs, rows * one_row), expected), rows
    assert torch.equal(full_forward(model, inputs, None), expected)


def test_row_bytes_is_the_largest_activation_of_one_sample_at_one_step():
    model, inputs = event_model("digits_snn", (2, 16, 16), 2)
    assert row_bytes(model, inputs) == 32 * 16 * 16 * 4  # the first stage's conv output, float32


def test_full_forward_needs_eval_mode():
    model, inputs = event_model("digits_snn", (2, 16, 16), 2)
    with pytest.raises(ValueError, match="model.eval"):
        full_forward(model.train(), inputs)
