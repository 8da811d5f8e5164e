"""The grid runner behind ``./reproduce.sh``: every run of a profile, then its figures and tables.

Each run executes ``notebooks/01_train.ipynb`` then ``notebooks/02_analyse.ipynb`` with
papermill, passing the run's full specification as parameters (`aoi.runspec`: the TrainConfig
values, the analysis settings, its folders and the profile's torch thread count) and keeping the
executed copies in the run directory as its record (``runs/<profile>/<run_name>/``). Training
runs ``--jobs`` at a time; the analyses then run one at a time, so the wall-clock timings of
streaming inference are taken on an otherwise idle machine (a profile that times nothing,
``analysis: {timing_samples: 0}``, analyses each run right after its training instead). A run
is skipped when it is finished with unchanged parameters (`aoi.layout.is_finished`), by the
current code with the profile's torch thread count; a run whose parameters changed, a stale one
(trained or analysed by other code, `aoi.provenance.code_fingerprint`, or with another thread
count; ``--keep-stale`` keeps it), or every run with ``--force``, starts again from scratch, its
run folder removed (the log says which and why first); an interrupted run resumes from its checkpoint.
Then the profile's presentation notebooks (its ``presentation`` list, default figure, tables,
stf, explorer) are executed: in place in ``notebooks/`` when the profile is the one a notebook
shows by default and the results are the repository's (their committed outputs are those
results, which CI checks), into ``results/<profile>/notebooks/`` otherwise.

Only committed notebooks are executed: one whose code differs from git's HEAD (edited in
JupyterLab, say) stops the study before anything runs, naming it and what to do. A failed run
is reported with its executed notebook; the others go on; the exit status is 1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import json
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

from aoi.errors import DEBUG_HELP, UserError
from aoi.files import UnreadableFile, atomic_path, read_json
from aoi.layout import (
    REPO_ROOT,
    canonical,
    is_finished,
    params_match,
    profile_results_dir,
    results_root,
    run_dir,
    run_name,
    run_results_dir,
    runs_root,
)
from aoi.notebook import declared_parameters
from aoi.profiles import ProfileError, load_profile, profile_names, run_grid
from aoi.provenance import staleness
from aoi.runspec import notebook_parameters, profile_threads

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
TRAIN, ANALYSE = "01_train", "02_analyse"
PRESENTATION = {  # a profile's ``presentation`` names -> notebook
    "figure": "03_figure",
    "tables": "04_tables",
    "stf": "05_stf",
    "explorer": "06_explorer",
    "sweep": "07_sweep",
    "capacity": "08_capacity",
}
DEFAULT_PRESENTATION = ("figure", "tables", "stf", "explorer")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Run:
    """One run of the grid: its TrainConfig values, where it lives, and what is to be done."""

    name: str
    params: dict
    run_dir: Path
    results_dir: Path
    status: str  # "finished", "new", "resume", "changed" (parameters differ), "stale", "forced", "unreadable"
    note: str = ""  # why it is stale (`run_staleness`, also when kept) or cannot run ("unreadable": file, what to do)


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
    if is_finished(directory, out, params):
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
        records.append(((read_json(out / "metrics.json") or {}).get("provenance") or {}).get("analysis"))
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


def code_changes(notebook: Path, root: Path = REPO_ROOT) -> str | None:
    """What ``notebook`` runs that its committed version does not (its code cells or parameters
    tag differ from HEAD of the git repository ``root``), as an error line; None when they agree
    or there is no git repository to ask."""
    relative = notebook.resolve().relative_to(root.resolve()).as_posix()
    try:
        run = {"cwd": root, "capture_output": True, "text": True, "timeout": 30}
        committed = subprocess.run(["git", "show", f"HEAD:{relative}"], **run)
    except (OSError, subprocess.SubprocessError):
        return None
    fix = f"commit it (git commit {relative}) or discard the edit (git checkout -- {relative}), then rerun"
    if committed.returncode != 0:
        return None if "not a git repository" in committed.stderr else f"{relative} is not committed: {fix}"
    ours, theirs = (_code_cells(json.loads(text)) for text in (notebook.read_text(encoding="utf-8"), committed.stdout))
    cells = [str(i) for i, (a, b) in enumerate(zip_longest(ours, theirs), 1) if a != b]
    if not cells:
        return None
    return (
        f"{relative} differs from its committed version in code cell {', '.join(cells)} (edited in JupyterLab?); "
        f"./reproduce.sh executes committed notebooks only: {fix}"
    )


def _code_cells(notebook: dict) -> list[tuple[str, bool]]:
    """(source, tagged "parameters") of each code cell: what papermill executes."""
    return [
        ("".join(cell["source"]), "parameters" in cell.get("metadata", {}).get("tags", []))
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    ]


def execute_notebook(notebook: Path, output: Path, parameters: dict) -> None:
    """Execute ``notebook`` with papermill into ``output`` (atomically; on a cell error the executed
    notebook with its traceback is still written, then the error is raised), widgets stripped
    (`strip_widgets`). ``parameters`` must be declared by the notebook. The kernel runs in the
    repository root, where ./reproduce.sh runs."""
    import nbformat
    import papermill

    unknown = sorted(set(parameters) - set(declared_parameters(notebook)))
    if unknown:
        raise ValueError(f"{notebook.name} takes no parameter {', '.join(unknown)}")
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
                extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no transport warning per kernel
            )
        except papermill.PapermillExecutionError as error:
            failure = error
        record = strip_widgets(nbformat.read(tmp, as_version=4))
        record.metadata.papermill["output_path"] = str(output)  # not the temporary name
        nbformat.write(record, tmp)
    if failure is not None:
        raise failure


def strip_widgets(notebook):
    """``notebook`` (nbformat) without widget views and widget state: their model ids are random
    and no kernel serves them later; the outputs' other forms (PNG, text) stay."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
    return notebook


