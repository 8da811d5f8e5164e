"""Streaming early exit (aoi.anytime) against the post-hoc cutoff on the full-T outputs.

Two tiny residual SNNs are trained here, in memory, on sklearn's digits: one on frames (the
image repeated T times), one on binary two-polarity events drawn from the image.
"""

import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from aoi import inference
from aoi.anytime import InputError, compare_rules, default_schedule, predict, time_inference
from aoi.cutoff import calibrate_topk_thresholds, confidence_cutoff, topk_cutoff
from aoi.energy import count_operations, energy_pj, sum_until_exit
from aoi.losses import tet_loss
from aoi.metrics import accuracy_per_step
from aoi.models import get_model
from aoi.neurons import LIF
from aoi.schedule import uniform

EPSILONS = [0.0, 1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.9]
N_TRAIN = 1200


class ToySNN(nn.Module):
    """conv-BN-LIF, a residual conv-BN block (+ spikes) into a LIF, avg-pool, linear:
    [T, N, C, 8, 8] -> [T, N, 10]; convs and BN over the folded T*N batch."""

    def __init__(self, in_channels, width=8, classes=10):
        super().__init__()
        self.conv1, self.bn1, self.lif1 = (
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            LIF(),
        )
        self.conv2, self.bn2, self.lif2 = (
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            LIF(),
        )
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(width * 16, classes)

    def forward(self, x):
        T, N = x.shape[:2]
        spikes = self.lif1(self.bn1(self.conv1(x.flatten(0, 1))).unflatten(0, (T, N))).flatten(0, 1)
        residual = self.bn2(self.conv2(spikes)) + spikes
        spikes = self.lif2(residual.unflatten(0, (T, N))).flatten(0, 1)
        return self.fc(self.pool(spikes).flatten(1)).unflatten(0, (T, N))


