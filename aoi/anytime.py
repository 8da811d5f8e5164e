"""Anytime inference that really stops: streaming early exit, its wall-clock cost, and the
cutoff rules compared.

`predict` runs a model one timestep at a time with the neurons' state carried
(`aoi.neurons.streaming`), accumulates Y_t = Y_{t-1} + O_t, asks the cutoff rule
(`aoi.cutoff.confidence_stop` / `aoi.cutoff.topk_stop`) after every step, and removes the
samples that exited from the batch and from every neuron's state (`aoi.neurons.keep_samples`),
so later steps compute only for the samples still running. With a ``batch_size`` below the
number of samples, waiting samples fill the places freed by exits (continuous batching).
It needs the model in eval mode and raises otherwise (it never switches modes behind the
caller's back). Its operation counts are those of `aoi.energy.count_operations` summed up to
each exit step.

Exactness: its exit steps and predictions equal those of the post-hoc
`aoi.cutoff.confidence_cutoff` / `topk_cutoff` on the full-T outputs ``model(inputs)``, as long
as the model gives each sample bitwise the same logits in a T=1 forward of any sub-batch as in
the full [T, N] forward (Y is accumulated in the same order as their ``cumsum``). The tests
check this bitwise on CPU for every aoi model. On GPU, cuDNN may pick other kernels for other
batch sizes; logits can then differ in the last bits, and a sample whose confidence lies within
float rounding of the threshold may exit one step apart.

Post-hoc (on saved logits), `compare_rules` tabulates accuracy against mean exit step for the
confidence rule, the Top-K gap rule, fixed T and the OCT oracle.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import pandas as pd
import torch
from torch import nn

from aoi.cutoff import calibrate_topk_thresholds, confidence_stop, topk_cutoff, topk_stop
from aoi.energy import OperationCounter, energy_pj
from aoi.metrics import accuracy_per_step, cutoff_curve, optimal_cutoff_timestep
from aoi.neurons import append_samples, keep_samples, streaming

RULES = ("confidence", "topk", "fixed")


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
            raise ValueError(
                f"rule='confidence' needs epsilon in [0, 1) (exit when max softmax > 1 - epsilon), got {epsilon!r}"
            )
        epsilon = float(epsilon)
        return lambda step, accumulated: confidence_stop(accumulated, epsilon)
    if rule == "topk":
        if thresholds is None or torch.as_tensor(thresholds).shape != (T,):
            shape = None if thresholds is None else tuple(torch.as_tensor(thresholds).shape)
            raise ValueError(
                f"rule='topk' needs thresholds with one value per step, shape ({T},), got {shape} "
                "(see aoi.cutoff.calibrate_topk_thresholds)"
            )
        thresholds = torch.as_tensor(thresholds)  # compared in Y's dtype, as aoi.cutoff.topk_cutoff does
        # each running sample is compared with the threshold of its own step
        return lambda step, accumulated: topk_stop(accumulated, thresholds.to(accumulated)[step])
    if rule == "fixed":
        if steps is None or not 1 <= int(steps) <= T:
            raise ValueError(f"rule='fixed' needs steps, an int in 1..{T} (every sample stops there), got {steps!r}")
        steps = int(steps)
        return lambda step, accumulated: step + 1 >= steps
    raise ValueError(f"unknown rule {rule!r}: use one of {RULES}")


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
    are in flight and waiting samples take the places freed by exits (continuous batching: each
    running sample is at its own step), so every forward stays full until the queue runs dry.

    Args:
        model: an aoi model in eval mode (it raises otherwise: batch norm must use its running
            statistics, and the caller decides the mode), taking [T, N, ...] and returning [T, N, K].
        inputs: [T, N, ...] on the model's device.
        epsilon: for rule "confidence": exit at the first step where max softmax(Y_t) > 1 - epsilon.
        rule: "confidence", "topk" (exit when top1 - top2 of Y_t > thresholds[t]) or "fixed"
            (every sample stops at ``steps``).
        thresholds: [T] per-step Top-K gap thresholds, for rule "topk".
        steps: the fixed number of steps, for rule "fixed".
        count: also count SOPs, MACs and energy per sample (forward hooks; slightly slower).
        batch_size: most samples in flight at once (None: all N).
    Returns:
        `AnytimeResult`, samples in input order; a sample never stopped by the rule exits at T.
        The counts are None when ``count`` is False.
    """
    if inputs.dim() < 2 or inputs.shape[0] < 1 or inputs.shape[1] < 1:
        raise ValueError(f"inputs must be [T, N, ...] with T >= 1 and N >= 1, got shape {tuple(inputs.shape)}")
    T, N = inputs.shape[:2]
    stop_rule = _stop_rule(rule, epsilon, thresholds, steps, T)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (or None for all samples at once), got {batch_size}")
    if model.training:
        raise ValueError("predict needs the model in eval mode (batch norm running statistics): call model.eval()")
    batch_size = N if batch_size is None else min(batch_size, N)
    device = inputs.device
    exit_steps = torch.full((N,), T, dtype=torch.long, device=device)
    predictions = torch.zeros(N, dtype=torch.long, device=device)
    synops = torch.zeros(N, dtype=torch.long, device=device)
    macs = torch.zeros(N, dtype=torch.long, device=device)
    # the running samples, [n, ...] each: original index, 0-based step, Y, SOPs and MACs so far
    active = torch.arange(batch_size, device=device)
    step = torch.zeros(batch_size, dtype=torch.long, device=device)
    accumulated = run_synops = run_macs = None
    admitted = batch_size
    counter = OperationCounter(model) if count else contextlib.nullcontext()
    with torch.no_grad(), streaming(model), counter:
        while True:
            output = model(inputs[step, active].unsqueeze(0))[0]
            accumulated = output if accumulated is None else accumulated + output
            if count:
                step_synops, step_macs = counter.take()
                run_synops = step_synops if run_synops is None else run_synops + step_synops
                run_macs = step_macs if run_macs is None else run_macs + step_macs
            stop = stop_rule(step, accumulated) | (step == T - 1)
            if stop.any():
                done = active[stop]
                exit_steps[done] = step[stop] + 1
                predictions[done] = accumulated[stop].argmax(-1)
                if count:
                    synops[done], macs[done] = run_synops[stop], run_macs[stop]
                keep = ~stop
                active, step, accumulated = active[keep], step[keep], accumulated[keep]
                if count:
                    run_synops, run_macs = run_synops[keep], run_macs[keep]
                keep_samples(model, keep)
                new = min(N - admitted, batch_size - active.shape[0])
                if new:
                    active = torch.cat([active, torch.arange(admitted, admitted + new, device=device)])
                    step = torch.cat([step, step.new_full((new,), -1)])  # -1: advanced to 0 below
                    accumulated = torch.cat([accumulated, accumulated.new_zeros(new, accumulated.shape[1])])
                    if count:
                        run_synops = torch.cat([run_synops, run_synops.new_zeros(new)])
                        run_macs = torch.cat([run_macs, run_macs.new_zeros(new)])
                    append_samples(model, new)
                    admitted += new
                if not active.shape[0]:
                    break
            step += 1
    if not count:
        return AnytimeResult(exit_steps, predictions, None, None, None)
    return AnytimeResult(exit_steps, predictions, synops, macs, energy_pj(synops, macs))


