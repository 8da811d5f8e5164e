"""The grid runner behind ``./reproduce.sh``: every run of a profile, then its figures and tables.

Each run executes ``notebooks/train.ipynb`` then ``notebooks/evaluate.ipynb`` with papermill,
keeping the executed copies in the run directory as its record (``runs/<profile>/<run_name>/``).
Training runs ``--jobs`` at a time; the evaluations then run one at a time with every core, so
the wall-clock timings of streaming inference are taken on an otherwise idle machine.
A run is skipped when it is finished with unchanged parameters (`aoi.layout.is_finished`); a
run whose parameters changed, or every run with ``--force``, starts again from scratch; an
interrupted run resumes from its checkpoint. Then the presentation notebooks (figure, tables,
stf) are executed: in place in ``notebooks/`` for the default profile (their committed outputs
are the default results, which CI checks), into ``results/<profile>/notebooks/`` otherwise.
A failed run is reported with its executed notebook; the others go on; the exit status is 1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from aoi.files import atomic_path, read_json
from aoi.layout import (
    REPO_ROOT,
    is_finished,
    params_match,
    profile_results_dir,
    results_root,
    run_dir,
    run_name,
    run_results_dir,
    runs_root,
)
from aoi.profiles import load_profile, profile_names, run_grid

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
COMPUTE_NOTEBOOKS = ("train", "evaluate")
PRESENTATION_NOTEBOOKS = ("figure", "tables", "stf")


@dataclass(frozen=True)
class Run:
    """One run of the grid: its TrainConfig values, where it lives, and what is to be done."""

    name: str
    params: dict
    run_dir: Path
    results_dir: Path
    status: str  # "finished", "new", "resume", "changed" (parameters differ: start again), "forced"


def plan(profile: dict, runs: Path, results: Path, force: bool = False, only: str | None = None) -> list[Run]:
    """The runs of ``profile`` whose names match ``only`` (a substring, or a glob with * ? [),
    each with its status."""
    planned = []
    for params in run_grid(profile):
        name = run_name(params)
        if only and not (fnmatch.fnmatch(name, only) if any(c in only for c in "*?[") else only in name):
            continue
        directory, out = run_dir(profile["name"], name, runs), run_results_dir(profile["name"], name, results)
        stored = read_json(directory / "config.json")
        if force:
            status = "forced"
        elif is_finished(directory, out, params):
            status = "finished"
        elif stored is None:
            status = "new"
        elif params_match(stored.get("config", stored), params):
            status = "resume"
        else:
            status = "changed"
        planned.append(Run(name, params, directory, out, status))
    return planned


def execute_notebook(notebook: Path, output: Path, parameters: dict) -> None:
    """Execute ``notebook`` with papermill into ``output`` (atomically; on a cell error the executed
    notebook with its traceback is still written, then the error is raised). The kernel runs in
    the repository root, where ``./reproduce.sh`` runs."""
    import nbformat
    import papermill

    failure = None
    with atomic_path(output) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The specified file .* does not end in", category=UserWarning)
        try:
            papermill.execute_notebook(
                str(notebook),
                str(tmp),
                parameters=parameters,
                kernel_name="python3",
                progress_bar=False,
                cwd=str(REPO_ROOT),
            )  # ./data is the repo's
        except papermill.PapermillExecutionError as error:
            failure = error
        record = nbformat.read(tmp, as_version=4)
        record.metadata.papermill["output_path"] = str(output)  # not the temporary name
        nbformat.write(record, tmp)
    if failure is not None:
        raise failure


def execute_run(
    run: Run, profile: str, runs: Path, results: Path, notebooks: tuple[str, ...] = COMPUTE_NOTEBOOKS
) -> tuple[str, str, float]:
    """Execute one run's ``notebooks`` (train, evaluate). Returns (name, "" or the failure message
    naming the executed notebook, seconds)."""
    start = time.perf_counter()
    if "train" in notebooks and run.status in ("forced", "changed") and run.run_dir.exists():
        shutil.rmtree(run.run_dir)
    parameters = {
        "profile": profile,
        "dataset": run.params["dataset"],
        "method": run.params["method"],
        "alpha": run.params["alpha"] if run.params["method"] == "str" else None,
        "seed": run.params["seed"],
        "T": run.params["T"],
        "runs_root": str(runs),
        "results_root": str(results),
    }
    for name in notebooks:
        output = run.run_dir / f"{name}.ipynb"
        try:
            execute_notebook(NOTEBOOK_DIR / f"{name}.ipynb", output, parameters)
        except Exception as error:
            last_line = (str(error).strip().splitlines() or [""])[-1]
            return run.name, f"{type(error).__name__} in {output}: {last_line}", time.perf_counter() - start
    return run.name, "", time.perf_counter() - start


def presentation_outputs(profile: str, results: Path) -> dict[str, Path]:
    """Where each presentation notebook's executed copy goes: in place for the default profile
    on the repository's results, else ``results/<profile>/notebooks/``."""
    in_place = profile == "default" and results.resolve() == (REPO_ROOT / "results").resolve()
    folder = NOTEBOOK_DIR if in_place else profile_results_dir(profile, results) / "notebooks"
    return {name: folder / f"{name}.ipynb" for name in PRESENTATION_NOTEBOOKS}


