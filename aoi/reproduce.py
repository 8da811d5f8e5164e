"""The grid runner behind ``./reproduce.sh``: every run of a profile, then its figures and tables.

    profile --> plan (aoi.plan: what to run) --> executor (aoi.executors: local processes or
    Slurm jobs) --> the stages of each run (aoi.stages: 01_train, 02_analyse) --> presentation

Each run executes ``notebooks/01_train.ipynb`` then ``notebooks/02_analyse.ipynb`` with
papermill, passing the run's full specification as parameters (`aoi.runspec`) and keeping the
executed copies in the run directory as its record (``runs/<profile>/<run_name>/``). The plan
skips finished runs, resumes interrupted ones and starts changed or stale ones again from
scratch, each after a line saying why (`aoi.plan`); runs the profile no longer defines are
listed and removed (without ``--only``). Before anything starts, every problem of the plan is
reported at once (`aoi.preflight`). Then the profile's presentation notebooks (its
``presentation`` list, default figure, tables, stf, explorer) are executed where ``reproduce``
runs: in place in ``notebooks/`` when the profile is the one a notebook shows by default and the
results are the repository's (their committed outputs are those results, which CI checks), into
``results/<profile>/notebooks/`` otherwise; only when a run of the profile has finished.

A failed run is reported with its executed notebook; the others go on; the exit status is 1.
Ctrl-C or SIGTERM stops every process the study started (pool workers, notebook kernels; Slurm
jobs go on), keeps the runs' last checkpoints and exits with 130 or 143.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from pathlib import Path

from aoi import stages
from aoi.errors import DEBUG_HELP, UserError
from aoi.executors import EXECUTORS, Progress, slurm
from aoi.layout import REPO_ROOT, profile_results_dir, results_root, runs_root
from aoi.notebook import declared_parameters
from aoi.plan import Run, leftover_reason, leftovers, plan, remove_leftover, status_line
from aoi.profiles import ProfileError, load_profile, profile_names
from aoi.runspec import notebook_parameters
from aoi.stages import NOTEBOOK_DIR, last_line, stop_descendants

PRESENTATION = {  # a profile's ``presentation`` names -> notebook
    "figure": "03_figure",
    "tables": "04_tables",
    "stf": "05_stf",
    "explorer": "06_explorer",
    "sweep": "07_sweep",
    "capacity": "08_capacity",
}
DEFAULT_PRESENTATION = ("figure", "tables", "stf", "explorer")


class Terminated(BaseException):
    """SIGTERM arrived (raised in the main thread, as Ctrl-C raises KeyboardInterrupt)."""


def _terminate(signum, frame):
    raise Terminated


def presentation_notebooks(profile: dict) -> list[str]:
    """The presentation notebooks of ``profile`` (stems), from its ``presentation`` list."""
    names = profile.get("presentation", DEFAULT_PRESENTATION)
    unknown = [name for name in names if name not in PRESENTATION]
    if unknown:
        choices = ", ".join(PRESENTATION)
        raise ProfileError(f"profile {profile['name']!r}: unknown presentation {unknown}; use {choices}")
    return [PRESENTATION[name] for name in names]


def presentation_outputs(profile: str, results: Path, stems) -> dict[str, Path]:
    """Where each presentation notebook's executed copy goes: in place when ``profile`` is the one
    the notebook shows by default and ``results`` is the repository's, else ``results/<profile>/notebooks/``."""
    repository = Path(results).resolve() == (REPO_ROOT / "results").resolve()
    outputs = {}
    for stem in stems:
        own = declared_parameters(NOTEBOOK_DIR / f"{stem}.ipynb").get("profile") == profile
        folder = NOTEBOOK_DIR if own and repository else profile_results_dir(profile, results) / "notebooks"
        outputs[stem] = folder / f"{stem}.ipynb"
    return outputs


