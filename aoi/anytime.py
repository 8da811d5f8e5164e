"""Anytime inference that really stops: streaming early exit, its wall-clock cost, and the
cutoff rules compared.

`predict` runs a model in chunks of steps with the neurons' state carried (`aoi.neurons.streaming`):
each forward runs the next k steps of every sample in flight and returns every step's logits, the
cutoff rule (`aoi.cutoff.confidence_stop` / `aoi.cutoff.topk_stop`) is asked at every step on the
accumulated output Y_t = Y_{t-1} + O_t, and the samples that exited leave the batch and every
neuron's state (`aoi.flight`). With a ``batch_size`` below the number of samples, waiting samples
take the places freed by exits, in place (continuous batching: `aoi.neurons.restart_samples`); once
the queue is empty, finished samples leave the batch (`aoi.neurons.keep_samples`). The chunk sizes
(the schedule) are chosen from the measured cost of a chunk of each size on this model, batch size
and machine (`chunk_seconds`) and from where samples exit, read on calibration (training) logits
(`aoi.schedule.choose_schedule`); one chunk of k steps costs far less than k forwards of one step,
and the steps run past an exit inside a chunk cost time only. It needs the model in eval mode and
raises otherwise (it never switches modes behind the caller's back). Its operation counts are those
of `aoi.energy.count_operations` summed up to each exit step. `time_inference` measures its wall
clock against the fastest full-T inference, `aoi.inference.full_forward`.

Exactness: its exit steps and predictions equal those of the post-hoc
`aoi.cutoff.confidence_cutoff` / `topk_cutoff` on the full-T outputs ``model(inputs)``, whatever the
schedule, as long as the model gives each sample bitwise the same logits in a forward of any
sub-batch and any group of consecutive steps as in the full [T, N] forward (Y is summed as their
``cumsum`` sums: in order, in float64 on CPU). aoi models do, in eval mode on CPU: their
convolutions and linear layers use kernels that treat each row alike whatever the batch size
(`aoi.models.layers.OneDNNConv2d`, `RowwiseLinear`; PyTorch's own choice rounds a lone row
differently); the tests check it bitwise for every aoi model, chunk sizes 1..T, batch sizes 1 and
up. On GPU, cuDNN may pick other kernels for other batch sizes and ``cumsum`` sums in float32 in
another order; logits can then differ in the last bits, and a sample whose confidence lies within
float rounding of the threshold may exit one step apart.

Post-hoc (on saved logits), `compare_rules` tabulates accuracy against mean exit step for the
confidence rule, the Top-K gap rule, fixed T and the OCT oracle.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import pandas as pd
import torch
from torch import nn

from aoi.checkpoint import nonfinite
from aoi.cutoff import calibrate_topk_thresholds, confidence_stop, topk_cutoff, topk_stop
from aoi.energy import OperationCounter, energy_pj
from aoi.errors import UserError
from aoi.flight import COUNTS, Flight, exit_counts, piece_rows, run
from aoi.inference import full_forward, row_key
from aoi.metrics import accuracy_per_step, cutoff_curve, optimal_cutoff_timestep
from aoi.neurons import lif_layers, streaming
from aoi.schedule import choose_schedule, steps_left

RULES = ("confidence", "topk", "fixed")
_CHUNK_SECONDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: [seconds per chunk size]}


class InputError(UserError, ValueError):
    """Inputs or arguments that `predict` and `time_inference` cannot use; the message says what they take."""


def check_inputs(model: nn.Module, inputs: torch.Tensor) -> None:
    """Refuse ``inputs`` that are not [T, N, *input_shape] with T the model's steps (``model.T`` and
    ``model.input_shape``, which aoi models carry; not checked for a model without them), not of the
    dtype of the model's weights, or that hold NaN or infinite values; and a model whose weights do."""
    shape = tuple(inputs.shape)
    if inputs.dim() < 2 or 0 in shape[:2]:
        raise InputError(f"inputs must be [T, N, ...] with T >= 1 and N >= 1, got shape {shape}")
    T, frame = getattr(model, "T", None), getattr(model, "input_shape", None)
    if T is not None and shape[0] != T:
        hint = " (batch-first [N, T, ...]? pass inputs.transpose(0, 1))" if shape[1] == T else ""
        raise InputError(f"inputs must be [T, N, ...] with the model's T = {T} steps first, got shape {shape}{hint}")
    if frame is not None and shape[2:] != tuple(frame):
        raise InputError(f"inputs must be [T, N, *{tuple(frame)}] (the model's input_shape), got shape {shape}")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), inputs.dtype)
    if inputs.dtype != dtype:
        raise InputError(f"inputs are {inputs.dtype}, the model's weights {dtype}: pass inputs.to({dtype})")
    # one pass: a sum is finite when every value is, unless finite values overflow it (then look closer)
    if inputs.is_floating_point() and not torch.isfinite(inputs.sum()) and not torch.isfinite(inputs).all():
        bad = int((~torch.isfinite(inputs)).sum())
        raise InputError(f"inputs hold {bad} NaN or infinite values (of {inputs.numel()}): pass finite inputs")
    bad = nonfinite(model.state_dict())
    if bad:
        raise InputError(f"the model's {', '.join(bad)} hold NaN or infinite values: load finite weights")