def _timed(run: Callable[[], object], cuda: bool) -> tuple[float, object]:
    """(wall-clock seconds of one ``run()``, its result)."""
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = run()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def time_inference(
    model: nn.Module,
    inputs: torch.Tensor,
    epsilon: float | None = None,
    rule: str = "confidence",
    thresholds=None,
    steps: int | None = None,
    repeats: int = 3,
    batch_size: int | None = None,
) -> dict:
    """Measured wall-clock cost of streaming early exit against ordinary full-T inference.

    Full-T inference is the model's plain forward ``model(inputs)`` under no_grad (the fastest
    path: convs over the folded T*N batch) on ``inputs`` [T, N, ...] split into batches of
    ``batch_size`` samples; streaming is `predict` without counting, with at most ``batch_size``
    samples in flight (all N at once when None). Each is timed as the best of ``repeats`` runs,
    the two interleaved, after a warm-up of each. The model must be in eval mode.

    Returns:
        dict with full_s, streaming_s (seconds), wallclock_speedup (full_s / streaming_s),
        mean_exit_step, step_speedup (T / mean_exit_step).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if model.training:
        raise ValueError("time_inference needs the model in eval mode: call model.eval()")
    T, N = inputs.shape[:2]
    batches = inputs.split(batch_size or N, dim=1)

    def full():
        with torch.no_grad():
            for batch in batches:
                model(batch)

    def stream():
        return predict(model, inputs, epsilon, rule, thresholds, steps, count=False, batch_size=batch_size)

    cuda = inputs.is_cuda
    full_s = streaming_s = math.inf
    for repeat in range(repeats + 1):  # interleaved, so that both see the same machine load; 0 warms up
        full_once, _ = _timed(full, cuda)
        streaming_once, result = _timed(stream, cuda)
        if repeat:
            full_s, streaming_s = min(full_s, full_once), min(streaming_s, streaming_once)
    mean_exit_step = result.exit_steps.double().mean().item()
    return {
        "full_s": full_s,
        "streaming_s": streaming_s,
        "wallclock_speedup": full_s / streaming_s,
        "mean_exit_step": mean_exit_step,
        "step_speedup": T / mean_exit_step,
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
