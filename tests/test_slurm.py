"""``reproduce --executor slurm`` on a real one-node Slurm cluster (tests/slurm_cluster.py), as a user
runs it. One study of three runs of the smoke profile (`study`), kept small for CI: a job array of
two digits runs, one of them diverging; a two-task job of ndigits. Ctrl-C right after submitting
stops waiting only; the digits TET job is requeued mid-training; the same command then collects
every job. Checked: the requeued run ends with the weights and per-step accuracies the local
executor gives (an uninterrupted run), its job ids in its provenance; the two-task job trains as
torchrun's two processes do; the failing job is named with its log and the exit status is 1; a dry
run submits nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from test_distributed import free_port

from aoi.config import TrainConfig
from aoi.files import read_json
from aoi.layout import REPO_ROOT
from aoi.profiles import load_profile, run_params
from aoi.train import train

SMOKE = (REPO_ROOT / "aoi" / "profiles" / "smoke.yaml").read_text()
TET = "digits/T4-tet-s0"


def profile(tmp_path, name: str, edit=lambda values: None) -> str:
    """The smoke profile named ``name`` with small jobs, its tables only, no timing, and ``edit``."""
    values = yaml.safe_load(SMOKE)
    values.update(name=name, presentation=["tables"], resources={"cpus": 1, "mem_gb": 1, "hours": 0.25})
    values["analysis"].update(stf_samples=8, timing_samples=0)
    edit(values)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def command(profile_path: str, tmp_path, *options: str) -> list[str]:
    roots = ["--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    return [sys.executable, "-m", "aoi", "reproduce", "--profile", profile_path, *roots, *options]


def environment(cluster) -> dict:
    env = {key: value for key, value in cluster.env.items() if key != "PYTEST_CURRENT_TEST"}
    return {**env, "PYTHONPATH": str(REPO_ROOT)}


def wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def finals(tmp_path, name: str, run: str) -> tuple[dict, dict, dict | None]:
    """(final.json, metrics.json, slurm.json or None) of ``run`` of profile ``name`` under ``tmp_path``."""
    folder = tmp_path / "runs" / name / run
    metrics = tmp_path / "results" / name / "runs" / run / "metrics.json"
    record = folder / "slurm.json"
    return *(json.loads(path.read_text()) for path in (folder / "final.json", metrics)), read_json(record)


STR = "digits/T4-str-a1e+30-s0"  # alpha 1e30: diverges in its first epoch
DDP = "ndigits/T10-tet-s0"


def smoke_study(values: dict) -> None:
    """digits TET for 40 epochs (time to requeue it mid-training) and a diverging STR; ndigits TET
    on two tasks."""
    digits, ndigits = values["datasets"]["digits"], values["datasets"]["ndigits"]
    digits.update(epochs=40, methods=[{"method": "tet"}, {"method": "str", "alpha": 1e30}])
    ndigits.update(resources={"tasks": 2}, methods=[{"method": "tet"}])


@pytest.fixture(scope="module")
def study(slurm_cluster, tmp_path_factory):
    """The smoke study run as a user would: submitted, Ctrl-C, a job requeued by Slurm mid-training,
    then the same command collects every job. Returns what each step printed and left."""
    tmp_path = tmp_path_factory.mktemp("study")
    path = profile(tmp_path, "slurmsmoke", smoke_study)
    argv = command(path, tmp_path, "--executor", "slurm")
    options = {"cwd": REPO_ROOT, "env": environment(slurm_cluster), "text": True}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    local = subprocess.Popen(command(path, tmp_path / "local", "--only", TET), **options, **pipes)  # meanwhile
    first = subprocess.Popen(argv, **options, **pipes)
    folders = {run: tmp_path / "runs" / "slurmsmoke" / run for run in (TET, STR, DDP)}
    wait_for(lambda: all((f / "slurm.json").exists() for f in folders.values()) or first.poll() is not None, 300)
    first.send_signal(signal.SIGINT)
    interrupted = first.communicate(timeout=120)
    jobs = {run: json.loads((folder / "slurm.json").read_text())["job_id"] for run, folder in folders.items()}
    queued = slurm_cluster.jobs()
    checkpoint = folders[TET] / "checkpoint.pt"
    wait_for(checkpoint.exists, 600)
    requeued_at = torch.load(checkpoint, weights_only=True)["epoch"], (folders[TET] / "final.json").exists()
    slurm_cluster.run("scontrol", "requeue", jobs[TET])
    collected = subprocess.run(argv, **options, capture_output=True, timeout=1800)
    local_output = local.communicate(timeout=1800)
    return {"tmp": tmp_path, "profile": path, "first": (first.returncode, *interrupted), "jobs": jobs}, {
        "queued": queued,
        "requeued_at": requeued_at,
        "collected": collected,
        "local": (local.returncode, *local_output),
    }


def test_ctrl_c_stops_waiting_only_and_the_same_command_collects_the_jobs(study):
    (returncode, _, err), jobs = study[0]["first"], study[0]["jobs"]
    assert returncode == 130 and "stopped by Ctrl-C: stopped waiting; the Slurm jobs go on" in err
    assert "Collect their results with the same command: ./reproduce.sh --profile" in err
    assert f"scancel {' '.join(jobs.values())}" in err
    assert set(jobs.values()) <= set(study[1]["queued"])  # still there after Ctrl-C
    assert jobs[STR] == jobs[TET].replace("_0", "_1")  # the digits runs: one job array
    collected = study[1]["collected"].stdout
    assert all(f"{run:<40} collecting Slurm job {job}" in collected for run, job in jobs.items())
    assert "submitted as" not in collected  # nothing submitted again


def test_a_failing_job_is_named_with_its_log_and_the_others_finish(study):
    collected, job = study[1]["collected"], study[0]["jobs"][STR]
    assert collected.returncode == 1
    (line,) = [line for line in collected.stdout.splitlines() if "FAILED" in line]
    log = study[0]["tmp"] / "runs" / "slurmsmoke" / "slurm" / job / f"{job}_0_log.err"
    assert STR in line and "TrainingDiverged" in line and "training diverged in epoch 1" in line
    assert line.endswith(f"(Slurm job {job}, log {log})") and "TrainingDiverged" in log.read_text()
    assert "04_tables.ipynb ->" in collected.stdout  # the runs that finished are presented
    assert f"{STR}/01_train.ipynb: " in collected.stderr.splitlines()[-1]  # the summary at the end


def test_a_job_requeued_mid_training_gives_what_the_local_executor_gives(study):
    """Requeued by Slurm mid-training, the job resumed from its last checkpoint and ended with the
    weights and per-step accuracies of an uninterrupted local run (same CPU model and threads);
    each step's job id is in the run's provenance."""
    epoch, finished = study[1]["requeued_at"]
    assert 1 <= epoch < 40 and not finished  # requeued mid-training
    assert study[1]["local"][0] == 0, study[1]["local"][2]
    local, on_slurm = finals(study[0]["tmp"] / "local", "slurmsmoke", TET), finals(study[0]["tmp"], "slurmsmoke", TET)
    assert local[0]["weights_sha256"] == on_slurm[0]["weights_sha256"]
    assert local[1]["accuracy_per_step"] == on_slurm[1]["accuracy_per_step"]
    provenance, job = on_slurm[1]["provenance"], study[0]["jobs"][TET]
    assert provenance["train"]["slurm"] == {**provenance["train"]["slurm"], "job_id": job, "restart_count": 0}
    assert provenance["analysis"]["slurm"] == {**provenance["analysis"]["slurm"], "job_id": job, "restart_count": 1}
    assert local[1]["provenance"]["train"]["slurm"] is None


def ranked_training(rank: int, port: int, config: dict, run_dir: str) -> None:
    """One of torchrun's processes (as tests/test_distributed.py launches them), 1 torch thread."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank))
    os.environ.update(LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    train(TrainConfig(**config), run_dir, progress=False)


def test_a_two_task_job_trains_as_two_torchrun_processes(study, tmp_path):
    final, _, record = finals(study[0]["tmp"], "slurmsmoke", DDP)
    config = run_params(load_profile(study[0]["profile"]), "ndigits", "tet")
    mp.spawn(ranked_training, args=(free_port(), config, str(tmp_path / "torchrun")), nprocs=2, join=True)
    assert final["weights_sha256"] == json.loads((tmp_path / "torchrun" / "final.json").read_text())["weights_sha256"]
    trained = json.loads((study[0]["tmp"] / "runs" / "slurmsmoke" / DDP / "config.json").read_text())["provenance"]
    assert trained["machine"]["world_size"] == record["tasks"] == 2 and trained["slurm"]["job_id"] == record["job_id"]
    assert sorted(p.name for p in (study[0]["tmp"] / "results" / "slurmsmoke" / "runs" / DDP).iterdir()) == [
        "cutoff_curve.csv", "metrics.json", "per_step.csv", "rules.csv", "stf.csv"
    ]  # fmt: skip


def test_a_dry_run_submits_nothing_and_says_what_the_jobs_need(slurm_cluster, tmp_path):
    path = profile(tmp_path, "slurmdry")
    run = {"cwd": REPO_ROOT, "env": environment(slurm_cluster), "capture_output": True, "text": True, "timeout": 300}
    done = subprocess.run(command(path, tmp_path, "--executor", "slurm", "--dry-run", "--partition", "test"), **run)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("; job: 1 node x no GPU (1 task), 1 CPUs/task, 1 GB, 0.25 h") == 4
    assert "[aoi] Slurm: 4 jobs to submit in 1 array(s):" in done.stdout
    assert "0 GPU-hours booked at the jobs' time limits" in done.stdout and "; site: partition=test;" in done.stdout
    assert slurm_cluster.jobs() == [] and not (tmp_path / "runs").exists()
    refused = subprocess.run(command(path, tmp_path, "--executor", "slurm", "--partition", "nope"), **run)
    assert refused.returncode == 2 and slurm_cluster.jobs() == []
    assert "error: sbatch refused the jobs: sbatch: error: invalid partition specified: nope" in refused.stderr
