"""Chunk schedules of streaming early exit: how many steps each forward of `aoi.anytime.predict` runs.

A schedule (c_1, ..., c_m) runs a sample's steps in forwards of c_1, then c_2, ... steps (every
chunk starts before T; the last may reach past T, its extra steps computed and ignored). A chunk
returns every step's logits, so a sample still exits at its own step; the steps computed past its
exit in the same chunk cost time only. A sample that exits at step e runs the chunks that start
before e. So, with b_j = c_1 + ... + c_j the boundaries (b_0 = 0), cost[c] the seconds of a chunk
of c steps and S(b) the share of samples that exit after step b:

    expected seconds per sample = sum over chunks j of cost[c_j] * S(b_{j-1})

`choose_schedule` minimises it: over every schedule (one sample in flight: a dynamic programme
over the boundaries), or over uniform schedules (k, k, ..., k) when several samples are in flight
with continuous batching, where a sample entering a freed place must find the others at chunk
boundaries (with uniform chunks, every sample is). The costs are measured per model, batch size and
machine (`aoi.anytime.chunk_seconds`); the exits come from calibration data, never test data.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence


def survival(exits: Sequence[float]) -> list[float]:
    """S(b) for b = 0..T-1 from ``exits`` [T] (counts or shares of samples exiting at step t = 1..T):
    the share exiting after step b; S(0) = 1."""
    exits = [float(count) for count in exits]
    total = sum(exits)
    if total <= 0 or min(exits) < 0:
        raise ValueError(f"exits must be non-negative counts per step with a positive sum, got {list(exits)}")
    left, shares = total, []
    for count in exits:
        shares.append(left / total)
        left -= count
    return shares


def expected_seconds(schedule: Sequence[int], costs: Sequence[float], exits: Sequence[float]) -> float:
    """Expected seconds per sample of ``schedule`` with ``costs`` [k - 1] (a chunk of k steps, k = 1..T)
    and ``exits`` [T] (see `survival`): sum over chunks of cost[c_j] * S(start of chunk j)."""
    shares, start, seconds = survival(exits), 0, 0.0
    for chunk in schedule:
        seconds += costs[chunk - 1] * shares[start]
        start += chunk
    return seconds


def uniform(chunk: int, T: int) -> tuple[int, ...]:
    """(k, k, ..., k): chunks of ``chunk`` steps, as many as start before T."""
    return (chunk,) * -(-T // chunk)


def choose_schedule(costs: Sequence[float], exits: Sequence[float], any_schedule: bool = True) -> tuple[int, ...]:
    """The schedule with the least `expected_seconds` for ``costs`` [T] (seconds of a chunk of k = 1..T
    steps) and ``exits`` [T] (counts per exit step). ``any_schedule``: over every schedule (one sample
    in flight), else over uniform ones (continuous batching). Ties go to the smaller chunk; past the
    last exit, one chunk to T."""
    T = len(exits)
    if len(costs) != T:
        raise ValueError(f"costs must hold one value per chunk size 1..{T}, got {len(costs)}")
    if not any_schedule:
        return min((uniform(k, T) for k in range(1, T + 1)), key=lambda s: expected_seconds(s, costs, exits))
    shares = survival(exits)
    best: list[tuple[float, tuple[int, ...]]] = [(0.0, ())] * (T + 1)  # from boundary b to the end
    for start in range(T - 1, -1, -1):
        if shares[start] == 0:  # no sample gets here: the rest in one chunk, never run
            best[start] = (0.0, (T - start,))
            continue
        options = ((costs[c - 1] * shares[start] + best[min(start + c, T)][0], c) for c in range(1, T + 1))
        seconds, chunk = min(options, key=lambda option: option[0])
        best[start] = (seconds, (chunk, *best[min(start + chunk, T)][1]))
    return best[0][1]


def steps_left(schedule: Sequence[int], T: int) -> list[int]:
    """For a sample that has run p = 0..T-1 steps: the steps left in the chunk of ``schedule`` that
    holds step p + 1 (a sample starts its next forward there). Raises ValueError unless every chunk
    is an int in 1..T, starts before T and the chunks reach T."""
    try:
        chunks = [operator.index(c) for c in schedule]
    except TypeError:  # not a sequence of ints
        chunks = []
    starts = [sum(chunks[:j]) for j in range(len(chunks))]
    if not chunks or not 1 <= min(chunks) <= max(chunks) <= T or starts[-1] >= T or starts[-1] + chunks[-1] < T:
        raise ValueError(
            f"schedule {schedule!r} must be chunk sizes 1..{T} that start before T = {T} and reach it "
            f"(for example {uniform(1, T)} or {uniform(3, T)})"
        )
    return [start + chunk - p for start, chunk in zip(starts, chunks) for p in range(start, min(start + chunk, T))]
