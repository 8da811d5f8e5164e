"""The grid runner as a user meets it when things go wrong: a profile edited between two calls, a
run stopped half-way through its stages, two studies at once on one run folder, and SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from multiprocessing import get_context

import psutil
import pytest
import torch
from test_reproduce import NAMES, TINY, mark_finished, roots

from aoi import reproduce, stages
from aoi.layout import REPO_ROOT
from aoi.plan import plan
from aoi.profiles import load_profile


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path), tmp_path / "runs", tmp_path / "results"


def statuses(profile_path, runs, results) -> dict[str, str]:
    return {run.name: run.status for run in plan(load_profile(profile_path), runs, results)}


def test_a_run_is_finished_only_when_every_stage_completed(tiny):
    """Stopped during 02_analyse after metrics.json was written: training and analysis files are
    there, but the analysis stage never completed, so the run is not finished."""
    profile, runs, results = tiny
    mark_finished(profile, runs, results, NAMES[0])
    run = runs / "tiny" / NAMES[0]
    assert statuses(profile, runs, results)[NAMES[0]] == "finished"
    stages.forget(run, stages.ANALYSE)  # what executing 02_analyse does first
    assert list(stages.completed(run)) == [stages.TRAIN]
    assert statuses(profile, runs, results)[NAMES[0]] == "resume"
    stages.forget(run, stages.TRAIN)  # training again: the analysis after it is due again too
    assert stages.completed(run) == {}


def test_runs_the_profile_no_longer_defines_are_listed_then_removed_after_a_line(tiny, monkeypatch, capsys):
    profile, runs, results = tiny
    for name in NAMES:
        mark_finished(profile, runs, results, name)
    with open(profile, "w") as file:  # the profile edited: no STR any more
        file.write(TINY.replace("      - {method: str, alpha: 0.5}\n", ""))
    leftovers = [name for name in NAMES if "-str-" in name]
    assert reproduce.main(["--profile", profile, "--dry-run", *roots(runs, results)]) == 0
    out = capsys.readouterr().out
    for name in leftovers:
        line = next(line for line in out.splitlines() if line.split()[0] == name)
        assert "not a run of profile 'tiny' (taken out of its file since it ran?)" in line
        assert line.endswith(f"{runs / 'tiny' / name} and {results / 'tiny' / 'runs' / name} will be removed")
    monkeypatch.setattr(stages, "code_changes", lambda notebook: None)
    monkeypatch.setattr(stages, "execute_notebook", lambda *args: None)
    assert reproduce.main(["--profile", profile, "--only", "*-s0", *roots(runs, results)]) == 0
    assert "kept (--only)" in capsys.readouterr().out and (runs / "tiny" / leftovers[0]).is_dir()
    assert reproduce.main(["--profile", profile, *roots(runs, results)]) == 0
    out = capsys.readouterr().out
    for name in leftovers:
        assert f"  removing {runs / 'tiny' / name} and {results / 'tiny' / 'runs' / name}: not a run of" in out
        assert not (runs / "tiny" / name).exists() and not (results / "tiny" / "runs" / name).exists()
    assert sorted(statuses(profile, runs, results)) == [NAMES[0], NAMES[1]]


def hold_lock(run_dir, ready, release):
    with stages.run_lock(run_dir):
        ready.set()
        release.wait(60)


def test_a_run_lock_is_held_by_one_process_and_freed_when_it_dies(tmp_path):
    run_dir = tmp_path / "runs" / "p" / "digits" / "T2-tet-s0"
    context = get_context("fork")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=hold_lock, args=(run_dir, ready, release))
    holder.start()
    assert ready.wait(60)
    refused = pytest.raises(stages.RunLocked, match=f"{run_dir} is being run by process {holder.pid} on ")
    with refused, stages.run_lock(run_dir):
        pass
    os.kill(holder.pid, signal.SIGKILL)  # a crash: no cleanup at all
    holder.join(60)
    with stages.run_lock(run_dir):  # the kernel released it
        assert stages.lock_path(run_dir).read_text().startswith(f"process {os.getpid()} on ")


SLOW = TINY.replace("seeds: [0, 1]", "seeds: [0]").replace("epochs: 1", "epochs: 5000")
SLOW = SLOW.replace("timing_samples: 8", "timing_samples: 0") + "jobs: 2\n"


def wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def files(folder) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_sigterm_stops_workers_and_kernels_and_a_second_study_never_trains_the_same_runs(tmp_path):
    """A real ./reproduce.sh with jobs: 2, training two runs: a second one on the same folders
    refuses both runs; SIGTERM to the first stops its workers and their kernels, keeps the last
    checkpoints, exits 143; nothing writes there afterwards, and the runs resume later."""
    profile = tmp_path / "slow.yaml"
    profile.write_text(SLOW)
    runs, results = tmp_path / "runs", tmp_path / "results"
    command = [sys.executable, "-m", "aoi", "reproduce", "--profile", str(profile), *roots(runs, results)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    options = {"cwd": REPO_ROOT, "env": env, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    first = subprocess.Popen(command, **options, start_new_session=True)
    names = ["digits/T2-tet-s0", "digits/T2-str-a0.5-s0"]
    checkpoints = [runs / "slow" / name / "checkpoint.pt" for name in names]
    wait_for(lambda: all(path.exists() for path in checkpoints) or first.poll() is not None, 300)
    second = subprocess.run(command, **options, timeout=300)
    assert second.returncode == 1
    assert second.stderr.count(" is being run by process ") == 2, second.stderr
    processes = psutil.Process(first.pid).children(recursive=True)
    assert len(processes) >= 4  # two pool workers, a kernel each
    first.send_signal(signal.SIGTERM)
    err = first.communicate(timeout=120)[1]
    assert first.returncode == 143 and "[aoi] stopped by SIGTERM: pool workers and notebook kernels stopped" in err
    assert psutil.wait_procs(processes, timeout=10)[1] == []  # no orphan
    written = files(runs)
    time.sleep(3)
    assert files(runs) == written  # nothing trains or writes any more
    for path in checkpoints:
        assert torch.load(path, weights_only=True)["epoch"] >= 1 and not (path.parent / "final.json").exists()
    assert list(statuses(str(profile), runs, results).values()) == ["resume", "resume"]


def test_a_plan_that_cannot_run_says_so_once_before_anything_starts(tmp_path, monkeypatch, capsys):
    """The paper's CIFAR10-DVS runs on a machine without their data (and, here, without CUDA or
    Slurm): one error naming every problem, nothing run, no presentation."""
    monkeypatch.setenv("AOI_DATA", str(tmp_path / "data"))
    args = ["--profile", "paper", "--only", "cifar10dvs", *roots(tmp_path / "runs", tmp_path / "results")]
    assert reproduce.main(args) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == "error: nothing was run:"
    assert lines[1].startswith(f"  cifar10dvs: files not found; expected {tmp_path / 'data'}/CIFAR10DVS/<class>/")
    assert lines[1].endswith("(set AOI_DATA to the data root)")
    if not torch.cuda.is_available():
        assert lines[2] == (
            "  15 run(s) ask for device cuda (cifar10dvs/T10-tet-s0, ...) and this machine has no CUDA device: run "
            "them where there are GPUs (--executor slurm on a cluster), or set device: cpu in a copy of the profile"
        )
    assert len(lines) == 2 + (not torch.cuda.is_available()) and "ipynb" not in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm client
    assert reproduce.main([*args, "--executor", "slurm"]) == 2
    assert capsys.readouterr().err.splitlines()[2:] == [
        "  --executor slurm needs Slurm's client commands (sbatch, sinfo): run on the cluster's login node"
    ]
