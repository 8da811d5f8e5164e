"""Anytime inference that really stops: streaming early exit, its wall-clock cost, and the
cutoff rules compared.

`predict` runs a model one timestep at a time with the neurons' state carried
(`aoi.neurons.streaming`), accumulates Y_t = Y_{t-1} + O_t, asks the cutoff rule
(`aoi.cutoff.confidence_stop` / `aoi.cutoff.topk_stop`) after every step, and takes the
samples that exited out of the batch and out of every neuron's state, so later steps compute
only for the samples still running. With a ``batch_size`` below the number of samples, waiting
samples take the places freed by exits, in place (continuous batching: `aoi.neurons.restart_samples`);
once the queue is empty, finished samples leave the batch (`aoi.neurons.keep_samples`).
It needs the model in eval mode and raises otherwise (it never switches modes behind the
caller's back). Its operation counts are those of `aoi.energy.count_operations` summed up to
each exit step. `time_inference` measures its wall clock against the fastest full-T inference,
`aoi.inference.full_forward`.

Exactness: its exit steps and predictions equal those of the post-hoc
`aoi.cutoff.confidence_cutoff` / `topk_cutoff` on the full-T outputs ``model(inputs)``, as long
as the model gives each sample bitwise the same logits in a T=1 forward of any sub-batch as in
the full [T, N] forward (Y is summed as their ``cumsum`` sums: in order, in float64 on CPU). aoi
models do, in eval mode on CPU: their convolutions and linear layers use kernels that treat each
row alike whatever the batch size (`aoi.models.layers.OneDNNConv2d`, `RowwiseLinear`; PyTorch's
own choice rounds a lone row differently); the tests check it bitwise for every aoi model, batch
sizes 1 and up. On GPU, cuDNN may pick other kernels for other batch sizes and ``cumsum`` sums
in float32 in another order; logits can then differ in the last bits, and a sample whose
confidence lies within float rounding of the threshold may exit one step apart.

Post-hoc (on saved logits), `compare_rules` tabulates accuracy against mean exit step for the
confidence rule, the Top-K gap rule, fixed T and the OCT oracle.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import pandas as pd
import torch
from torch import nn

from aoi.checkpoint import nonfinite
from aoi.cutoff import calibrate_topk_thresholds, confidence_stop, topk_cutoff, topk_stop
from aoi.energy import OperationCounter, energy_pj
from aoi.errors import UserError
from aoi.inference import full_forward, row_bytes
from aoi.metrics import accuracy_per_step, cutoff_curve, optimal_cutoff_timestep
from aoi.neurons import forward_in_pieces, keep_samples, lif_layers, restart_samples, streaming

RULES = ("confidence", "topk", "fixed")
COUNTS = ("synops", "macs")  # per-sample operation counts of `predict` (aoi.energy)
# Largest activation of one per-step forward on the CPU: a step of more samples runs in pieces. Above a
# few MB glibc hands freed blocks back to the OS, and every step page-faults its activations in again
# (fashion_snn at batch 64: 1.8x the time of the same steps in pieces).
STEP_BYTES = 4 * 2**20


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


def _stop_rule(rule: str, epsilon, thresholds, steps, T: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Check the rule's parameters and return ``stop(step [n] (0-based), Y [n, K]) -> bool [n]``."""
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


