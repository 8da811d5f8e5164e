"""What a study runs: the runs of a profile, each with its status, and the folders it no longer defines.

A run is skipped when it is finished (`aoi.layout.is_finished`: final.json and metrics.json of
its current parameters; and every stage completed, `aoi.stages.is_complete`) by the current code
with the profile's torch thread count. A run whose parameters changed, a stale one (trained or
analysed by other code, `aoi.provenance.code_fingerprint`, or with another thread count; kept
with ``keep_stale``), or every run with ``force``, starts again from scratch, its run folder
deleted after a line that says why (`deletion`); an interrupted one resumes from its checkpoint.
Run folders and results under the profile's folders that the profile does not define
(`leftovers`: a run of an alpha, seed or dataset since removed from it) are listed, never read by
the presentation (`aoi.results`), and removed only after a line that says why (`remove_leftover`).

The plan never knows where its runs execute (`aoi.executors`). Pure Python: no torch.
"""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass
from pathlib import Path

from aoi.files import UnreadableFile, read_json, verified_metrics
from aoi.layout import (
    canonical,
    is_finished,
    params_match,
    profile_results_dir,
    run_dir,
    run_name,
    run_names_under,
    run_results_dir,
)
from aoi.profiles import run_grid
from aoi.provenance import staleness
from aoi.runspec import profile_threads
from aoi.stages import RunLocked, is_complete, run_lock


@dataclass(frozen=True)
class Run:
    """One run of the grid: its TrainConfig values, where it lives, and what is to be done."""

    name: str
    params: dict
    run_dir: Path
    results_dir: Path
    status: str  # "finished", "new", "resume", "changed" (parameters differ), "stale", "forced", "unreadable"
    note: str = ""  # why it is stale (`run_staleness`, also when kept) or cannot run ("unreadable": file, what to do)


@dataclass(frozen=True)
class Leftover:
    """A run under a profile's folders that the profile does not define: its name and folders."""

    name: str
    folders: tuple[Path, ...]


def plan(
    profile: dict, runs: Path, results: Path, force: bool = False, only: str | None = None, keep_stale: bool = False
) -> list[Run]:
    """The runs of ``profile`` that ``only`` selects (`selects`), each with its status: a stale one
    is "stale" unless ``keep_stale``; one whose config.json or metrics.json cannot be read is
    "unreadable", its note naming the file."""
    planned, threads = [], profile_threads(profile)
    for params in run_grid(profile):
        name = run_name(params)
        if only and not selects(only, params):
            continue
        directory, out = run_dir(profile["name"], name, runs), run_results_dir(profile["name"], name, results)
        try:
            stored = None if force else read_json(directory / "config.json")
            status = run_status(stored, directory, out, params, force)
            stale = run_staleness(status, stored, out, threads)
        except UnreadableFile as error:
            planned.append(Run(name, params, directory, out, "unreadable", str(error)))
            continue
        planned.append(Run(name, params, directory, out, "stale" if stale and not keep_stale else status, stale))
    return planned


def run_status(stored: dict | None, directory: Path, out: Path, params: dict, force: bool) -> str:
    """The status of the run in ``directory`` (its config.json's content ``stored``; results in
    ``out``) with TrainConfig values ``params``, staleness aside."""
    if force:
        return "forced"
    if is_finished(directory, out, params) and is_complete(directory):
        return "finished"
    if stored is None:
        return "new"
    if params_match(stored.get("config", stored), params):
        return "resume"
    return "changed"


def run_staleness(status: str, stored: dict | None, out: Path, threads: int) -> str:
    """Why a "finished" or "resume" run was not made by the current code with ``threads`` torch
    threads (`aoi.provenance.staleness` of its training record in config.json, ``stored``, and of a
    finished run's analysis record in ``out``/metrics.json); "" when it was, or for any other status."""
    if status not in ("finished", "resume"):
        return ""
    records = [(stored or {}).get("provenance")]
    if status == "finished":
        records.append(((verified_metrics(out / "metrics.json") or {}).get("provenance") or {}).get("analysis"))
    return staleness(records, threads)


def selects(only: str, params: dict) -> bool:
    """Whether ``--only`` selects the run of TrainConfig values ``params``: ``only`` is its dataset's
    name, or a glob that matches its whole name ``<dataset>/<run>`` (``*`` matches any characters)."""
    return only == params["dataset"] or fnmatch.fnmatchcase(run_name(params), only)


def deletion(run: Run) -> str | None:
    """Why ``run``'s folder is deleted before it trains again (--force, stale and why, or the
    parameters that changed since it was trained, e.g. "epochs 5 -> 4"), or None when it is kept."""
    if run.status == "forced":
        return "--force"
    if run.status == "stale":
        return f"stale: {run.note}"
    if run.status != "changed":
        return None
    stored = read_json(run.run_dir / "config.json") or {}
    stored, params = canonical(stored.get("config", stored)), canonical(run.params)
    changed = [f"{key} {stored.get(key)!r} -> {value!r}" for key, value in params.items() if stored.get(key) != value]
    return f"parameters changed since it trained: {', '.join(changed)}"


def status_line(run: Run, dry_run: bool) -> str:
    """How ``run``'s status is listed, e.g. "finished (skipped)", "unreadable: <file> ...",
    "finished (skipped), stale (kept): threads 2 -> 1", "stale: code none -> 1a2b3c4d5e6f; its folder
    will be deleted to train it again"."""
    line = run.status + (" (skipped)" if run.status == "finished" and not dry_run else "")
    if run.status in ("unreadable", "stale"):
        line += f": {run.note}"
    elif run.note:
        line += f", stale (kept): {run.note}"
    reason = deletion(run) if run.run_dir.exists() else None
    if run.status == "stale" and reason:
        return line + "; its folder will be deleted to train it again"
    return line + (f": its folder will be deleted to train it again ({reason})" if reason else "")


def leftovers(profile: dict, runs: Path, results: Path) -> list[Leftover]:
    """The runs found under ``runs/<profile>`` and ``results/<profile>/runs`` that ``profile`` does
    not define (by name), with their folders."""
    name = profile["name"]
    defined = {run_name(params) for params in run_grid(profile)}
    found = run_names_under(Path(runs) / name) + run_names_under(profile_results_dir(name, results) / "runs")
    return [
        Leftover(run, tuple(f for f in (run_dir(name, run, runs), run_results_dir(name, run, results)) if f.is_dir()))
        for run in sorted(set(found) - defined)
    ]


def leftover_reason(profile: str) -> str:
    """Why a leftover run is not part of the study of ``profile`` (its name)."""
    return f"not a run of profile {profile!r} (taken out of its file since it ran?)"


def remove_leftover(leftover: Leftover, profile: str, runs: Path) -> None:
    """Remove ``leftover``'s folders under its run lock, after a line that says why; a run another
    process holds is kept, with a line that says so."""
    try:
        with run_lock(run_dir(profile, leftover.name, runs)):
            folders = " and ".join(map(str, leftover.folders))
            print(f"  removing {folders}: {leftover_reason(profile)}", flush=True)
            for folder in leftover.folders:
                shutil.rmtree(folder)
    except RunLocked as error:
        print(f"  keeping {leftover.name}: {error}", flush=True)
