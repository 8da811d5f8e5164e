"""What runs inside a run's Slurm job, and what its files say from outside (`aoi.executors.slurm`).

`SlurmStages` is the function submitit pickles into the job: its task 0 executes the run's stages
(`aoi.stages.execute_stages`), the other tasks of a job with several GPUs or tasks join its
training (`join_training`). SIGTERM (preemption, ``scontrol requeue``, ``scancel``) makes a task
leave without writing a result, and submitit requeues a job near its time limit
(`SlurmStages.checkpoint`); the requeued job resumes from the run's last checkpoint. The run
folder's ``slurm.json`` records the job until a study reported how it ended (`uncollected_job`):
the same command collects it, once; submitit's result file says how it ended (`job_result`).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aoi.files import read_json, write_json
from aoi.stages import TRAIN, Outcome, RunStages, execute_stages

RECORD = "slurm.json"  # in a run folder: {"job_id", "tasks", "folder" (submitit's, with %j), "submitted_at",
# and "collected_at" once a study reported how it ended}
RUN_FAILED = f"{__name__}.RunFailed: "  # how a failed run's error ends its job's traceback


class RunFailed(RuntimeError):
    """A stage of the run failed in its job (the message is the failure's line)."""


@dataclass(frozen=True)
class SlurmStages:
    """What a run's Slurm job calls (submitit pickles it): task 0 executes the run's stages; the
    other tasks of a several-task job join its training."""

    work: RunStages

    def __call__(self) -> Outcome | None:
        signal.signal(signal.SIGTERM, _leave)
        if int(os.environ.get("SLURM_PROCID", "0")):
            return join_training(self.work.parameters[TRAIN])
        outcome = execute_stages(self.work)
        if outcome.failure:
            raise RunFailed(outcome.failure)
        return outcome

    def checkpoint(self):
        """Near the time limit (submitit calls it, then requeues the job): the same stages again;
        training resumes from the run's last checkpoint, written every epoch."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def _leave(signum, frame):
    """SIGTERM in a job (preempted, requeued or cancelled): leave without a result (submitit writes
    none for SystemExit), so the study waits for the requeued job."""
    raise SystemExit(128 + signum)


def join_training(parameters: dict) -> None:
    """A task other than the first: train the run (its share of every batch) with the others, set
    up as 01_train sets up its kernel (`aoi.notebook.compute_run`); it writes nothing."""
    from aoi.config import TrainConfig
    from aoi.notebook import compute_run
    from aoi.train import train

    run = compute_run(**parameters)
    train(TrainConfig(**run.config), run.run_dir, progress=False)


def uncollected_job(run_dir: Path):
    """The submitit job ``run_dir``'s slurm.json records, unless a study already reported how it
    ended (`mark_collected`); else None."""
    record = read_json(Path(run_dir) / RECORD)
    if record is None or "collected_at" in record:
        return None
    from submitit import SlurmJob

    return SlurmJob(folder=record["folder"], job_id=record["job_id"], tasks=list(range(record["tasks"])))


def mark_collected(run_dir: Path) -> None:
    """Record in ``run_dir``'s slurm.json that its job's end was reported: the next study submits anew."""
    record = read_json(Path(run_dir) / RECORD)
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(Path(run_dir) / RECORD, {**record, "collected_at": when})


def accounting() -> bool:
    """Whether Slurm keeps job accounting here (``sacct`` answers): submitit reads job states from it."""
    try:
        done = subprocess.run(["sacct", "--noheader", "--jobs=1", "--format=JobID"], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def ended(job, states: bool) -> bool:
    """Whether ``job`` ended: its first task wrote a result, or (with Slurm's job ``states``) Slurm says so."""
    return job_result(job) is not None or (states and job.task(0).done())


def job_result(job) -> tuple[str, object] | None:
    """("success", what the job returned) or ("error", the last line of its traceback: a failed
    run's failure line) from the result its first task wrote; None while there is none."""
    from submitit.core.utils import pickle_load

    path = job.task(0).paths.result_pickle
    if not path.exists():
        return None
    outcome, value = pickle_load(path)
    if outcome == "success":
        return outcome, value
    return outcome, [line for line in value.splitlines() if line.strip()][-1].removeprefix(RUN_FAILED)