def _set_threads(threads: int) -> None:
    """Worker initialiser: the kernels it starts use ``threads`` CPU threads."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./reproduce.sh", description="Run a profile's grid, then its figures and tables."
    )
    parser.add_argument(
        "--profile", default="default", help=f"{' | '.join(profile_names())} or a .yaml path (default: default)"
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="independent runs in parallel (default: the profile's jobs, else 1)"
    )
    parser.add_argument("--force", action="store_true", help="rerun runs that are already finished")
    parser.add_argument("--only", metavar="PATTERN", help="only runs whose name contains PATTERN (or matches a glob)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their status; run nothing")
    parser.add_argument("--runs", help="runs root (default: $AOI_RUNS or ./runs)")
    parser.add_argument("--results", help="results root (default: $AOI_RESULTS or ./results)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the grid and rebuild the presentation; 0 when every run and notebook succeeded, else 1."""
    args = parse_args(argv)
    try:
        profile = load_profile(args.profile)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.profile.endswith((".yaml", ".yml")):
        args.profile = str(Path(args.profile).resolve())  # as the notebooks' kernels will see it
    runs, results = runs_root(args.runs).resolve(), results_root(args.results).resolve()
    planned = plan(profile, runs, results, args.force, args.only)
    if not planned:
        print(f"error: no run of profile {profile['name']!r} matches --only {args.only!r}", file=sys.stderr)
        return 2
    todo = [run for run in planned if run.status != "finished"]
    print(
        f"[aoi] profile {profile['name']}: {len(planned)} runs, {len(todo)} to run; runs in {runs}, "
        f"results in {results}",
        flush=True,
    )
    if args.dry_run:
        for run in planned:
            print(f"  {run.name:<40} {run.status}")
        return 0
    for run in planned:
        if run.status == "finished":
            print(f"  {run.name:<40} finished (skipped)", flush=True)

    jobs = args.jobs or int(profile.get("jobs", 1))
    failures = []  # one line per failed run or notebook
    start = time.perf_counter()

    def report(stage: str, index: int, outcome: tuple[str, str, float]) -> bool:
        name, failure, seconds = outcome
        print(
            f"  {stage} [{index}/{len(todo)}] {name:<40} {'FAILED' if failure else 'done'} in {seconds:6.1f} s"
            + (f": {failure}" if failure else ""),
            flush=True,
        )
        if failure:
            failures.append(failure)
        return not failure

    trained = []
    if jobs == 1 or len(todo) <= 1:
        for index, run in enumerate(todo, 1):
            if report("train", index, execute_run(run, args.profile, runs, results, ("train",))):
                trained.append(run)
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with concurrent.futures.ProcessPoolExecutor(jobs, initializer=_set_threads, initargs=(threads,)) as pool:
            futures = {pool.submit(execute_run, run, args.profile, runs, results, ("train",)): run for run in todo}
            for index, future in enumerate(concurrent.futures.as_completed(futures), 1):
                if report("train", index, future.result()):
                    trained.append(futures[future])
    for index, run in enumerate(sorted(trained, key=todo.index), 1):  # one at a time: clean timings
        report("evaluate", index, execute_run(run, args.profile, runs, results, ("evaluate",)))

    for name, output in presentation_outputs(profile["name"], results).items():
        begin = time.perf_counter()
        parameters = {"profile": args.profile, "results_root": str(results)}
        if output.parent == NOTEBOOK_DIR:  # in place: the notebooks' own defaults, which CI checks
            parameters = {}
            for variable in ("AOI_PROFILE", "AOI_RESULTS"):  # the kernel inherits this environment
                os.environ.pop(variable, None)
        try:
            execute_notebook(NOTEBOOK_DIR / f"{name}.ipynb", output, parameters)
            print(f"  {name}.ipynb -> {output} in {time.perf_counter() - begin:.1f} s", flush=True)
        except Exception as error:
            failures.append(f"{type(error).__name__} in {output}")
            print(f"  {name}.ipynb FAILED: see {output}", flush=True)

    print(
        f"[aoi] {len(todo)} runs and the presentation in {time.perf_counter() - start:.0f} s; "
        f"figures and tables in {profile_results_dir(profile['name'], results)}",
        flush=True,
    )
    if failures:
        print(f"[aoi] {len(failures)} failed:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0