def digit_inputs(kind):
    """([T, N, C, 8, 8] float inputs, [N] targets) of all 1797 sklearn digits."""
    digits = load_digits()
    images = torch.tensor(digits.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16
    targets = torch.tensor(digits.target, dtype=torch.long)
    if kind == "frame":
        return images[None].expand(4, -1, -1, -1, -1).contiguous(), targets
    generator = torch.Generator().manual_seed(0)
    rates = torch.cat([0.6 * images, 0.15 * images], 1)[None].expand(6, -1, -1, -1, -1)  # 2 polarities, T=6
    return torch.bernoulli(rates, generator=generator), targets


@pytest.fixture(scope="module", params=["frame", "event"])
def trained(request):
    """A ToySNN trained for a few epochs; (model in eval mode, kind, train and test splits)."""
    torch.manual_seed(0)
    inputs, targets = digit_inputs(request.param)
    model = ToySNN(inputs.shape[2])
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    order = torch.Generator().manual_seed(0)
    for _ in range(3):
        for batch in torch.randperm(N_TRAIN, generator=order).split(64):
            optimiser.zero_grad()
            tet_loss(model(inputs[:, batch]), targets[batch]).backward()
            optimiser.step()
    model.eval()
    train = inputs[:, :N_TRAIN], targets[:N_TRAIN]
    test = inputs[:, N_TRAIN:], targets[N_TRAIN:]
    return model, request.param, train, test


def full_outputs(model, inputs):
    with torch.no_grad():
        return model(inputs)


def test_toy_models_learned(trained):
    model, _, _, (inputs, targets) = trained
    assert accuracy_per_step(full_outputs(model, inputs), targets)[-1] > 0.8


def test_confidence_exits_equal_post_hoc(trained):
    model, _, _, (inputs, _targets) = trained
    outputs = full_outputs(model, inputs)
    T = inputs.shape[0]
    spread = 0
    for epsilon in EPSILONS:
        expected = confidence_cutoff(outputs, epsilon)
        result = predict(model, inputs, epsilon, count=False)
        assert torch.equal(result.exit_steps, expected.exit_steps), epsilon
        assert torch.equal(result.predictions, expected.predictions), epsilon
        spread = max(spread, len(result.exit_steps.unique()))
    assert spread >= 3  # the test covers exits spread over several steps
    assert predict(model, inputs, 0.0, count=False).exit_steps.eq(T).all()  # epsilon 0: every sample runs to T


def test_topk_exits_equal_post_hoc(trained):
    model, _, (train_inputs, train_targets), (inputs, _) = trained
    outputs = full_outputs(model, inputs)
    train_outputs = full_outputs(model, train_inputs)
    for precision in [0.9, 0.99, 1.0]:
        thresholds = calibrate_topk_thresholds(train_outputs, train_targets, precision)
        expected = topk_cutoff(outputs, thresholds)
        result = predict(model, inputs, rule="topk", thresholds=thresholds, count=False)
        assert torch.equal(result.exit_steps, expected.exit_steps), precision
        assert torch.equal(result.predictions, expected.predictions), precision


def test_fixed_steps_predict_argmax_at_that_step(trained):
    model, _, _, (inputs, _) = trained
    accumulated = full_outputs(model, inputs).cumsum(0)
    for steps in [1, 2, inputs.shape[0]]:
        result = predict(model, inputs, rule="fixed", steps=steps, count=False)
        assert result.exit_steps.eq(steps).all()
        assert torch.equal(result.predictions, accumulated[steps - 1].argmax(-1))


def rows_per_forward(exits: torch.Tensor, schedule) -> list[int]:
    """Rows each forward sees when all samples start together (no refill): a chunk of c steps of every
    sample that has not exited before the chunk's first step."""
    rows, start = [], 0
    for chunk in schedule:
        running = int((exits > start).sum())
        if running:
            rows.append(chunk * running)
        start += chunk
    return rows


def schedules(T: int) -> list[tuple[int, ...]]:
    """Chunks of every size 1..T (the last reaching past T where T is not a multiple), and two uneven ones
    (the second reaching past T)."""
    return [uniform(k, T) for k in range(1, T + 1)] + [(T - 1, 1), (1, T)]


def test_exited_samples_are_no_longer_computed(trained):
    model, _, _, (inputs, _) = trained
    T = inputs.shape[0]
    exits = confidence_cutoff(full_outputs(model, inputs), 0.05).exit_steps
    rows = []
    handle = model.conv1.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    try:
        for schedule in schedules(T):
            rows.clear()
            result = predict(model, inputs, 0.05, count=False, schedule=schedule)
            assert torch.equal(result.exit_steps, exits)
            assert rows == rows_per_forward(exits, schedule), schedule
    finally:
        handle.remove()
    assert len(rows_per_forward(exits, (1,) * T)) > 1


def test_streaming_counts_equal_full_run_truncated_at_exit(trained):
    model, kind, _, (inputs, _) = trained
    counts = count_operations(model, inputs)
    for schedule in [None, *schedules(inputs.shape[0])]:  # steps run past an exit in a chunk are not counted
        result = predict(model, inputs, 0.05, schedule=schedule)
        assert torch.equal(result.synops, sum_until_exit(counts.synops, result.exit_steps)), schedule
        assert torch.equal(result.macs, sum_until_exit(counts.macs, result.exit_steps)), schedule
        assert torch.equal(result.energy_pj, energy_pj(result.synops, result.macs))
    full_energy = energy_pj(counts.synops.sum(0), counts.macs.sum(0))
    assert (result.energy_pj <= full_energy).all() and (result.energy_pj < full_energy).any()
    # frames are real-valued: the first conv is charged MACs (C_out 8 x 64 positions x fan-in 9) at
    # every executed step; binary events are SOPs, and so are the average-pooled spikes into fc.
    per_step_macs = 8 * 64 * 9 if kind == "frame" else 0
    assert torch.equal(result.macs, result.exit_steps * per_step_macs)


def forwards_of_continuous_batching(exit_steps: list[int], batch_size: int, chunk: int = 1) -> int:
    """Forwards that continuous batching takes for these exit steps in chunks of ``chunk`` steps: every
    forward advances each sample in flight ``chunk`` steps; after it, the places of those that exited
    go to the next waiting samples."""
    waiting, flight, forwards = list(exit_steps[batch_size:]), list(exit_steps[:batch_size]), 0
    while flight:
        forwards += 1
        flight = [max(0, steps - chunk) for steps in flight]
        freed = flight.count(0)
        flight = [steps for steps in flight if steps] + waiting[:freed]
        waiting = waiting[freed:]
    return forwards


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_time_inference_times_the_full_forward_and_the_streaming_steps(trained, monkeypatch, chunk):
    """With a clock that ticks once per model forward, the times are counts we know independently:
    full-T inference is one forward per batch (whole batches taken as the fastest chunk), streaming
    is the forwards of continuous batching in chunks over the post-hoc exit steps."""
    monkeypatch.setattr(inference, "fastest_samples", lambda model, inputs, most: most)
    model, _, _, (inputs, _) = trained
    inputs = inputs[:, :64]
    T, N = inputs.shape[:2]
    ticks = [0.0]
    handle = model.register_forward_pre_hook(lambda module, args: ticks.__setitem__(0, ticks[0] + 1))
    try:
        timing = time_inference(
            model, inputs, 0.05, repeats=2, batch_size=24, clock=lambda: ticks[0], schedule=uniform(chunk, T)
        )
    finally:
        handle.remove()
    exits = confidence_cutoff(full_outputs(model, inputs), 0.05).exit_steps
    streaming = forwards_of_continuous_batching(exits.tolist(), 24, chunk)
    assert streaming < forwards_of_continuous_batching([T] * N, 24, chunk)  # early exits save forwards here
    assert timing["schedule"] == ",".join([str(chunk)] * len(uniform(chunk, T)))
    assert timing["full_s"] == 3  # batches of 24, 24 and 16 samples
    assert timing["streaming_s"] == streaming
    assert timing["wallclock_speedup"] == pytest.approx(3 / streaming)
    mean_exit = exits.double().mean().item()
    assert timing["mean_exit_step"] == pytest.approx(mean_exit)
    assert timing["step_speedup"] == pytest.approx(T / mean_exit)
    assert timing["realised"] == pytest.approx(3 / streaming * mean_exit / T)


def test_bad_arguments_say_what_to_do():
    model = ToySNN(1).eval()
    inputs = torch.zeros(3, 2, 1, 8, 8)
    for kwargs, message in [
        ({"epsilon": 1.0}, "epsilon in \\[0, 1\\)"),
        ({}, "epsilon in"),
        ({"epsilon": -0.1}, "epsilon in"),
        ({"rule": "topk", "thresholds": [0.1, 0.2]}, "shape \\(3,\\)"),
        ({"rule": "topk"}, "thresholds"),
        ({"rule": "fixed", "steps": 4}, "1..3"),
        ({"rule": "softmax", "epsilon": 0.1}, "unknown rule"),
    ]:
        with pytest.raises(ValueError, match=message):
            predict(model, inputs, **kwargs)
    with pytest.raises(ValueError, match="model.eval"):
        predict(model.train(), inputs, 0.1)
    for bad in [torch.zeros(3), torch.zeros(3, 0, 1, 8, 8)]:
        with pytest.raises(ValueError, match="T, N"):
            predict(model.eval(), bad, 0.1)
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, inputs, 0.1, batch_size=0)
    for calibration in [torch.zeros(4, 5, 10), torch.zeros(3, 10), torch.zeros(3, 0, 10)]:
        with pytest.raises(InputError, match=r"calibration must be per-step logits \[T, M, K\] .* with T = 3"):
            predict(model, inputs, 0.1, calibration=calibration)
    for schedule in [(2,), (0, 3), (2, 1, 1), (1.5, 2), 3, (1, 4)]:
        with pytest.raises(InputError, match=r"must be chunk sizes 1..3 that start before T = 3 and reach it"):
            predict(model, inputs, 0.1, schedule=schedule)