class _Flight:
    """The samples in flight, one row each. All per-sample state lives in ``fields``, filtered and
    extended together: index [n] (position in the inputs), step [n] (0-based), total [n, K] (the sum
    of the outputs so far, float64; None before the first step) and, when counting, the SOPs and
    MACs [n] of the steps so far. ``accumulated`` is Y_t [n, K] of the last step."""

    def __init__(self, index: torch.Tensor, counted: bool):
        self.fields = {"index": index, "step": torch.zeros_like(index), "total": None}
        self.fields.update({name: torch.zeros_like(index) for name in COUNTS if counted})
        self.accumulated: torch.Tensor | None = None

    def add(self, output: torch.Tensor, counts: tuple) -> None:
        """Accumulate one step's outputs [n, K] and counts. Y_t = Y_{t-1} + O_t is summed in float64
        and rounded to the outputs' dtype, as PyTorch's ``cumsum`` does on CPU (a float32 running sum
        would round differently, and move exits that lie within rounding of the threshold)."""
        fields = self.fields
        fields["total"] = output.double() if fields["total"] is None else fields["total"].add_(output)
        self.accumulated = fields["total"].to(output.dtype)
        for name, value in zip(COUNTS, counts):
            fields[name] += value

    def record(self, results: dict, stop: torch.Tensor) -> None:
        """Write the exit step, the prediction and the counts of the rows ``stop`` [n] bool into ``results``."""
        fields = self.fields
        done = fields["index"][stop]
        results["exit_steps"][done] = fields["step"][stop] + 1
        results["predictions"][done] = self.accumulated[stop].argmax(-1)
        for name in COUNTS:
            if name in fields:
                results[name][done] = fields[name][stop]

    def refill(self, places: torch.Tensor, index: torch.Tensor) -> None:
        """Put the samples ``index`` into the rows ``places`` [n] bool, in place, before their first step."""
        fields = self.fields
        fields["index"].masked_scatter_(places, index)
        fields["step"].masked_fill_(places, -1)  # advanced to 0 at the end of the step
        fields["total"].masked_fill_(places[:, None], 0.0)
        for name in COUNTS:
            if name in fields:
                fields[name].masked_fill_(places, 0)

    def keep(self, keep: torch.Tensor) -> None:
        self.fields = {name: value[keep] for name, value in self.fields.items()}


def predict(
    model: nn.Module,
    inputs: torch.Tensor,
    epsilon: float | None = None,
    rule: str = "confidence",
    thresholds=None,
    steps: int | None = None,
    count: bool = True,
    batch_size: int | None = None,
) -> AnytimeResult:
    """Streaming early-exit inference: each sample stops computing at its exit step.

    Samples run one timestep per forward with their neurons' state carried; after each step the
    rule is checked on the accumulated output Y_t = Y_{t-1} + O_t, and samples that exit leave
    the batch and every neuron's state. With ``batch_size`` below N, at most that many samples
    are in flight and waiting samples take the places freed by exits, in place (continuous
    batching: each running sample is at its own step), so every forward stays full until the
    queue runs dry; then finished samples leave the batch.

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
    Returns:
        `AnytimeResult`, samples in input order; a sample never stopped by the rule exits at T.
        The counts are None when ``count`` is False.
    """
    check_inputs(model, inputs)
    return _predict(model, inputs, epsilon, rule, thresholds, steps, count, batch_size)