def execute_run(run: Run, stem: str, parameters: dict) -> tuple[str, str, float]:
    """Execute one compute notebook of ``run`` into its run folder. Returns (name, "" or the
    failure message naming the executed notebook, seconds)."""
    start = time.perf_counter()
    reason = deletion(run) if stem == TRAIN and run.run_dir.exists() else None
    if reason:
        print(f"  deleting {run.run_dir} to train it again ({reason})", flush=True)
        shutil.rmtree(run.run_dir)
    output = run.run_dir / f"{stem}.ipynb"
    try:
        execute_notebook(NOTEBOOK_DIR / f"{stem}.ipynb", output, parameters)
    except Exception as error:
        last_line = (str(error).strip().splitlines() or [""])[-1]
        return run.name, f"{type(error).__name__} in {output}: {last_line}", time.perf_counter() - start
    return run.name, "", time.perf_counter() - start


class Progress:
    """Prints one line per finished step and collects the failures."""

    def __init__(self, total: int):
        self.total, self.failures = total, []

    def report(self, stage: str, index: int, outcome: tuple[str, str, float]) -> bool:
        name, failure, seconds = outcome
        status = f"FAILED in {seconds:6.1f} s: {failure}" if failure else f"done in {seconds:6.1f} s"
        print(f"  {stage:<16} [{index}/{self.total}] {name:<40} {status}", flush=True)
        if failure:
            self.failures.append(failure)
        return not failure


def execute_stages(run: Run, stems: tuple[str, ...], parameters: dict) -> tuple[str, str, float]:
    """`execute_run` of each of ``stems`` in turn, stopping at the first failure; total seconds."""
    seconds = 0.0
    for stem in stems:
        name, failure, spent = execute_run(run, stem, parameters[stem])
        seconds += spent
        if failure:
            break
    return name, failure, seconds


def train_and_analyse(
    todo: list[Run], parameters: dict[str, dict], jobs: int, progress: Progress, timed: bool = True
) -> None:
    """Train ``todo`` (``jobs`` at a time), then analyse the trained runs one at a time when the
    analysis measures wall-clock time (``timed``: an otherwise idle machine), else right after
    each run's training, in the same worker. ``parameters``: run name -> {notebook stem: papermill parameters}."""
    stages = (TRAIN,) if timed else (TRAIN, ANALYSE)
    done = []
    if jobs == 1 or len(todo) <= 1:
        for index, run in enumerate(todo, 1):
            if progress.report("/".join(stages), index, execute_stages(run, stages, parameters[run.name])):
                done.append(run)
    else:
        with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
            futures = {pool.submit(execute_stages, run, stages, parameters[run.name]): run for run in todo}
            for index, future in enumerate(concurrent.futures.as_completed(futures), 1):
                if progress.report("/".join(stages), index, future.result()):
                    done.append(futures[future])
    if timed:
        for index, run in enumerate(sorted(done, key=todo.index), 1):  # one at a time: clean timings
            progress.report("analyse", index, execute_run(run, ANALYSE, parameters[run.name][ANALYSE]))