def test_inputs_must_be_time_first_with_the_models_steps_and_finite():
    model = ToySNN(1).eval()
    model.T = 3  # as every aoi model carries it (aoi.models.get_model)
    inputs = torch.rand(3, 5, 1, 8, 8)
    assert predict(model, inputs, 0.1).exit_steps.shape == (5,)
    not_finite = inputs.clone().index_fill_(1, torch.tensor([2]), float("nan"))
    for bad, message in [
        (inputs.transpose(0, 1), r"T = 3 steps first, got shape \(5, 3, 1, 8, 8\) \(batch-first \[N, T, ...\]\? pass"),
        (torch.rand(4, 5, 1, 8, 8), r"inputs must be \[T, N, ...\] with the model's T = 3 steps first, got shape \(4,"),
        (not_finite, r"inputs hold 192 NaN or infinite values \(of 960\): pass finite inputs"),
    ]:
        with pytest.raises(InputError, match=message):
            predict(model, bad, 0.1)
        with pytest.raises(InputError, match=message):
            time_inference(model, bad, 0.1, repeats=1)


def test_what_predict_cannot_use_is_one_line():
    torch.manual_seed(0)
    model = get_model("digits_snn", 10, (1, 8, 8), 3).eval()  # carries T = 3 and input_shape (1, 8, 8)
    inputs = torch.rand(3, 4, 1, 8, 8)
    for kwargs, message in [
        ({"rule": "fixed", "steps": 2.7}, r"rule='fixed' needs steps, an int in 1..3 .*, got 2.7"),
        ({"rule": "fixed", "steps": True}, r"rule='fixed' needs steps, an int in 1..3 .*, got True"),
        ({"rule": "topk", "thresholds": [0.1, math.nan, 0.2]}, r"needs finite thresholds.* got \[0.1, nan, 0.2\]"),
    ]:
        with pytest.raises(InputError, match=message):
            predict(model, inputs, **kwargs)
    assert predict(model, inputs, rule="fixed", steps=torch.tensor(2).item()).exit_steps.tolist() == [2] * 4
    for bad, message in [
        (torch.rand(3, 4, 1, 10, 10), r"inputs must be \[T, N, \*\(1, 8, 8\)\] \(the model's input_shape\), got"),
        (torch.rand(3, 4, 2, 8, 8), r"got shape \(3, 4, 2, 8, 8\)"),  # another channel count
        (inputs.double(), r"inputs are torch.float64, the model's weights torch.float32: pass inputs.to\("),
        ((inputs > 0.5).long(), r"inputs are torch.int64, the model's weights torch.float32"),
    ]:
        with pytest.raises(InputError, match=message):
            predict(model, bad, 0.1)
    with torch.no_grad():
        model.readout.weight[0, 0] = math.nan  # every exit would be at T, every prediction 0
    with pytest.raises(InputError, match="the model's readout.weight hold NaN or infinite values: load finite"):
        predict(model, inputs, 0.1)


