"""Runs as local processes: ``jobs`` runs at a time on this machine.

Training runs ``jobs`` at a time (a process pool); the analyses then run one at a time, so the
wall-clock timings of streaming inference are taken on an otherwise idle machine (a profile that
times nothing, ``analysis: {timing_samples: 0}``, analyses each run right after its training, in
the same worker). Pool workers ignore SIGINT and die on SIGTERM: the process that runs the study
stops them and their notebook kernels (`aoi.stages.stop_descendants`) when it is interrupted.
"""

from __future__ import annotations

import concurrent.futures
import signal

from aoi.executors import Progress
from aoi.plan import Run, deletion
from aoi.stages import ANALYSE, STAGES, TRAIN, RunStages, execute_stages, stop_descendants


class LocalExecutor:
    """Local processes, ``jobs`` at a time; analyses one at a time when ``timed``."""

    name = "local"

    def __init__(self, jobs: int = 1, timed: bool = True):
        self.jobs, self.timed = jobs, timed

    def describe(self, run: Run) -> str:
        return ""

    def stopped(self) -> str:
        """What became of the runs when the study was stopped."""
        return (
            "pool workers and notebook kernels stopped; each run keeps its last checkpoint: "
            "run the same command again to resume"
        )

    def summary(self, todo: list[Run]) -> list[str]:
        return []

    def problems(self, todo: list[Run]) -> list[str]:
        """One line when runs ask for CUDA (``device: cuda``) and this machine has none."""
        cuda = [run.name for run in todo if str(run.params.get("device", "")).startswith("cuda")]
        if not cuda:
            return []
        import torch

        if torch.cuda.is_available():
            return []
        return [
            f"{len(cuda)} run(s) ask for device cuda ({cuda[0]}, ...) and this machine has no CUDA device: "
            "run them where there are GPUs (--executor slurm on a cluster), or set device: cpu in a copy of the profile"
        ]

    def execute(self, todo: list[Run], parameters: dict[str, dict], progress: Progress) -> None:
        """Train ``todo`` (``jobs`` at a time), then analyse the trained runs one at a time when
        ``timed``, else right after each run's training, in the same worker."""
        stages = (TRAIN,) if self.timed else STAGES
        work = [RunStages(r.name, r.run_dir, r.results_dir, parameters[r.name], stages, deletion(r)) for r in todo]
        done = []
        if self.jobs == 1 or len(todo) <= 1:
            for index, item in enumerate(work, 1):
                if progress.report("/".join(stages), index, execute_stages(item)):
                    done.append(item)
        else:
            with concurrent.futures.ProcessPoolExecutor(self.jobs, initializer=_worker_signals) as pool:
                futures = {pool.submit(execute_stages, item): item for item in work}
                try:
                    for index, future in enumerate(concurrent.futures.as_completed(futures), 1):
                        if progress.report("/".join(stages), index, future.result()):
                            done.append(futures[future])
                except BaseException:  # Ctrl-C, SIGTERM: stop the workers now, not after their runs
                    stop_descendants()
                    raise
        if self.timed:
            for index, item in enumerate(sorted(done, key=work.index), 1):  # one at a time: clean timings
                analysis = RunStages(item.name, item.run_dir, item.results_dir, item.parameters, (ANALYSE,))
                progress.report("analyse", index, execute_stages(analysis))


def _worker_signals() -> None:
    """A pool worker leaves Ctrl-C to the study's process, and dies on SIGTERM (when it is stopped)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
