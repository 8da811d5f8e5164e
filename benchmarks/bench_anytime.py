"""Wall clock of streaming early exit (`aoi.anytime.predict`) against the fastest full-T inference.

For each model and batch size B, ways to run the same samples, timed interleaved (``--repeats``
rounds after a warm-up; the best of each is kept):

- ``folded``: the plain ``model(x)`` on batches of B samples (T folded into the batch);
- ``full``: `aoi.inference.full_forward` on the same batches, the fastest full-T inference (chunks
  measured; the baseline of every speed-up);
- ``stream_T``: `predict` with every sample running all T steps one step per forward (the cost of
  stepping itself);
- ``step_by_step``: `predict` with the confidence rule at ``epsilon``, one step per forward;
- ``streaming``: the same in chunks of the schedule `predict` chooses (`aoi.anytime.default_schedule`:
  chunk costs measured on this model, batch size and machine; exits read on calibration samples,
  never on the timed ones), recorded in the ``schedule`` column;
- with ``--floor``: the same in uniform chunks of every size 2..T and in the schedule chosen on the
  timed samples' own exits (an oracle); ``best_*`` records the fastest of all the schedules timed,
  the floor that no schedule choice beats by much.

Derived: step_speedup T / mean exit step; wallclock_speedup full / streaming; realised
wallclock_speedup / step_speedup (targets: >= 1 wall-clock speed-up at B = 1; realised >= 0.8 at
B = 1 for fashion_snn and vggsnn, >= 0.6 for digits_snn, >= 0.9 at B >= 16); the same for
step_by_step and best; full_vs_stepping full / stream_T. On CPU, one more (untimed) run of ``full``
and of ``stream_T`` under torch's profiler gives the milliseconds spent in convolutions
(full_conv_ms, stream_T_conv_ms).

At B = 1 ``--single-samples`` samples run; at B >= 16, ``--batches`` batches' worth (at least
``--samples``): a queue of samples drains at its end, its last forwards running fewer than B
samples (up to T of them), which a long stream of samples amortises.

Models and data (no trained weights or recordings needed): digits_snn at 2x16x16 (ndigits' size),
fashion_snn at 2x48x48 (N-MNIST as resized by aoi) and vggsnn at width 0.25 on 2x48x48, T=10, on
synthetic event frames (Bernoulli counts, each sample at its own rate); as many again are drawn as
calibration samples. Batch norm holds the statistics of these frames and the readout is scaled
x10 (at initialisation every sample is as unsure as every other); epsilon is set so that the step
speed-up of the calibration samples is ``--step-speedup`` (3.9, the issue's N-MNIST run), from
their post-hoc exits. With ``--run-dir`` a finished aoi run is timed instead, on its own test set,
at ``--epsilon`` (default the tables'), calibrated on its training logits. ``--models vggsnn-paper
resnet19-paper --device cuda``: the paper's networks at their sizes (benchmarks/device_check.py).
exit_mismatches counts samples whose streamed exit differs from the post-hoc rule on the full-T
logits of the same run (0 on CPU; on GPU see aoi.anytime).

Writes results/benchmarks/anytime.csv (``$OUT`` if set). About 12 minutes on 2 CPU cores (20 with ``--floor``):

    python benchmarks/bench_anytime.py [--models digits_snn fashion_snn vggsnn] [--batch-sizes 1 16 64]
        [--repeats 3] [--threads 1] [--clock wall|cpu] [--floor] [--run-dir RUN --epsilon E]
"""

from __future__ import annotations

import argparse
import math
import time

import pandas as pd
import torch
from common import write
from torch import nn

from aoi.anytime import default_schedule, interleaved_times, predict
from aoi.cutoff import confidence_cutoff
from aoi.evaluate import load_logits, load_model, split_dataset
from aoi.inference import full_forward
from aoi.models import get_model
from aoi.profiles import load_profile
from aoi.schedule import uniform