def test_compare_rules_table_by_hand():
    # T=2, N=2, K=2. Sample 0 (class 0): Y_1 = (2, 0), Y_2 = (2, 1): right at both steps.
    # Sample 1 (class 1): Y_1 = (1, 0) wrong, Y_2 = (1, 3) right.
    outputs = torch.tensor([[[2.0, 0], [1, 0]], [[0.0, 1], [0, 3]]])
    targets = torch.tensor([0, 1])
    table = compare_rules(outputs, targets, outputs, targets, epsilons=[0.0, 0.5], precisions=[1.0])
    assert list(table.columns) == ["rule", "parameter", "accuracy", "mean_exit_step"]
    rows = {
        (r.rule, None if math.isnan(r.parameter) else r.parameter): (r.accuracy, r.mean_exit_step)
        for r in table.itertuples()
    }
    assert rows[("confidence", 0.0)] == (1.0, 2.0)  # nobody exits early
    assert rows[("confidence", 0.5)] == (0.5, 1.0)  # softmax(2,0) and softmax(1,0) are both > 0.5
    assert rows[("fixed", 1.0)] == (0.5, 1.0)
    assert rows[("fixed", 2.0)] == (1.0, 2.0)
    assert rows[("oct", None)] == (1.0, 1.5)  # OCT 1 and 2
    # Top-K calibrated on these outputs at precision 1: gaps at step 1 are 2 (safe) and 1 (unsafe),
    # so beta_1 separates them: sample 0 exits at 1, sample 1 at 2, both right.
    assert rows[("topk", 1.0)] == (1.0, 1.5)
    assert len(table) == 2 + 1 + 2 + 1