def present(profile: dict, profile_arg: str, results: Path, progress: Progress) -> None:
    """Execute the profile's presentation notebooks (see the module docstring for where); a
    failure is reported with its executed notebook and the error's last line."""
    stems = presentation_notebooks(profile)
    for stem, output in presentation_outputs(profile["name"], results, stems).items():
        begin = time.perf_counter()
        # in place: the notebook's own defaults (no injected cell in the committed notebook)
        in_place = output.parent == NOTEBOOK_DIR
        folder = str(profile_results_dir(profile["name"], results))
        parameters = {} if in_place else {"profile": profile_arg, "results_dir": folder}
        try:
            stages.execute_notebook(NOTEBOOK_DIR / f"{stem}.ipynb", output, parameters)
            print(f"  {stem}.ipynb -> {output} in {time.perf_counter() - begin:.1f} s", flush=True)
        except Exception as error:
            progress.failures.append(f"{type(error).__name__} in {output}: {last_line(error)}")
            print(f"  {stem}.ipynb FAILED ({last_line(error)}): see {output}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./reproduce.sh", description="Run a profile's grid, then its figures and tables."
    )
    parser.add_argument(
        "--profile", default="default", help=f"{' | '.join(profile_names())} or a .yaml path (default: default)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="independent runs in parallel (default: the profile's jobs, else 1; "
        "with --executor slurm: at most that many jobs of an array at once, default: as many as Slurm starts)",
    )
    parser.add_argument("--force", action="store_true", help="rerun runs that are already finished")
    parser.add_argument(
        "--keep-stale",
        action="store_true",
        help="keep runs made by other code or thread count (stale) instead of rerunning them",
    )
    parser.add_argument(
        "--only",
        metavar="PATTERN",
        help="only the runs of dataset PATTERN, or whose whole name <dataset>/<run> matches the glob PATTERN "
        "(e.g. digits, 'ndigits/*-str-*', '*-s0')",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the runs, their status and what would be deleted; run nothing"
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument("--runs", help="runs root (default: $AOI_RUNS or ./runs)")
    parser.add_argument("--results", help="results root (default: $AOI_RESULTS or ./results)")
    parser.add_argument(
        "--executor", choices=EXECUTORS, default="local", help="where runs execute: local processes or Slurm jobs"
    )
    slurm.add_options(parser)
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.profile.endswith((".yaml", ".yml")):
        args.profile = str(Path(args.profile).resolve())  # as the notebooks' kernels will see it
    args.command = shlex.join(["./reproduce.sh", *(sys.argv[1:] if argv is None else argv)])
    return args


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the grid and rebuild the presentation; 0 when every run and notebook succeeded, 1 when
    one failed, 2 when nothing could start (a user error: one line, with ``--debug`` its traceback),
    130 or 143 when Ctrl-C or SIGTERM stopped it."""
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_study(args)
    except UserError as error:
        if args.debug:
            raise
        return fail(str(error))
    except (KeyboardInterrupt, Terminated) as stop:
        return stopped(stop, "nothing had started")
    finally:
        signal.signal(signal.SIGTERM, previous)


def make_executor(args: argparse.Namespace, profile: dict):
    """The executor ``args.executor`` names, set up for ``profile``."""
    if args.executor == "slurm":
        return slurm.SlurmExecutor(profile, args)
    from aoi.executors.local import LocalExecutor

    timed = bool(profile.get("analysis", {}).get("timing_samples", 1))
    return LocalExecutor(args.jobs or int(profile.get("jobs", 1)), timed)


def list_plan(profile: dict, planned: list[Run], todo: list[Run], args, executor) -> list:
    """Print the plan: every run and its status, the runs the profile no longer defines, and the
    executor's summary. Returns those leftovers."""
    runs, results, name = runs_root(args.runs).resolve(), results_root(args.results).resolve(), profile["name"]
    print(f"[aoi] profile {name}: {len(planned)} runs, {len(todo)} to run; runs in {runs}, results in {results}")
    for run in planned:
        print(f"  {run.name:<40} {status_line(run, args.dry_run)}{executor.describe(run)}")
    found = leftovers(profile, runs, results)
    for leftover in found:
        folders = " and ".join(map(str, leftover.folders))
        fate = "kept (--only)" if args.only else "will be removed"
        print(f"  {leftover.name:<40} {leftover_reason(name)}: {folders} {fate}")
    for line in executor.summary(todo):
        print(line)
    sys.stdout.flush()
    return found


def run_study(args: argparse.Namespace) -> int:
    """`main` after parsing the command line."""
    profile = load_profile(args.profile)
    presentation_notebooks(profile)  # checked before anything is listed
    runs, results = runs_root(args.runs).resolve(), results_root(args.results).resolve()
    planned = plan(profile, runs, results, args.force, args.only, args.keep_stale)
    if not planned:
        example = f"{next(iter(profile['datasets']))}/*-s0"
        return fail(
            f"no run of profile {profile['name']!r} matches --only {args.only!r}: give a dataset "
            f"({', '.join(profile['datasets'])}) or a glob on whole run names such as {example!r}"
        )
    todo = [run for run in planned if run.status != "finished"]
    executor = make_executor(args, profile)
    found = list_plan(profile, planned, todo, args, executor)
    if args.dry_run:
        print("[aoi] dry run: nothing was run, submitted or deleted")
        return 0
    try:
        return execute_study(args, profile, planned, todo, found, executor)
    except (KeyboardInterrupt, Terminated) as stop:
        return stopped(stop, executor.stopped())


def stopped(stop: BaseException, what: str) -> int:
    """Stop every process the study started, say so and what became of the runs (``what``); the
    exit status of Ctrl-C (130) or SIGTERM (143)."""
    stop_descendants()
    why = "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"
    print(f"[aoi] stopped by {why}: {what}", file=sys.stderr, flush=True)
    return 143 if isinstance(stop, Terminated) else 130


def execute_study(args, profile: dict, planned: list[Run], todo: list[Run], found: list, executor) -> int:
    """`run_study` once the plan is listed: check it, remove the leftovers, execute, present."""
    from aoi import preflight

    stems = presentation_notebooks(profile)
    runs, results = runs_root(args.runs).resolve(), results_root(args.results).resolve()
    problems = preflight.problems(planned, todo, stems, executor)
    if problems:
        return fail("\n  ".join(["nothing was run:", *problems]))
    for leftover in [] if args.only else found:
        remove_leftover(leftover, profile["name"], runs)
    parameters = {r.name: notebook_parameters(args.profile, profile, r.params, r.run_dir, r.results_dir) for r in todo}
    progress, start = Progress(len(todo)), time.perf_counter()
    executor.execute(todo, parameters, progress)
    finished = [run for run in plan(profile, runs, results, keep_stale=True) if run.status == "finished"]
    if finished:
        present(profile, args.profile, results, progress)
    else:
        print(f"[aoi] no run of profile {profile['name']} has finished: nothing to present", flush=True)
    seconds, where = time.perf_counter() - start, profile_results_dir(profile["name"], results)
    print(f"[aoi] {len(todo)} runs and the presentation in {seconds:.0f} s; figures and tables in {where}", flush=True)
    if progress.failures:
        print(f"[aoi] {len(progress.failures)} failed:", *progress.failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0
