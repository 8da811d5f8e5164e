"""Render the README's performance tables from the benchmark CSVs: results/benchmarks/table.md.

Reads training.csv (bench_training.py) and anytime.csv (bench_anytime.py) from results/benchmarks/
(or ``--results``) and writes table.md beside them; a test checks that README.md contains exactly
that file, so the README's numbers always come from committed measurements.

    python benchmarks/render_table.py [--results DIR]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd
from common import RESULTS

from aoi.files import write_text

TRAINING_TARGET = 0.5  # aoi's training step over the plain loop's


def measured_on(table: pd.DataFrame) -> str:
    """'machine, N torch thread(s), device, commit' of the rows (the first row's; they share a run)."""
    row = table.iloc[0]
    return f"{row.machine}, {row.threads} torch thread(s), {row.device}, commit {row.commit}"


def training_table(table: pd.DataFrame) -> list[str]:
    row = table.iloc[0]
    lines = [
        f"Training step (forward, TET loss, backward, SGD), VGGSNN at width {row.width}, {row.input}, T={row['T']}, "
        f"batch {row.batch}, median of {row.repeats} interleaved steps; {measured_on(table)}. "
        f"Target: aoi <= {TRAINING_TARGET}x the plain loop.",
        "",
        f"| variant | ms/step | vs plain loop | {row.memory} |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.variant} | {r.ms_per_step:.0f} | {r.ratio_to_plain_loop:.2f} | {r.memory_mib:.0f} |"
        for r in table.itertuples()
    ]
    return lines


def compact(schedule: str) -> str:
    """A schedule "1,1,1,3,3" written with runs counted: "1x3,3x2"."""
    runs = [(chunk, len(list(group))) for chunk, group in itertools.groupby(schedule.split(","))]
    return ",".join(chunk if count == 1 else f"{chunk}x{count}" for chunk, count in runs)


def best(row) -> str:
    """'realised (schedule)' of the fastest schedule timed, or '-' when only the chosen one was (no --floor)."""
    return "-" if pd.isna(row.best_realised) else f"{row.best_realised:.2f} ({compact(row.best_schedule)})"


def anytime_table(table: pd.DataFrame) -> list[str]:
    row = table.iloc[0]
    lines = [
        f"Streaming early exit against the fastest full-T inference (`aoi.inference.full_forward`), T={row['T']}, "
        f"best of {row.repeats} interleaved rounds ({row.clock} clock), {row.data} inputs; {measured_on(table)}. "
        "Step by step: one step per forward; chunked: in chunks of the schedule `predict` chooses (chunk costs "
        "measured, exits of as many calibration samples; 3x2,4: chunks of 3, 3 and 4 steps); best: the fastest "
        "of every schedule timed (chunks of "
        "1..T steps, the chosen one, one chosen on the timed samples' own exits), the floor on this machine. "
        "Targets: wall-clock speed-up >= 1 at batch 1; realised >= 0.8 at batch 1 (>= 0.6 for digits_snn) and "
        ">= 0.9 at batch >= 16; full-T / stepping <= 1. Conv: milliseconds in convolutions, full-T / stepping "
        "all T (profiled).",
        "",
        "| model | input | batch | folded ms | full-T ms | stepping all T ms | step by step ms | chunked ms | "
        "schedule | step speed-up | wall-clock speed-up | realised: step by step, chunked | best realised "
        "| full-T / stepping | conv ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.model} | {r.input} | {r.batch} ({r.samples} samples) | {r.folded_ms:.0f} | {r.full_ms:.0f} | "
        f"{r.stream_T_ms:.0f} | {r.step_by_step_ms:.0f} | {r.streaming_ms:.0f} | {compact(r.schedule)} | "
        f"{r.step_speedup:.2f} | {r.wallclock_speedup:.2f} | {r.realised_step_by_step:.2f}, {r.realised:.2f} | "
        f"{best(r)} | {r.full_vs_stepping:.2f} | {r.full_conv_ms:.0f} / {r.stream_T_conv_ms:.0f} |"
        for r in table.itertuples()
    ]
    return lines


def render(results: Path) -> str:
    """The Markdown of table.md from the CSVs in ``results``."""
    parts = [training_table(pd.read_csv(results / "training.csv")), anytime_table(pd.read_csv(results / "anytime.csv"))]
    return "\n\n".join("\n".join(lines) for lines in parts) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    write_text(args.results / "table.md", render(args.results))
    print(f"wrote {args.results / 'table.md'}")


if __name__ == "__main__":
    main()
