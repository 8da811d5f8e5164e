"""Runs as Slurm jobs, through submitit: one job per run, one job array per group of runs that ask
for the same resources.

Each job executes its run's stages exactly as a local process does (`aoi.stages.execute_stages`:
the same notebooks, parameters and records) on its allocated node. Only task 0 executes notebooks
and writes files; the other tasks of a job with several GPUs or tasks join its training
(`join_training`: DistributedDataParallel from Slurm's environment, `aoi.distributed`). When
every job is done, `reproduce` presents the results where it runs.

Resources are data: each dataset of a profile says what one of its runs needs
(`aoi.profiles.run_resources`: GPUs, tasks, nodes, CPUs, memory, hours); site settings (partition,
account, qos, constraint, any other sbatch option) come from the command line or the environment
(`add_options`), never from a profile.

Files: submitit's own (the pickled job, its result, its logs ``<job id>_<task>_log.out|err``)
under ``runs/<profile>/slurm/<job id>/``; and in each run folder ``slurm.json``, its job, so the
same command again collects a queued or running job instead of submitting another.

A job that nears its time limit (submitit signals it 90 s before) is requeued by submitit
(`SlurmStages.checkpoint`); one preempted or requeued by hand (``scontrol requeue``) gets SIGTERM
and is requeued by Slurm. Either way it leaves without a result, so `reproduce` keeps waiting, and
the requeued job resumes from its run's last checkpoint: aoi's resume is exact, so the final
weights are those of an uninterrupted run.

While jobs run, one progress line (queued, running, done, failed) is refreshed in place on a
terminal (printed when it changes otherwise); Ctrl-C stops waiting only: the jobs go on, and the
same command collects them. A failed job is one line: its run, its error, its job id and its log.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from aoi.errors import UserError
from aoi.executors import Progress
from aoi.executors.slurm_job import RECORD, SlurmStages, accounting, ended, job_result, mark_collected, uncollected_job
from aoi.files import write_json
from aoi.layout import runs_root
from aoi.plan import Run, deletion
from aoi.profiles import run_resources
from aoi.stages import Outcome, RunLocked, RunStages, run_lock

SITE = ("partition", "account", "qos", "constraint")  # --<name>, else $AOI_SLURM_<NAME>
POLL_SECONDS = 5
QUEUED = ("PENDING", "REQUEUED", "CONFIGURING", "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD")


def add_options(parser) -> None:
    """The command-line options of the site's Slurm settings (each also from $AOI_SLURM_<NAME>)."""
    group = parser.add_argument_group("Slurm (--executor slurm); each also from the environment variable shown")
    for name in SITE:
        variable = f"AOI_SLURM_{name.upper()}"
        group.add_argument(f"--{name}", default=os.environ.get(variable), help=f"sbatch --{name} [{variable}]")
    group.add_argument(
        "--slurm-option",
        action="append",
        metavar="KEY=VALUE",
        default=shlex.split(os.environ.get("AOI_SLURM_OPTIONS", "")),
        help="any other sbatch option, e.g. reservation=abc or mail-type=END (repeatable) "
        "[AOI_SLURM_OPTIONS, space-separated]",
    )


def site_parameters(args) -> dict:
    """submitit parameters of the site settings in ``args`` (`add_options`, and ``--jobs``)."""
    extra = {}
    for option in args.slurm_option:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise UserError(f"--slurm-option {option!r}: write KEY=VALUE, e.g. reservation=abc")
        extra[key.removeprefix("--")] = value
    site = {f"slurm_{name}": getattr(args, name) for name in SITE if getattr(args, name)}
    if args.jobs:  # --jobs: at most that many jobs of an array at once
        site["slurm_array_parallelism"] = args.jobs
    return {**site, "slurm_additional_parameters": extra} if extra else site


def describe_resources(resources: dict) -> str:
    """One job's resources in words, e.g. "1 node x 4 GPUs (4 tasks), 8 CPUs/task, 64 GB, 24 h"."""
    nodes, gpus, tasks = resources["nodes"], resources["gpus"], resources["tasks"]
    devices = f"{gpus} GPU{'s' * (gpus > 1)}" if gpus else "no GPU"
    text = f"{nodes} node{'s' * (nodes > 1)} x {devices} ({tasks} task{'s' * (tasks > 1)})"
    text += f", {resources['cpus']} CPUs/task"
    memory = f", {resources['mem_gb']:g} GB" if "mem_gb" in resources else ", memory unset"
    return text + memory + (f", {resources['hours']:g} h" if "hours" in resources else ", time limit unset")


def gpu_hours(resources: dict) -> float:
    """GPU-hours one job books: nodes x GPUs per node x its time limit."""
    return resources["nodes"] * resources["gpus"] * resources.get("hours", 0)


def job_parameters(resources: dict, name: str) -> dict:
    """submitit's parameters of one job asking for ``resources`` (`aoi.profiles.run_resources`)."""
    parameters = {
        "name": name,
        "nodes": resources["nodes"],
        "tasks_per_node": resources["tasks"],
        "cpus_per_task": resources["cpus"],
        "timeout_min": math.ceil(resources["hours"] * 60),
        "mem_gb": resources["mem_gb"],
        "slurm_srun_args": ["--kill-on-bad-exit=1"],  # a failed first task stops the others
    }
    return {**parameters, "gpus_per_node": resources["gpus"]} if resources["gpus"] else parameters