def present(profile: dict, profile_arg: str, results: Path, progress: Progress) -> None:
    """Execute the profile's presentation notebooks (see the module docstring for where)."""
    stems = presentation_notebooks(profile)
    for stem, output in presentation_outputs(profile["name"], results, stems).items():
        begin = time.perf_counter()
        # in place: the notebook's own defaults (no injected cell in the committed notebook)
        in_place = output.parent == NOTEBOOK_DIR
        folder = str(profile_results_dir(profile["name"], results))
        parameters = {} if in_place else {"profile": profile_arg, "results_dir": folder}
        try:
            execute_notebook(NOTEBOOK_DIR / f"{stem}.ipynb", output, parameters)
            print(f"  {stem}.ipynb -> {output} in {time.perf_counter() - begin:.1f} s", flush=True)
        except Exception as error:
            progress.failures.append(f"{type(error).__name__} in {output}")
            print(f"  {stem}.ipynb FAILED: see {output}", flush=True)


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
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.profile.endswith((".yaml", ".yml")):
        args.profile = str(Path(args.profile).resolve())  # as the notebooks' kernels will see it
    return args


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


def config_problems(runs: list[Run]) -> list[str]:
    """What TrainConfig refuses in the values of ``runs`` (their ranges), one line per distinct
    problem naming its first run; it imports torch, so a dry run does not ask."""
    from aoi.config import TrainConfig

    problems = {}
    for run in runs:
        try:
            TrainConfig(**run.params)
        except ValueError as error:
            problems.setdefault(str(error), run.name)
    return [f"{name}: {message}" for message, name in problems.items()]


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the grid and rebuild the presentation; 0 when every run and notebook succeeded, 1 when
    one failed, 2 when nothing could start (a user error: one line, with ``--debug`` its traceback)."""
    args = parse_args(argv)
    try:
        return run_study(args)
    except UserError as error:
        if args.debug:
            raise
        return fail(str(error))


def run_study(args: argparse.Namespace) -> int:
    """`main` after parsing the command line."""
    profile = load_profile(args.profile)
    stems = presentation_notebooks(profile)
    runs, results = runs_root(args.runs).resolve(), results_root(args.results).resolve()
    planned = plan(profile, runs, results, args.force, args.only, args.keep_stale)
    if not planned:
        example = f"{next(iter(profile['datasets']))}/*-s0"
        return fail(
            f"no run of profile {profile['name']!r} matches --only {args.only!r}: give a dataset "
            f"({', '.join(profile['datasets'])}) or a glob on whole run names such as {example!r}"
        )
    todo = [run for run in planned if run.status != "finished"]
    counts = f"{len(planned)} runs, {len(todo)} to run"
    print(f"[aoi] profile {profile['name']}: {counts}; runs in {runs}, results in {results}", flush=True)
    for run in planned:
        print(f"  {run.name:<40} {status_line(run, args.dry_run)}")
    if args.dry_run:
        return 0
    edited = [code_changes(NOTEBOOK_DIR / f"{stem}.ipynb") for stem in [TRAIN, ANALYSE, *stems]]
    unreadable = [run.note for run in planned if run.status == "unreadable"]
    problems = [*filter(None, edited), *unreadable, *config_problems(todo)]
    if problems:
        return fail("\n  ".join(["nothing was run:", *problems]))
    parameters = {r.name: notebook_parameters(args.profile, profile, r.params, r.run_dir, r.results_dir) for r in todo}
    progress, start = Progress(len(todo)), time.perf_counter()
    timed = bool(profile.get("analysis", {}).get("timing_samples", 1))
    train_and_analyse(todo, parameters, args.jobs or int(profile.get("jobs", 1)), progress, timed)
    present(profile, args.profile, results, progress)
    seconds, where = time.perf_counter() - start, profile_results_dir(profile["name"], results)
    print(f"[aoi] {len(todo)} runs and the presentation in {seconds:.0f} s; figures and tables in {where}", flush=True)
    if progress.failures:
        print(f"[aoi] {len(progress.failures)} failed:", *progress.failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0