@pytest.mark.parametrize(
    "name,input_shape",
    [
        ("digits_snn", (2, 16, 16)),
        ("fashion_snn", (1, 28, 28)),
        ("vggsnn", (2, 16, 16)),
        ("resnet19", (3, 8, 8)),
        ("sew_resnet34", (3, 32, 32)),
    ],
)
def test_every_aoi_model_streams_like_its_full_forward(name, input_shape, monkeypatch):
    from aoi.models import get_model

    torch.manual_seed(0)
    T, N = 3, 8
    model = get_model(name, 10, input_shape, T)
    brightness = torch.linspace(0.5, 4, N).view(1, N, 1, 1, 1)  # samples that differ on average
    inputs = torch.rand(T, N, *input_shape) * brightness
    if input_shape[0] == 2:  # event frames: counts
        inputs = inputs.floor()
    for bn in model.modules():  # batch norm statistics of these inputs, so that spikes reach the readout
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = None
    with torch.no_grad():
        model(inputs)
        for linear in model.modules():  # at initialisation the heads are too weak to spike or to
            if isinstance(linear, nn.Linear):  # tell samples apart
                linear.weight *= 10
    model.eval()
    counts = count_operations(model, inputs)
    # an epsilon at which about half the samples exit before T, from their confidences before T
    confidence = counts.outputs.cumsum(0)[:-1].softmax(-1).amax(-1).amax(0)  # [N]
    middle = confidence.sort().values[N // 2 - 1 : N // 2 + 1]
    epsilon = 1 - middle.mean().item()
    expected = confidence_cutoff(counts.outputs, epsilon)
    assert len(expected.exit_steps.unique()) > 1
    assert (counts.synops > 0).all()  # spikes reach the counted layers
    # batch size 1: forwards of one sample, where PyTorch picks other kernels; 3: refills, samples at
    # different points of an uneven schedule; 5: chunks of 1 and 2 samples; counting is slow
    runs = [(None, None, True), (1, (T - 1, 1), True), (3, (1, T), True)]
    runs += [(1, uniform(k, T), False) for k in range(1, T + 1)] + [(5, uniform(2, T), False)]
    for batch_size, schedule, count in runs:
        result = predict(model, inputs, epsilon, batch_size=batch_size, schedule=schedule, count=count)
        assert torch.equal(result.exit_steps, expected.exit_steps), (batch_size, schedule)
        assert torch.equal(result.predictions, expected.predictions)
        if count:
            assert torch.equal(result.synops, sum_until_exit(counts.synops, result.exit_steps))
            assert torch.equal(result.macs, sum_until_exit(counts.macs, result.exit_steps))
    row = inference.row_bytes(model, inputs)
    for piece, schedule in [(1, (1, T)), (3, uniform(2, T))]:  # uncounted chunks in pieces of at most this many rows
        monkeypatch.setattr(inference, "MAX_CHUNK_BYTES", piece * row)
        result = predict(model, inputs, epsilon, count=False, batch_size=5, schedule=schedule)
        assert torch.equal(result.exit_steps, expected.exit_steps)
        assert torch.equal(result.predictions, expected.predictions)


def test_a_fresh_models_first_uncounted_run_in_pieces():
    """Sizing the pieces runs a probe forward of one sample (`aoi.inference.row_bytes`); inside streaming
    it would carry a one-sample state into the first chunk of four samples."""
    torch.manual_seed(0)
    model = ToySNN(1).eval()
    inputs = torch.rand(3, 8, 1, 8, 8) * 2
    expected = confidence_cutoff(full_outputs(model, inputs), 0.5)
    result = predict(model, inputs, 0.5, count=False, batch_size=4, schedule=(1, 2))
    assert torch.equal(result.exit_steps, expected.exit_steps)
    assert torch.equal(result.predictions, expected.predictions)


@pytest.mark.parametrize("batch_size", [1, 7])
def test_continuous_batching_gives_the_same_exits_and_counts(trained, batch_size):
    model, _, (train_inputs, train_targets), (inputs, _) = trained
    inputs = inputs[:, :40]
    outputs = full_outputs(model, inputs)
    counts = count_operations(model, inputs)
    confidence = confidence_cutoff(outputs, 0.05)
    thresholds = calibrate_topk_thresholds(full_outputs(model, train_inputs), train_targets, 0.99)
    topk = topk_cutoff(outputs, thresholds)  # per-step thresholds while samples are at different steps
    T = inputs.shape[0]
    for schedule in [None, uniform(2, T), (T - 1, 1), (1, T)]:  # samples at different points of uneven ones
        result = predict(model, inputs, 0.05, batch_size=batch_size, schedule=schedule)
        assert torch.equal(result.exit_steps, confidence.exit_steps), schedule
        assert torch.equal(result.predictions, confidence.predictions)
        assert torch.equal(result.synops, sum_until_exit(counts.synops, result.exit_steps))
        assert torch.equal(result.macs, sum_until_exit(counts.macs, result.exit_steps))
        result = predict(
            model, inputs, rule="topk", thresholds=thresholds, batch_size=batch_size, schedule=schedule, count=False
        )
        assert torch.equal(result.exit_steps, topk.exit_steps)
        assert torch.equal(result.predictions, topk.predictions)


@pytest.mark.parametrize("chunk", [1, 2])
def test_continuous_batching_keeps_forwards_full(trained, chunk):
    model, _, _, (inputs, _) = trained
    inputs = inputs[:, :50]
    exits = confidence_cutoff(full_outputs(model, inputs), 0.05).exit_steps
    rows = []
    handle = model.conv1.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    try:
        predict(model, inputs, 0.05, count=False, batch_size=8, schedule=uniform(chunk, inputs.shape[0]))
    finally:
        handle.remove()
    assert sum(rows) == chunk * (-(-exits // chunk)).sum()  # every sample runs its chunks up to its exit
    full = [n == 8 * chunk for n in rows]
    assert full == sorted(full, reverse=True)  # every forward is full until the queue runs dry,
    assert full.count(False) <= inputs.shape[0]  # then the last samples finish in at most T steps


class Echo(nn.Module):
    """A stateless "model" whose logits are its inputs: [T, N, K] -> [T, N, K]."""

    def forward(self, x):
        return x


def test_the_default_schedule_comes_from_measured_chunks_and_the_calibration_exits():
    """A clock that advances by a chosen cost per chunk size: the chooser's hand-computed optimum
    (tests/test_schedule.py) comes back, from exits read on calibration logits made by hand."""
    costs = {1: 1.0, 2: 1.9, 3: 2.0, 4: 3.5}  # seconds of a chunk of k steps
    now = [0.0]
    model = Echo().eval()
    model.register_forward_pre_hook(lambda module, args: now.__setitem__(0, now[0] + costs[args[0].shape[0]]))
    calibration = torch.zeros(4, 4, 2)  # Y stays (0, 0) until a sample's exit step, then (10, 0): confident
    for sample, exit_step in enumerate([3, 3, 4, 4]):
        calibration[exit_step - 1, sample, 0] = 10.0
    inputs = torch.zeros(4, 6, 2)
    clock = lambda: now[0]  # noqa: E731
    assert default_schedule(model, inputs, 1, calibration, clock, epsilon=0.01) == (3, 1)
    assert default_schedule(model, inputs, 2, calibration, clock, epsilon=0.01) == (3, 3)
    # rule "fixed": every sample exits at steps = 2; one chunk of 2 (1.9) beats two of 1 (2.0)
    assert default_schedule(model, inputs, 1, clock=clock, rule="fixed", steps=2) == (2, 2)
    # without calibration, exits at every step alike: S = 1, 3/4, 1/2, 1/4; by hand (3, 1) 2.25 beats
    # (1, 1, 1, 1) 2.5, (1, 3) 2.5, (3, 3) 2.5, (2, 1, 1) 2.65, (1, 2, 1) 2.675, (1, 1, 2) 2.7, (2, 2) 2.85, (4) 3.5
    assert default_schedule(model, inputs, 1, clock=clock, epsilon=0.01) == (3, 1)
    assert default_schedule(model, inputs, 2, clock=clock, epsilon=0.01) == (1, 1, 1, 1)  # (3, 3) 2.5 ties: smaller


def test_exits_at_thresholds_that_lie_exactly_on_a_confidence():
    """Y_t is summed as cumsum sums it (float64 on CPU). The thresholds here sit exactly on a
    post-hoc confidence that a float32 running sum would round up: there, the smallest rounding
    difference would move the exit."""
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(6, 3000, 10, generator=generator) * torch.logspace(-1, 2, 3000).view(1, -1, 1)
    confidences = outputs.cumsum(0).softmax(-1).amax(-1)  # [T, N], what the post-hoc rule compares
    running = [outputs[0]]
    for t in range(1, outputs.shape[0]):
        running.append(running[-1] + outputs[t])
    rounded_up = torch.stack(running).softmax(-1).amax(-1) > confidences
    first_time = confidences > torch.cat([torch.zeros(1, 3000), confidences.cummax(0).values[:-1]])
    hard = (rounded_up & first_time).nonzero()
    assert len(hard) >= 4
    model = Echo().eval()
    for t, n in hard[:4].tolist():
        epsilon = 1 - confidences[t, n].item()  # max softmax > 1 - epsilon is False there, by a hair
        expected = confidence_cutoff(outputs, epsilon)
        result = predict(model, outputs, epsilon, count=False, batch_size=512)
        assert torch.equal(result.exit_steps, expected.exit_steps)
        assert torch.equal(result.predictions, expected.predictions)
