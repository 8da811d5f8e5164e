"""Full-T inference in chunks (aoi.inference) equals the plain folded forward, bit for bit."""

import pytest
import torch
from torch import nn

from aoi.inference import chunk_shape, fastest_samples, full_forward, row_bytes
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
    assert torch.equal(full_forward(model, inputs), expected)  # the measured chunks


def test_row_bytes_is_the_largest_activation_of_one_sample_at_one_step():
    model, inputs = event_model("digits_snn", (2, 16, 16), 2)
    assert row_bytes(model, inputs) == 32 * 16 * 16 * 4  # the first stage's conv output, float32


def test_full_forward_needs_eval_mode():
    model, inputs = event_model("digits_snn", (2, 16, 16), 2)
    with pytest.raises(ValueError, match="model.eval"):
        full_forward(model.train(), inputs)


class CountingClock:
    """A clock that advances by ``cost(samples)`` of the last forward of ``model`` at every second
    reading (the readings around one forward), so that `fastest_samples` sees chosen timings."""

    def __init__(self, cost):
        self.cost, self.now, self.readings, self.samples = cost, 0.0, 0, []

    def forward_hook(self, module, args, output):
        self.samples.append(args[0].shape[1])

    def __call__(self):
        self.readings += 1
        if self.readings % 2 == 0:
            self.now += self.cost(self.samples[-1])
        return self.now


def test_fastest_samples_keeps_the_chunk_with_the_least_time_per_sample():
    model, inputs = event_model("digits_snn", (2, 16, 16), 2)
    inputs = inputs.repeat(1, 11, 1, 1, 1)  # 66 samples
    per_sample = {1: 5.0, 2: 3.0, 4: 2.0, 8: 2.5, 16: 1.0, 32: 2.2, 64: 2.4}  # 16 is best, after two slower sizes
    clock = CountingClock(lambda samples: per_sample[samples] * samples)
    model.register_forward_hook(clock.forward_hook)
    with torch.no_grad():
        assert fastest_samples(model, inputs, most=64, clock=clock) == 16
        assert clock.samples == [1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64]  # each size twice, in turn
        clock.samples.clear()
        assert fastest_samples(model, inputs, most=12, clock=clock) == 4  # at most 12: from what was measured
        assert clock.samples == []


def test_fastest_samples_stops_after_two_slower_sizes():
    model, inputs = event_model("digits_snn", (2, 16, 16), 2)
    inputs = inputs.repeat(1, 11, 1, 1, 1)
    clock = CountingClock(lambda samples: {1: 2.0, 2: 1.0, 4: 1.5, 8: 1.6}.get(samples, 0.1) * samples)
    model.register_forward_hook(clock.forward_hook)
    with torch.no_grad():
        assert fastest_samples(model, inputs, most=64, clock=clock) == 2
    assert max(clock.samples) == 8  # 16 and up (faster here) are never tried