CASES = {  # name: (model, input shape, width, T); the CPU defaults, then the paper's networks (for a GPU)
    "digits_snn": ("digits_snn", (2, 16, 16), 1.0, 10),
    "fashion_snn": ("fashion_snn", (2, 48, 48), 1.0, 10),
    "vggsnn": ("vggsnn", (2, 48, 48), 0.25, 10),
    "vggsnn-paper": ("vggsnn", (2, 48, 48), 1.0, 10),
    "resnet19-paper": ("resnet19", (3, 32, 32), 1.0, 4),
}
CPU_CASES = ("digits_snn", "fashion_snn", "vggsnn")
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def synthetic_case(name: str, samples: int, device: torch.device) -> tuple[nn.Module, torch.Tensor]:
    """(model in eval mode, event frames [T, samples, ...]) on ``device``, as the module docstring says."""
    model_name, shape, width, T = CASES[name]
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = get_model(model_name, 10, shape, T, width=width).to(device)
    rates = torch.linspace(0.05, 0.4, samples)[torch.randperm(samples, generator=generator)]
    frames = torch.rand(T, samples, *shape, generator=generator) < rates.view(1, -1, 1, 1, 1)
    frames = frames.float() + (torch.rand(T, samples, *shape, generator=generator) < rates.view(1, -1, 1, 1, 1) / 4)
    frames = frames.to(device)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average: the statistics of these frames
    with torch.no_grad():
        model.train()
        model(frames[:, :16])
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight *= 10
    return model.eval(), frames


def epsilon_for(outputs: torch.Tensor, step_speedup: float) -> float:
    """The confidence threshold at which T / mean post-hoc exit step is closest to ``step_speedup``."""
    low, high = 1e-9, 1 - 1e-9  # the speed-up grows with epsilon
    for _ in range(60):
        middle = (low * high) ** 0.5
        exits = confidence_cutoff(outputs, middle).exit_steps.double().mean().item()
        low, high = (middle, high) if outputs.shape[0] / exits < step_speedup else (low, middle)
    return high


def convolution_ms(run) -> float:
    """Milliseconds of CPU time that one call of ``run`` spends in convolutions (torch's profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        run()
    return sum(event.self_cpu_time_total for event in profile.key_averages() if "convolution" in event.key) / 1e3


def schedules(model, frames, calibration, epsilon, batch, args) -> dict[str, tuple[int, ...]]:
    """The schedules to time, by run name: step by step, the one `predict` chooses (on the calibration
    logits) and, with ``--floor``, uniform chunks of 2..T and the one chosen on the timed samples' exits."""
    T = frames.shape[0]
    clock = CLOCKS[args.clock]
    chosen = default_schedule(model, frames, batch, calibration, clock, epsilon=epsilon)
    timed = {"step_by_step": uniform(1, T), "streaming": chosen}
    if args.floor:
        timed.update({f"chunks_{k}": uniform(k, T) for k in range(2, T + 1)})
        own = default_schedule(model, frames, batch, full_forward(model, frames), clock, epsilon=epsilon)
        timed["own_exits"] = own
    return timed


def timed_runs(model, frames, calibration, epsilon, batch, args) -> tuple[dict, dict]:
    """({run name: zero-argument callable}, {run name: its schedule, for the early-exit runs})."""
    batches, T = frames.split(batch, dim=1), frames.shape[0]

    def folded():
        with torch.no_grad():
            return [model(part) for part in batches]

    def stream(schedule, **rule):
        return lambda: predict(model, frames, count=False, batch_size=batch, schedule=schedule, **rule)

    timed = schedules(model, frames, calibration, epsilon, batch, args)
    runs = {
        "folded": folded,
        "full": lambda: [full_forward(model, part) for part in batches],
        "stream_T": stream(uniform(1, T), rule="fixed", steps=T),
        **{name: stream(schedule, epsilon=epsilon) for name, schedule in timed.items()},
    }
    return runs, timed