def _predict(model, inputs, epsilon, rule, thresholds, steps, count, batch_size) -> AnytimeResult:
    """`predict` of checked inputs."""
    T, N = inputs.shape[:2]
    stop_rule = _stop_rule(rule, epsilon, thresholds, steps, T)
    if batch_size is not None and batch_size < 1:
        raise InputError(f"batch_size must be >= 1 (or None for all samples at once), got {batch_size}")
    if model.training:
        raise InputError("predict needs the model in eval mode (batch norm running statistics): call model.eval()")
    batch_size = N if batch_size is None else min(batch_size, N)
    results = {"exit_steps": torch.full((N,), T, dtype=torch.long, device=inputs.device)}
    results.update({name: torch.zeros(N, dtype=torch.long, device=inputs.device) for name in ("predictions", *COUNTS)})
    flight = _Flight(torch.arange(batch_size, device=inputs.device), count)
    counter = OperationCounter(model) if count else contextlib.nullcontext()
    piece = batch_size if count or inputs.device.type != "cpu" else max(1, STEP_BYTES // row_bytes(model, inputs))
    with torch.no_grad(), streaming(model), counter:
        _run(model, inputs, flight, stop_rule, counter if count else None, results, piece)
    if not count:
        return AnytimeResult(results["exit_steps"], results["predictions"], None, None, None)
    synops, macs = results["synops"], results["macs"]
    return AnytimeResult(results["exit_steps"], results["predictions"], synops, macs, energy_pj(synops, macs))


def _run(model, inputs, flight: _Flight, stop_rule, counter: OperationCounter | None, results: dict, piece: int):
    """`predict`'s loop, inside `streaming`: one step of every sample in flight per forward (in forwards of
    at most ``piece`` samples, `forward_in_pieces`), until all exited."""
    T, N = inputs.shape[:2]
    layers = lif_layers(model)
    rows = inputs.flatten(0, 1)  # [T * N, ...]: one row per step and sample, gathered by index_select
    admitted = flight.fields["index"].shape[0]
    while True:
        fields = flight.fields
        step_inputs = rows.index_select(0, fields["step"] * N + fields["index"]).unsqueeze(0)
        output = forward_in_pieces(model, step_inputs, piece, layers)[0]
        flight.add(output, counter.take() if counter else ())
        stop = stop_rule(fields["step"], flight.accumulated) | (fields["step"] == T - 1)
        if stop.any():
            flight.record(results, stop)
            stopped = int(stop.sum())
            new = min(N - admitted, stopped)
            places = stop if new == stopped else stop & (stop.cumsum(0) <= new)
            if new:
                flight.refill(places, torch.arange(admitted, admitted + new, device=inputs.device))
                restart_samples(layers, places)
                admitted += new
            if new < stopped:
                keep = ~(stop & ~places)
                flight.keep(keep)
                keep_samples(layers, keep)
                if not flight.fields["index"].shape[0]:
                    return
        flight.fields["step"] += 1


def interleaved_times(runs: dict[str, Callable[[], object]], repeats: int, cuda: bool = False, clock=time.perf_counter):
    """Seconds of each of ``runs`` (name -> zero-argument callable), ``repeats`` times each after one
    warm-up, interleaved (run a, b, c, a, b, c, ...) so that all see the same machine load.

    Returns:
        (times, results): {name: [seconds] * repeats}, {name: the last result of that run}. On CUDA
        the device is synchronised around every run.
    """
    times, results = {name: [] for name in runs}, {}
    for repeat in range(repeats + 1):  # 0 warms up
        for name, run in runs.items():
            if cuda:
                torch.cuda.synchronize()
            start = clock()
            results[name] = run()
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
) -> dict:
    """Measured wall-clock cost of streaming early exit against the fastest full-T inference.

    Full-T inference is `aoi.inference.full_forward` (all T steps, in its fastest chunks) on
    ``inputs`` [T, N, ...] split into batches of ``batch_size`` samples; streaming is `predict`
    without counting, with at most ``batch_size`` samples in flight (all N at once when None).
    Each is timed with ``clock`` as the best of ``repeats`` runs, the two interleaved, after a
    warm-up of each (`interleaved_times`). The model must be in eval mode; the inputs are
    checked once, before any timing (`check_inputs`).

    Returns:
        dict with full_s, streaming_s (seconds), wallclock_speedup (full_s / streaming_s),
        mean_exit_step, step_speedup (T / mean_exit_step) and realised (wallclock_speedup /
        step_speedup: the share of the step speed-up that the clock sees).
    """
    if repeats < 1:
        raise InputError(f"repeats must be >= 1, got {repeats}")
    if model.training:
        raise InputError("time_inference needs the model in eval mode: call model.eval()")
    check_inputs(model, inputs)
    T, N = inputs.shape[:2]
    batches = inputs.split(batch_size or N, dim=1)
    runs = {
        "full": lambda: [full_forward(model, batch) for batch in batches],
        "streaming": lambda: _predict(model, inputs, epsilon, rule, thresholds, steps, False, batch_size),
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