class SlurmExecutor:
    """Slurm jobs of the runs of ``profile``, with the site settings and the command of ``args``."""

    name = "slurm"

    def __init__(self, profile: dict, args):
        self.profile, self.command = profile, args.command
        self.site = site_parameters(args)
        self.logs = runs_root(args.runs).resolve() / profile["name"] / "slurm"
        self.jobs = {}  # run name -> submitit job, once submitted or collected
        self.states = accounting()  # without it, a job's files say how it went

    def to_collect(self, run: Run):
        """The job of ``run`` this study collects instead of submitting another: one recorded, not
        yet reported, for a run that keeps its folder; else None."""
        return None if deletion(run) else uncollected_job(run.run_dir)

    def live_job(self, run: Run):
        """The recorded job of ``run`` while it is queued or running, else None."""
        job = uncollected_job(run.run_dir)
        return job if job is not None and not ended(job, self.states) else None

    def resources(self, run: Run) -> dict:
        return run_resources(self.profile, run.params["dataset"])

    def describe(self, run: Run) -> str:
        """The job of a run to run: its resources, or the job it collects."""
        if run.status == "finished":
            return ""
        job = self.to_collect(run)
        if job is not None:
            state = "ended" if ended(job, self.states) else "queued or running"
            return f"; Slurm job {job.job_id} ({state}) is collected, not submitted again"
        return f"; job: {describe_resources(self.resources(run))}"

    def summary(self, todo: list[Run]) -> list[str]:
        """The jobs to submit, by their resources (one job array each), and their GPU-hours."""
        groups, lines = {}, []
        for run in todo:
            if self.to_collect(run) is None:
                groups.setdefault(describe_resources(self.resources(run)), []).append(run)
        total = 0.0
        for text, runs in groups.items():
            hours = len(runs) * gpu_hours(self.resources(runs[0]))
            total += hours
            lines.append(f"  {len(runs)} job(s) of {text}: {hours:g} GPU-hours")
        site = ", ".join(f"{k.removeprefix('slurm_')}={v}" for k, v in self.site.items()) or "the cluster's defaults"
        lines.insert(0, f"[aoi] Slurm: {sum(map(len, groups.values()))} jobs to submit in {len(groups)} array(s):")
        lines.append(
            f"[aoi] Slurm: {total:g} GPU-hours booked at the jobs' time limits (a job requeued at its limit books "
            f"more); site: {site}; logs in {self.logs}"
        )
        return lines

    def problems(self, todo: list[Run]) -> list[str]:
        """No Slurm client, resources without memory or time limit, runs on CUDA without GPUs, and
        runs to start afresh whose earlier job is still queued or running."""
        found = _client_problems()
        for run in {run.params["dataset"]: run for run in reversed(todo)}.values():  # the first of each dataset
            resources, where = self.resources(run), f"profile {self.profile['name']!r}, {run.params['dataset']}"
            found += [f"{where}: no resources.{key}, the job's {what}" for key, what in _NEEDED if key not in resources]
            if str(run.params.get("device")).startswith("cuda") and not resources["gpus"]:
                found.append(f"{where}: device {run.params['device']} but resources.gpus is 0: give its jobs GPUs")
        for run in todo:
            job = self.live_job(run) if deletion(run) else None
            if job is not None:
                found.append(
                    f"{run.name} is to start afresh ({deletion(run)}) but its Slurm job {job.job_id} is still "
                    f"queued or running: wait for it (the same command collects it) or cancel it (scancel {job.job_id})"
                )
        return found

    def stopped(self) -> str:
        """What became of the jobs when the study stopped waiting."""
        if not self.jobs:
            return "nothing was submitted"
        ids = " ".join(job.job_id for job in self.jobs.values())
        return (
            f"stopped waiting; the Slurm jobs go on. Collect their results with the same command: {self.command}\n"
            f"  (cancel them with: scancel {ids}; their logs are in {self.logs})"
        )

    def execute(self, todo: list[Run], parameters: dict[str, dict], progress: Progress) -> None:
        """Collect the queued or running jobs of ``todo``, submit the others, wait for them all."""
        if not self.states:
            print(
                "[aoi] Slurm keeps no job accounting here (sacct fails): a job is seen done by its result file, "
                "queued until it writes its log; one cancelled or killed by Slurm is not seen ending",
                flush=True,
            )
        for run in todo:
            job = self.to_collect(run)
            if job is not None:
                print(f"  {run.name:<40} collecting Slurm job {job.job_id}", flush=True)
                self.jobs[run.name] = job
        rest = [run for run in todo if run.name not in self.jobs]
        groups = {}
        for run in rest:
            groups.setdefault(tuple(sorted(self.resources(run).items())), []).append(run)
        for resources, runs in groups.items():
            self.submit(dict(resources), [run for run in runs if self.prepare(run, progress)], parameters)
        self.wait(progress, {run.name: run.run_dir for run in todo})

    def prepare(self, run: Run, progress: Progress) -> bool:
        """Delete ``run``'s folder, under its lock, when it starts afresh (saying why); False (the
        failure reported) when another process holds it."""
        reason = deletion(run)
        try:
            with run_lock(run.run_dir):
                if reason and run.run_dir.exists():
                    print(f"  deleting {run.run_dir} to train it again ({reason})", flush=True)
                    shutil.rmtree(run.run_dir)
        except RunLocked as error:
            progress.report("slurm", len(self.jobs) + 1, Outcome(run.name, str(error)))
            return False
        return True

    def submit(self, resources: dict, runs: list[Run], parameters: dict[str, dict]) -> None:
        """Submit ``runs`` (one job array when several) with ``resources``; record each job in its run folder."""
        import submitit

        if not runs:
            return
        executor = submitit.AutoExecutor(folder=self.logs / "%j", cluster="slurm")
        executor.update_parameters(**job_parameters(resources, f"aoi-{self.profile['name']}"), **self.site)
        try:
            with executor.batch():
                jobs = [executor.submit(SlurmStages(_work(run, parameters))) for run in runs]
        except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as error:
            raise UserError(f"sbatch refused the jobs: {_text(error)} (check --partition, --account, ...)") from None
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for run, job in zip(runs, jobs):
            record = {"job_id": job.job_id, "tasks": job.num_tasks, "folder": str(self.logs / "%j")}
            write_json(run.run_dir / RECORD, {**record, "submitted_at": now})
            print(f"  {run.name:<40} submitted as Slurm job {job.job_id}", flush=True)
            self.jobs[run.name] = job

    def wait(self, progress: Progress, folders: dict[str, Path]) -> None:
        """Wait for every job, one progress line refreshed; report each as it ends (and record
        that in its run folder, one of ``folders``)."""
        waiting, start, shown, done = dict(self.jobs), time.perf_counter(), "", 0
        while waiting:
            for name, job in list(waiting.items()):
                outcome = _outcome(name, job, time.perf_counter() - start, self.states)
                if outcome is not None:
                    del waiting[name]
                    done += 1
                    shown = _show("", shown)
                    progress.report("slurm job", done, outcome)
                    mark_collected(folders[name])
            queued = sum(_queued(job, self.states) for job in waiting.values())
            failed = len(progress.failures)
            line = (
                f"[aoi] Slurm jobs: {queued} queued, {len(waiting) - queued} running, {done - failed} done, "
                f"{failed} failed (Ctrl-C stops waiting; the jobs go on)"
            )
            shown = _show(line, shown)
            if waiting:
                time.sleep(POLL_SECONDS)
        _show("", shown)