def run_case(label, model, frames, calibration, epsilon, batch, args) -> dict:
    """One row: the timings of the module docstring at batch size ``batch``."""
    runs, timed = timed_runs(model, frames, calibration, epsilon, batch, args)
    times, results = interleaved_times(runs, args.repeats, frames.is_cuda, CLOCKS[args.clock])
    best = {name: 1e3 * min(values) for name, values in times.items()}
    conv = {name: math.nan if frames.is_cuda else convolution_ms(runs[name]) for name in ("full", "stream_T")}
    post_hoc = confidence_cutoff(torch.cat(results["full"], dim=1), epsilon).exit_steps
    mismatches = sum(int((results[name].exit_steps != post_hoc).sum()) for name in timed)
    step_speedup = frames.shape[0] / results["streaming"].exit_steps.double().mean().item()
    realised = {name: best["full"] / best[name] / step_speedup for name in timed}
    fastest = min(timed, key=lambda name: best[name])
    return {
        **label,
        "T": frames.shape[0],
        "batch": batch,
        "samples": frames.shape[1],
        "calibration_samples": calibration.shape[1],
        "epsilon": epsilon,
        **{f"{name}_ms": best[name] for name in ("folded", "full", "stream_T", "step_by_step", "streaming")},
        **{f"{name}_conv_ms": value for name, value in conv.items()},
        "schedule": ",".join(map(str, timed["streaming"])),
        "mean_exit_step": frames.shape[0] / step_speedup,
        "step_speedup": step_speedup,
        "wallclock_speedup": best["full"] / best["streaming"],
        "realised": realised["streaming"],
        "realised_step_by_step": realised["step_by_step"],
        "best_schedule": ",".join(map(str, timed[fastest])) if args.floor else "",
        "best_ms": best[fastest] if args.floor else math.nan,
        "best_realised": realised[fastest] if args.floor else math.nan,
        "full_vs_stepping": best["full"] / best["stream_T"],
        "exit_mismatches": mismatches,  # of every early-exit run, against the post-hoc rule: 0 on CPU
        "clock": args.clock,
        "repeats": args.repeats,
    }


def cases(args):
    """(label, model, frames [T, N, ...], calibration logits [T, M, K], epsilon) for each model to time."""
    device = torch.device(args.device)
    samples = max(samples_at(batch, args) for batch in args.batch_sizes)
    if args.run_dir:
        model, config = load_model(args.run_dir, device)
        dataset = split_dataset(config, "test")
        frames = torch.stack([dataset[i][0] for i in range(min(samples, len(dataset)))]).transpose(0, 1)
        epsilon = args.epsilon if args.epsilon is not None else float(load_profile("default")["epsilon"])
        label = {"model": config.model, "input": "x".join(map(str, frames.shape[2:])), "data": config.dataset}
        calibration = load_logits(args.run_dir, "train")[0].to(device)
        yield label, model, frames.contiguous().to(device), calibration, epsilon
        return
    for name in args.models:
        model, drawn = synthetic_case(name, 2 * samples, device)
        frames, calibration = drawn[:, :samples], full_forward(model, drawn[:, samples:])
        epsilon = epsilon_for(calibration.float().cpu(), args.step_speedup)
        model_name, shape, width, _ = CASES[name]
        label = {"model": model_name, "input": "x".join(map(str, shape)), "width": width, "data": "synthetic"}
        yield label, model, frames, calibration, epsilon


def samples_at(batch: int, args) -> int:
    """Samples timed at batch size ``batch`` (the module docstring says why)."""
    return args.single_samples if batch == 1 else max(args.samples, args.batches * batch)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CPU_CASES), choices=list(CASES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--samples", type=int, default=128, help="least samples at batch sizes >= 16")
    parser.add_argument("--batches", type=int, default=8, help="batches' worth of samples at batch sizes >= 16")
    parser.add_argument("--single-samples", type=int, default=32, help="samples at batch size 1 (slow in Python)")
    parser.add_argument("--step-speedup", type=float, default=3.9, help="sets epsilon on synthetic data")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after a warm-up (best kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall", help="cpu: this thread's CPU time")
    parser.add_argument("--floor", action="store_true", help="also time uniform chunks of 2..T and an oracle schedule")
    parser.add_argument("--run-dir", help="time a finished aoi run on its test set instead")
    parser.add_argument("--epsilon", type=float, help="with --run-dir (default: the default profile's)")
    parser.add_argument("--name", default="anytime", help="CSV name under results/benchmarks/")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for label, model, frames, calibration, epsilon in cases(args):
        for batch in args.batch_sizes:
            subset = frames[:, : samples_at(batch, args)]
            rows.append(run_case(label, model, subset, calibration, epsilon, batch, args))
            print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format=lambda v: f"{v:.3g}"), flush=True)
    table = pd.DataFrame(rows)
    write(args.name, table, torch.device(args.device))
    return table


if __name__ == "__main__":
    main()
