"""DistributedDataParallel training: 2 CPU processes (gloo, loopback) train one run together."""

from __future__ import annotations

import csv
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

import aoi.checkpoint as checkpoints
import aoi.train as training
from aoi.config import TrainConfig, build_model
from aoi.distributed import Topology, first_host, launcher_topology
from aoi.train import train

CONFIG = dict(
    dataset="digits", epochs=2, batch_size=32, limit_train=64, limit_test=30, device="cpu", method="str", alpha=0.5
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Killed(Exception):
    pass


def _worker(rank: int, world_size: int, port: int, run_dir: str, out_dir: str, kill_after_epoch: int = 0) -> None:
    """One torchrun-like process: the environment a launcher would set, then the ordinary train().

    With ``kill_after_epoch``, rank 0 dies right after writing that epoch's checkpoint.
    """
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world_size),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        GLOO_SOCKET_IFNAME="lo",
    )
    if kill_after_epoch:
        save = checkpoints.save_torch

        def save_then_die(obj, path):
            save(obj, path)
            if obj["epoch"] == kill_after_epoch:
                raise Killed

        checkpoints.save_torch = save_then_die
    final = train(TrainConfig(**CONFIG), run_dir, progress=False)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(final, f)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """A 2-process run trained without interruption: (run_dir, [final of rank 0, final of rank 1])."""
    tmp = tmp_path_factory.mktemp("ddp")
    run_dir, out_dir = tmp / "run", tmp / "ranks"
    out_dir.mkdir()
    mp.spawn(_worker, args=(2, free_port(), str(run_dir), str(out_dir)), nprocs=2, join=True)
    return run_dir, [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_processes_train_one_run(ddp_run):
    run_dir, finals = ddp_run

    # both processes end with identical weights, and they are the checkpoint's
    config = TrainConfig(**CONFIG)
    model = build_model(config)
    model.load_state_dict(torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"])
    assert finals[0]["weights_sha256"] == finals[1]["weights_sha256"] == checkpoints.weights_sha256(model)
    # metrics are reduced over both processes: the same on each (but the clock), written once
    untimed = [{k: v for k, v in final["metrics"].items() if k != "seconds"} for final in finals]
    assert untimed[0] == untimed[1]
    with open(run_dir / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert json.loads((run_dir / "final.json").read_text())["metrics"]["test_acc"] == pytest.approx(
        float(rows[-1]["test_acc"])
    )
    assert json.loads((run_dir / "config.json").read_text())["provenance"]["machine"]["world_size"] == 2
    # each of the 30 test samples is counted once (no padding to 32 as DistributedSampler would)
    assert all(float(r[k]) * 30 == pytest.approx(round(float(r[k]) * 30)) for r in rows for k in r if "test_acc" in k)


def test_global_batch_must_split_evenly_across_processes(tmp_path):
    config = TrainConfig(**{**CONFIG, "batch_size": 33})
    with pytest.raises(ValueError, match="batch_size 33 is not divisible by the 2 processes"):
        training._Session.start(config, tmp_path, Topology(rank=0, world_size=2), torch.device("cpu"))


def test_every_process_resumes_from_the_checkpoint(ddp_run, tmp_path):
    straight_dir, straight = ddp_run
    run_dir, out_dir = tmp_path / "run", tmp_path / "ranks"
    out_dir.mkdir()
    with pytest.raises(mp.ProcessRaisedException, match="Killed"):
        mp.spawn(_worker, args=(2, free_port(), str(run_dir), str(out_dir), 1), nprocs=2, join=True)
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 1
    mp.spawn(_worker, args=(2, free_port(), str(run_dir), str(out_dir)), nprocs=2, join=True)
    resumed = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(2)]
    assert resumed[0]["weights_sha256"] == resumed[1]["weights_sha256"] == straight[0]["weights_sha256"]
    with open(run_dir / "log.csv", newline="") as a, open(straight_dir / "log.csv", newline="") as b:
        drop_clock = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
        assert drop_clock(csv.DictReader(a)) == drop_clock(csv.DictReader(b))


def test_the_first_host_of_a_slurm_node_list():
    assert first_host("vm") == "vm"
    assert first_host("gpu[012-015,020],cpu01") == "gpu012"
    assert first_host("node7,node3") == "node7"
    assert first_host("rack-a[3-4]") == "rack-a3"


def test_the_process_group_comes_from_torchrun_else_from_a_slurm_step_of_several_tasks():
    torchrun = {"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0", "SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5"}
    assert launcher_topology(torchrun) == (Topology(2, 4, 0), "env://")  # torchrun inside a Slurm job wins
    step = {"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "123456"}
    step |= {"SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_JOB_NODELIST": "gpu[07-09]"}
    assert launcher_topology(step) == (Topology(5, 8, 1), "tcp://gpu07:33456")  # 10000 + 123456 mod 50000
    assert launcher_topology({**step, "MASTER_PORT": "29500"})[1] == "tcp://gpu07:29500"
    batch_script = {"SLURM_NTASKS": "8", "SLURM_PROCID": "0", "SLURM_JOB_ID": "1"}  # sbatch's shell: not a step
    assert launcher_topology(batch_script) == (Topology(), "env://")
    assert not launcher_topology({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"})[0].distributed