_NEEDED = (("hours", "time limit"), ("mem_gb", "memory per node"))


def _work(run: Run, parameters: dict[str, dict]) -> RunStages:
    return RunStages(run.name, run.run_dir, run.results_dir, parameters[run.name])


def _text(output) -> str:
    """``output`` (a command's stderr, an error) on one line, its last 300 characters."""
    return " ".join(str(output).split())[-300:]


def _client_problems() -> list[str]:
    """One line when Slurm's client commands are missing or its controller does not answer."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return ["--executor slurm needs Slurm's client commands (sbatch, sinfo): run on the cluster's login node"]
    try:
        done = subprocess.run(["sinfo", "--noheader", "--format=%P"], capture_output=True, text=True, timeout=60)
    except subprocess.SubprocessError as error:
        return [f"--executor slurm: sinfo does not answer ({error}): is the Slurm controller reachable?"]
    if done.returncode != 0:
        return [f"--executor slurm: sinfo fails ({_text(done.stderr)}): is the Slurm controller reachable?"]
    return []


def _outcome(name: str, job, seconds: float, states: bool) -> Outcome | None:
    """How ``job`` of run ``name`` ended (its failure naming the job and its log), or None while it
    has not (`aoi.executors.slurm_job.ended`; Slurm's job ``states`` where it keeps them)."""
    if not ended(job, states):
        return None
    result, log = job_result(job), job.task(0).paths.stderr
    if result is None:  # Slurm says it ended, with no result: cancelled, out of memory, node failure
        return Outcome(name, f"Slurm job {job.job_id} ended without a result ({job.state}); log {log}", seconds)
    if result[0] == "error":
        return Outcome(name, f"{result[1]} (Slurm job {job.job_id}, log {log})", seconds)
    return Outcome(name, "", result[1].seconds)


def _queued(job, states: bool) -> bool:
    """Whether ``job`` waits for its start: Slurm's state, or without Slurm's job ``states``,
    whether it has not written its log yet."""
    if states:
        return job.state.split()[0].upper() in QUEUED
    return not job.task(0).paths.stdout.exists()


def _show(line: str, shown: str) -> str:
    """Show the progress ``line`` in place of the ``shown`` one on a terminal (elsewhere print it
    when it changed); "" clears it. Returns what is shown."""
    if sys.stdout.isatty():
        sys.stdout.write("\r\033[K" + line)
        sys.stdout.flush()
    elif line and line != shown:
        print(line, flush=True)
    return line