class AnytimeResult(NamedTuple):
    exit_steps: torch.Tensor  # [N] long, 1-based step at which each sample stopped
    predictions: torch.Tensor  # [N] long, argmax of Y at the exit step
    synops: torch.Tensor | None  # [N] int64, synaptic operations over the executed steps
    macs: torch.Tensor | None  # [N] int64, multiply-accumulates over the executed steps
    energy_pj: torch.Tensor | None  # [N] float64, picojoules (aoi.energy convention)


def _stop_rule(
    T: int, rule: str = "confidence", epsilon=None, thresholds=None, steps=None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Check the rule's parameters and return ``stop(step [...] (0-based), Y [..., K]) -> bool [...]``."""
    if rule == "confidence":
        if epsilon is None or not 0 <= float(epsilon) < 1:
            raise InputError(
                f"rule='confidence' needs epsilon in [0, 1) (exit when max softmax > 1 - epsilon), got {epsilon!r}"
            )
        epsilon = float(epsilon)
        return lambda step, accumulated: confidence_stop(accumulated, epsilon)
    if rule == "topk":
        values = None if thresholds is None else torch.as_tensor(thresholds, dtype=torch.float64)
        if values is None or values.shape != (T,) or not torch.isfinite(values).all():
            raise InputError(
                f"rule='topk' needs finite thresholds, one value per step, shape ({T},), got "
                f"{None if values is None else values.tolist()} (see aoi.cutoff.calibrate_topk_thresholds)"
            )
        thresholds = torch.as_tensor(thresholds)  # compared in Y's dtype, as aoi.cutoff.topk_cutoff does
        # each running sample is compared with the threshold of its own step
        return lambda step, accumulated: topk_stop(accumulated, thresholds.to(accumulated)[step])
    if rule == "fixed":
        if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or not 1 <= steps <= T:
            raise InputError(f"rule='fixed' needs steps, an int in 1..{T} (every sample stops there), got {steps!r}")
        steps = int(steps)
        return lambda step, accumulated: step + 1 >= steps
    raise InputError(f"unknown rule {rule!r}: use one of {RULES}")


def predict(
    model: nn.Module,
    inputs: torch.Tensor,
    epsilon: float | None = None,
    rule: str = "confidence",
    thresholds=None,
    steps: int | None = None,
    count: bool = True,
    batch_size: int | None = None,
    schedule: Sequence[int] | None = None,
    calibration: torch.Tensor | None = None,
) -> AnytimeResult:
    """Streaming early-exit inference: each sample stops computing at its exit step.

    Samples run in chunks of steps with their neurons' state carried: a forward runs the next k
    steps of every sample in flight and returns every step's logits; the rule is checked at every
    step on the accumulated output Y_t = Y_{t-1} + O_t, and samples that exited leave the batch and
    every neuron's state after the chunk (the steps run past an exit inside a chunk cost time only:
    exits, predictions and counts are those of each sample's own exit step). With ``batch_size``
    below N, at most that many samples are in flight and waiting samples take the places freed by
    exits, in place (continuous batching: each running sample is at its own step), so every forward
    stays full until the queue runs dry; then finished samples leave the batch.

    Args:
        model: an aoi model in eval mode (it raises otherwise: batch norm must use its running
            statistics, and the caller decides the mode), taking [T, N, ...] and returning [T, N, K].
        inputs: [T, N, ...] on the model's device, T the model's (``model.T``), finite (`check_inputs`).
        epsilon: for rule "confidence": exit at the first step where max softmax(Y_t) > 1 - epsilon.
        rule: "confidence", "topk" (exit when top1 - top2 of Y_t > thresholds[t]) or "fixed"
            (every sample stops at ``steps``).
        thresholds: [T] per-step Top-K gap thresholds, for rule "topk".
        steps: the fixed number of steps, for rule "fixed".
        count: also count SOPs, MACs and energy per sample (forward hooks; slower).
        batch_size: most samples in flight at once (None: all N).
        schedule: chunk sizes (1..T): each sample runs its steps in forwards of schedule[0], schedule[1],
            ... steps (every chunk starting before T, the last may reach past it; `aoi.schedule`). Samples
            in flight at different points of it run the fewest steps left to any of their chunk ends
            (uniform chunks keep them aligned). None: `default_schedule`.
        calibration: per-step logits [T, M, K] of training samples, whose exits under the same rule
            tell `default_schedule` where samples exit (never pass test data); None: at every step
            alike (rule "fixed": at ``steps``).
    Returns:
        `AnytimeResult`, samples in input order; a sample never stopped by the rule exits at T.
        The counts are None when ``count`` is False.
    """
    check_inputs(model, inputs)
    return _predict(model, inputs, epsilon, rule, thresholds, steps, count, batch_size, schedule, calibration)


def _predict(model, inputs, epsilon, rule, thresholds, steps, count, batch_size, schedule, calibration):
    """`predict` of checked inputs."""
    T, N = inputs.shape[:2]
    stop_rule = _stop_rule(T, rule, epsilon, thresholds, steps)
    if batch_size is not None and batch_size < 1:
        raise InputError(f"batch_size must be >= 1 (or None for all samples at once), got {batch_size}")
    if model.training:
        raise InputError("predict needs the model in eval mode (batch norm running statistics): call model.eval()")
    batch_size = N if batch_size is None else min(batch_size, N)
    counter = OperationCounter(model) if count else contextlib.nullcontext()  # refuses uncountable layers first
    if schedule is None:
        rule_arguments = {"rule": rule, "epsilon": epsilon, "thresholds": thresholds, "steps": steps}
        schedule = default_schedule(model, inputs, batch_size, calibration, **rule_arguments)
    try:
        left = torch.tensor(steps_left(schedule, T), device=inputs.device)
    except ValueError as error:  # a schedule that does not fit T
        raise InputError(str(error)) from None
    results = {"exit_steps": torch.full((N,), T, dtype=torch.long, device=inputs.device)}
    results.update({name: torch.zeros(N, dtype=torch.long, device=inputs.device) for name in ("predictions", *COUNTS)})
    piece = piece_rows(model, inputs, count)
    with torch.no_grad(), streaming(model), counter:
        run(model, Flight(inputs, batch_size, stop_rule, count), counter if count else None, results, left, piece)
    if not count:
        return AnytimeResult(results["exit_steps"], results["predictions"], None, None, None)
    synops, macs = results["synops"], results["macs"]
    return AnytimeResult(results["exit_steps"], results["predictions"], synops, macs, energy_pj(synops, macs))


def _exits(stop_rule, calibration: torch.Tensor | None, T: int, rule: str = "confidence", steps=None, **_) -> list[int]:
    """Samples per exit step t = 1..T [T] for `default_schedule`: all at ``steps`` for rule "fixed", else
    the exits of the calibration logits [T, M, K] under ``stop_rule``, else one at every step."""
    if rule == "fixed":
        return [int(t == int(steps)) for t in range(1, T + 1)]
    if calibration is None:
        return [1] * T
    if calibration.dim() != 3 or calibration.shape[0] != T or not calibration.shape[1]:
        raise InputError(
            f"calibration must be per-step logits [T, M, K] of training samples with T = {T}, "
            f"got shape {tuple(calibration.shape)}"
        )
    return exit_counts(calibration, stop_rule).tolist()


def default_schedule(
    model: nn.Module,
    inputs: torch.Tensor,
    batch_size: int | None = None,
    calibration: torch.Tensor | None = None,
    clock: Callable[[], float] = time.perf_counter,
    **rule,
) -> tuple[int, ...]:
    """The chunk schedule `predict` runs when given none: `aoi.schedule.choose_schedule` on the measured
    `chunk_seconds` of ``batch_size`` samples of ``inputs`` [T, N, ...] in flight (all N when None; timed
    with ``clock``) and the exits of ``calibration`` (per-step logits [T, M, K] of training samples) under
    the rule (``rule``: `predict`'s epsilon, rule, thresholds, steps); without calibration, exits at every
    step alike (rule "fixed": all at ``steps``). Over every schedule at batch size 1, over uniform ones
    above (continuous batching)."""
    T, N = inputs.shape[:2]
    stop_rule = _stop_rule(T, **rule)
    batch = N if batch_size is None else min(batch_size, N)
    exits = _exits(stop_rule, calibration, T, **rule)
    return choose_schedule(chunk_seconds(model, inputs, batch, stop_rule, clock), exits, any_schedule=batch == 1)


def chunk_seconds(model, inputs: torch.Tensor, batch_size: int, stop_rule, clock=time.perf_counter) -> list[float]:
    """Seconds [T] of a chunk of k = 1..T steps of ``batch_size`` samples of ``inputs`` [T, N, ...] as
    `predict` runs it (inputs gathered, forward, every step's exit decided; uncounted): the best of four
    rounds over k = 1..T after a warm-up round (rounds, not repeats of one size, so that every size sees
    the same machine load). Measured once per model, T, input row shape, batch size and thread count."""
    T = inputs.shape[0]
    key = (T, *row_key(inputs), batch_size, torch.get_num_threads())
    known = _CHUNK_SECONDS.setdefault(model, {})
    if key not in known:
        layers, piece = lif_layers(model), piece_rows(model, inputs, False)
        seconds = [math.inf] * T
        with torch.no_grad(), streaming(model):
            samples = Flight(inputs, batch_size, stop_rule, False)
            for repeat, k in itertools.product(range(5), range(1, T + 1)):  # round 0 warms up
                samples.fields["step"].zero_()
                start = clock()
                samples.advance(samples.forward(model, k, layers, piece))
                if inputs.is_cuda:
                    torch.cuda.synchronize()
                if repeat:
                    seconds[k - 1] = min(seconds[k - 1], clock() - start)
        known[key] = seconds
    return known[key]


def interleaved_times(runs: dict[str, Callable[[], object]], repeats: int, cuda: bool = False, clock=time.perf_counter):
    """Seconds of each of ``runs`` (name -> zero-argument callable), ``repeats`` times each after one
    warm-up, interleaved (run a, b, c, a, b, c, ...) so that all see the same machine load.

    Returns:
        (times, results): {name: [seconds] * repeats}, {name: the last result of that run}. On CUDA
        the device is synchronised around every run.
    """
    times, results = {name: [] for name in runs}, {}
    for repeat in range(repeats + 1):  # 0 warms up
        for name, timed in runs.items():
            if cuda:
                torch.cuda.synchronize()
            start = clock()
            results[name] = timed()
            if cuda:
                torch.cuda.synchronize()
            if repeat:
                times[name].append(clock() - start)
    return times, results


def time_inference(
    model: nn.Module,
    inputs: torch.Tensor,
    epsilon: float | None = None,
    rule: str = "confidence",
    thresholds=None,
    steps: int | None = None,
    repeats: int = 3,
    batch_size: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    schedule: Sequence[int] | None = None,
    calibration: torch.Tensor | None = None,
) -> dict:
    """Measured wall-clock cost of streaming early exit against the fastest full-T inference.

    Full-T inference is `aoi.inference.full_forward` (all T steps, in its fastest chunks) on
    ``inputs`` [T, N, ...] split into batches of ``batch_size`` samples; streaming is `predict`
    without counting, with at most ``batch_size`` samples in flight (all N at once when None), in
    chunks of ``schedule`` (None: `default_schedule` from ``calibration``, chosen before any timing).
    Each is timed with ``clock`` as the best of ``repeats`` runs, the two interleaved, after a
    warm-up of each (`interleaved_times`). The model must be in eval mode; the inputs are
    checked once, before any timing (`check_inputs`).

    Returns:
        dict with full_s, streaming_s (seconds), wallclock_speedup (full_s / streaming_s),
        mean_exit_step, step_speedup (T / mean_exit_step), realised (wallclock_speedup /
        step_speedup: the share of the step speed-up that the clock sees) and schedule (the chunk
        sizes that ran, "3,2,2,3").
    """
    if repeats < 1:
        raise InputError(f"repeats must be >= 1, got {repeats}")
    if model.training:
        raise InputError("time_inference needs the model in eval mode: call model.eval()")
    check_inputs(model, inputs)
    T, N = inputs.shape[:2]
    batch = min(batch_size or N, N)
    if schedule is None:
        rule_arguments = {"rule": rule, "epsilon": epsilon, "thresholds": thresholds, "steps": steps}
        schedule = default_schedule(model, inputs, batch, calibration, clock, **rule_arguments)
    batches = inputs.split(batch, dim=1)
    runs = {
        "full": lambda: [full_forward(model, part) for part in batches],
        "streaming": lambda: _predict(model, inputs, epsilon, rule, thresholds, steps, False, batch, schedule, None),
    }
    times, results = interleaved_times(runs, repeats, inputs.is_cuda, clock)
    full_s, streaming_s = min(times["full"]), min(times["streaming"])
    mean_exit_step = results["streaming"].exit_steps.double().mean().item()
    return {
        "full_s": full_s,
        "streaming_s": streaming_s,
        "wallclock_speedup": full_s / streaming_s,
        "mean_exit_step": mean_exit_step,
        "step_speedup": T / mean_exit_step,
        "realised": full_s / streaming_s / (T / mean_exit_step),
        "schedule": ",".join(map(str, schedule)),
    }


def compare_rules(
    outputs_test: torch.Tensor,
    targets_test: torch.Tensor,
    outputs_train: torch.Tensor,
    targets_train: torch.Tensor,
    epsilons: Iterable[float],
    precisions: Iterable[float] = (0.9, 0.95, 0.99, 0.999, 1.0),
    bins: int = 100,
) -> pd.DataFrame:
    """Accuracy against mean exit step of every cutoff rule, post-hoc on per-step logits.

    Args:
        outputs_test: [T, N, K] logits to evaluate on, with targets_test [N].
        outputs_train, targets_train: [T, M, K], [M], to calibrate the Top-K thresholds on.
        epsilons: confidence thresholds to sweep.
        precisions: Top-K calibration precision levels to sweep (`aoi.cutoff.calibrate_topk_thresholds`).
    Returns:
        DataFrame with columns rule ("confidence", "topk", "fixed", "oct"), parameter (epsilon,
        precision, t, NaN for the oracle), accuracy (fraction) and mean_exit_step (1-based steps).
    """
    confidence = cutoff_curve(outputs_test, targets_test, epsilons)
    rows = [
        {"rule": "confidence", "parameter": row.epsilon, "accuracy": row.accuracy, "mean_exit_step": row.mean_exit_step}
        for row in confidence.itertuples()
    ]
    for precision in precisions:
        thresholds = calibrate_topk_thresholds(outputs_train, targets_train, float(precision), bins)
        result = topk_cutoff(outputs_test, thresholds)
        rows.append(
            {
                "rule": "topk",
                "parameter": float(precision),
                "accuracy": (result.predictions == targets_test).double().mean().item(),
                "mean_exit_step": result.exit_steps.double().mean().item(),
            }
        )
    per_step = accuracy_per_step(outputs_test, targets_test)
    rows += [
        {"rule": "fixed", "parameter": float(t), "accuracy": accuracy.item(), "mean_exit_step": float(t)}
        for t, accuracy in enumerate(per_step, start=1)
    ]
    rows.append(
        {
            "rule": "oct",
            "parameter": math.nan,
            "accuracy": per_step[-1].item(),
            "mean_exit_step": optimal_cutoff_timestep(outputs_test, targets_test).double().mean().item(),
        }
    )
    return pd.DataFrame(rows, columns=["rule", "parameter", "accuracy", "mean_exit_step"])
