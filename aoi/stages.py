"""The stages of one run of a study: its compute notebooks, executed with papermill under a lock.

A run's stages are ``notebooks/01_train.ipynb`` then ``notebooks/02_analyse.ipynb`` (`STAGES`),
each executed with the run's papermill parameters (`aoi.runspec.notebook_parameters`) into the
run folder, where the executed copy stays as the run's record. Whatever runs them (a local
process, a Slurm job: `aoi.executors`) calls `execute_stages`; nothing here knows where it runs.

- One process at a time: `execute_stages` holds the run's lock (`run_lock`: an flock on
  ``<run folder>.lock`` beside the folder, which the kernel releases when the process dies, so a
  crash never leaves it stuck; on NFS, Linux emulates flock with POSIX locks, across machines). A
  run that another process holds fails at once, naming it; it is never waited for or shared.
- Finished means every stage completed (`completed`): each stage that completes is added to the
  run folder's ``stages.json``, and a stage about to run takes itself and every later stage out
  of it first; so a run stopped during 02_analyse, its metrics.json already written, is not finished.
- Temporary files (``.*.tmp`` of `aoi.files.atomic_path`) that a killed process left in the run's
  folders are removed, under the lock, before its stages start.

Only committed notebooks are executed (`code_changes`). Pure Python at import (no torch).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

from aoi.errors import UserError
from aoi.files import atomic_path, read_json, write_json
from aoi.layout import REPO_ROOT
from aoi.notebook import declared_parameters, without_widget_views

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
TRAIN, ANALYSE = "01_train", "02_analyse"
STAGES = (TRAIN, ANALYSE)  # in order; a run is finished when all of them completed
RECORD = "stages.json"  # in the run folder: {"completed": {stage: time (UTC)}}


class RunLocked(UserError, RuntimeError):
    """Another process holds the run's lock (the message names it)."""


@dataclass(frozen=True)
class RunStages:
    """What one run's stages need (picklable: it travels to pool workers and Slurm jobs):
    ``parameters`` {stage: papermill parameters}, the ``stages`` to execute, and ``delete``: why
    the run folder is deleted first (None: it is kept, and training resumes from its checkpoint)."""

    name: str
    run_dir: Path
    results_dir: Path
    parameters: dict
    stages: tuple[str, ...] = STAGES
    delete: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How a run's stages went: ``failure`` is "" or one line naming the executed notebook."""

    name: str
    failure: str = ""
    seconds: float = 0.0


def execute_stages(work: RunStages) -> Outcome:
    """Execute ``work.stages`` of one run in turn under its lock (`run_lock`), after deleting its
    folder when ``work.delete`` says why; stops at the first failure."""
    start = time.perf_counter()
    try:
        with run_lock(work.run_dir):
            if work.delete and work.run_dir.exists():
                print(f"  deleting {work.run_dir} to train it again ({work.delete})", flush=True)
                shutil.rmtree(work.run_dir)
            remove_temporaries(work.run_dir, work.results_dir)
            for stage in work.stages:
                failure = execute_stage(work, stage)
                if failure:
                    return Outcome(work.name, failure, time.perf_counter() - start)
    except RunLocked as error:
        return Outcome(work.name, str(error), time.perf_counter() - start)
    return Outcome(work.name, "", time.perf_counter() - start)


def execute_stage(work: RunStages, stage: str) -> str:
    """Execute one stage of ``work`` into its run folder and record it as completed; returns "" or
    the failure, naming the executed notebook and the error's last line."""
    forget(work.run_dir, stage)
    output = work.run_dir / f"{stage}.ipynb"
    try:
        execute_notebook(NOTEBOOK_DIR / f"{stage}.ipynb", output, work.parameters[stage])
    except Exception as error:
        return f"{type(error).__name__} in {output}: {last_line(error)}"
    completed_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(work.run_dir / RECORD, {"completed": {**completed(work.run_dir), stage: completed_at}})
    return ""


def last_line(error: BaseException) -> str:
    """The last line of ``error``'s message (a papermill error's is the cell's exception)."""
    return (str(error).strip().splitlines() or [""])[-1]


def completed(run_dir: Path) -> dict[str, str]:
    """The stages of the run in ``run_dir`` recorded as completed: {stage: when (UTC)}."""
    return (read_json(Path(run_dir) / RECORD) or {}).get("completed", {})


def is_complete(run_dir: Path) -> bool:
    """Whether every stage (`STAGES`) of the run in ``run_dir`` completed."""
    return set(STAGES) <= set(completed(run_dir))


def forget(run_dir: Path, stage: str) -> None:
    """Take ``stage`` and every later stage out of the run's record (they are about to run again)."""
    done = completed(run_dir)
    later = STAGES[STAGES.index(stage) :]
    if any(name in done for name in later):
        write_json(run_dir / RECORD, {"completed": {k: v for k, v in done.items() if k not in later}})


def remove_temporaries(*folders: Path) -> None:
    """Remove the temporary files (``.*.tmp``) a killed writer left in ``folders``; call it only
    while holding the run's lock (no one else writes there)."""
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)


def lock_path(run_dir: Path) -> Path:
    """The lock file of the run in ``run_dir``: beside it, so deleting the folder keeps the lock."""
    return run_dir.with_name(f"{run_dir.name}.lock")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock for the block, or raise `RunLocked` naming the process that holds it.

    The lock file is never deleted while held; one replaced while this process waited for it (its
    inode changed) is opened again, so two holders never lock different files of one path."""
    path = lock_path(Path(run_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1000, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLocked(
                f"{run_dir} is being run by {holder}: wait for it to finish (or stop it), then run again"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)
    try:
        since = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def stop_descendants(grace: float = 10.0) -> int:
    """Stop every process this one started and their children (pool workers, notebook kernels,
    which run in sessions of their own): SIGTERM, then SIGKILL after ``grace`` seconds. Files
    written atomically keep their last complete version. Returns how many were running."""
    import psutil

    processes = psutil.Process().children(recursive=True)  # collected first: kernels outlive workers
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)
    return len(processes)


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
    (`aoi.notebook.without_widget_views`). ``parameters`` must be declared by the notebook. The kernel runs in the
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
        record = without_widget_views(nbformat.read(tmp, as_version=4), every=True)
        record.metadata.papermill["output_path"] = str(output)  # not the temporary name
        nbformat.write(record, tmp)
    if failure is not None:
        raise failure
