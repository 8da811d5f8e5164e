"""Where the runs of a study execute: local processes (`local`) or Slurm jobs (`slurm`).

The plan (`aoi.plan`) says what to run; an executor only runs each run's stages (`aoi.stages`)
and reports how they went. Executors know the stages, never the maths; the plan never knows
which executor runs it. Each executor has:

    describe(run) -> str        what it adds to the run's line of the plan ("" for local processes)
    summary(todo) -> [str]      lines after the plan (a Slurm plan's jobs and GPU-hours)
    problems(todo) -> [str]     what stops the plan before anything starts (no CUDA, no Slurm)
    execute(todo, parameters, progress)   run the stages of ``todo``; report each to ``progress``
    stopped() -> str            what became of the runs when Ctrl-C or SIGTERM stopped the study

``parameters`` maps each run's name to its papermill parameters per stage
(`aoi.runspec.notebook_parameters`).
"""

from __future__ import annotations

from aoi.stages import Outcome

EXECUTORS = ("local", "slurm")


class Progress:
    """Prints one line per finished step and collects the failures."""

    def __init__(self, total: int):
        self.total, self.failures = total, []

    def report(self, stage: str, index: int, outcome: Outcome) -> bool:
        """Print how ``outcome`` went (step ``index`` of the total); True when it succeeded."""
        result = f"FAILED in {outcome.seconds:6.1f} s: {outcome.failure}" if outcome.failure else "done"
        if not outcome.failure:
            result += f" in {outcome.seconds:6.1f} s"
        print(f"  {stage:<16} [{index}/{self.total}] {outcome.name:<40} {result}", flush=True)
        if outcome.failure:
            self.failures.append(outcome.failure)
        return not outcome.failure
