"""Multi-process training helpers (DistributedDataParallel under torchrun or Slurm), and the device choice.

A run is distributed when its launcher says there are several processes (`launcher_topology`):
``WORLD_SIZE`` > 1 (set by ``torchrun`` or any launcher that also sets ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``), else a Slurm job step of several tasks (``srun``; what
``./reproduce.sh --executor slurm`` starts for a run with several GPUs or tasks): rank
``SLURM_PROCID`` of ``SLURM_STEP_NUM_TASKS``, ``SLURM_LOCALID`` on its node, the master on the
first host of the step's node list at port 10000 + the job id mod 50000 (``MASTER_PORT`` when set).

    torchrun --nproc_per_node 4 -m aoi train --dataset cifar10 ...           # one machine
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 -m aoi train ...
    srun --ntasks-per-node 4 --gpus-per-node 4 python -m aoi train --dataset cifar10 ...

Backend: nccl on CUDA, gloo on CPU. One process per GPU (``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from aoi.errors import UserError


@dataclass(frozen=True)
class Topology:
    """Where this process sits: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The one process (rank 0) that writes files and shows progress."""
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` -> ``cuda:local_rank``.

    A device string torch does not know, or a CUDA device this machine lacks, is a `UserError`.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device("cuda", local_rank) if device == "cuda" else torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserError(f"device {device!r} is not a torch device: use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available: use --device cpu")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UserError(f"device {device!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return resolved


def first_host(node_list: str) -> str:
    """The first host of a Slurm node list: "gpu[012-015,020],cpu01" -> "gpu012", "vm" -> "vm"."""
    prefix, first = re.match(r"([^,\[]+)(?:\[([^\],-]+))?", node_list).groups()
    return prefix + (first or "")


def launcher_topology(environ=os.environ) -> tuple[Topology, str]:
    """This process's place among the run's processes, from its launcher's environment ``environ``,
    and the process group's init method: "env://" under torchrun (or a single process), a
    ``tcp://host:port`` of the first task's host in a Slurm step of several tasks."""
    if "WORLD_SIZE" in environ or int(environ.get("SLURM_STEP_NUM_TASKS", "1")) <= 1:
        world_size = int(environ.get("WORLD_SIZE", "1"))
        return Topology(int(environ.get("RANK", "0")), world_size, int(environ.get("LOCAL_RANK", "0"))), "env://"
    topology = Topology(
        int(environ["SLURM_PROCID"]), int(environ["SLURM_STEP_NUM_TASKS"]), int(environ.get("SLURM_LOCALID", "0"))
    )
    host = first_host(environ.get("SLURM_STEP_NODELIST") or environ["SLURM_JOB_NODELIST"])
    port = int(environ.get("MASTER_PORT") or 10000 + int(environ["SLURM_JOB_ID"]) % 50000)
    return topology, f"tcp://{host}:{port}"


@contextlib.contextmanager
def process_group(device: str) -> Iterator[tuple[Topology, torch.device]]:
    """Join the process group the launcher describes (`launcher_topology`) for the block, when
    there are several processes.

    Yields this process's `Topology` and its torch device. A group that already exists (set up
    by the caller) is used and left open; one created here is destroyed on exit.
    """
    topology, init_method = launcher_topology()
    if not topology.distributed:
        yield Topology(), resolve_device(device)
        return
    torch_device = resolve_device(device, topology.local_rank)
    created = not dist.is_initialized()
    if created:
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        backend = "nccl" if torch_device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method, rank=topology.rank, world_size=topology.world_size)
    try:
        yield topology, torch_device
    finally:
        if created:
            dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, topology: Topology) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place; a no-op in a single process)."""
    if topology.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj, topology: Topology) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process)."""
    if not topology.distributed:
        return [obj]
    gathered = [None] * topology.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_buffers(module: torch.nn.Module, topology: Topology) -> None:
    """Copy rank 0's buffers (BN running statistics) to every process.

    DDP broadcasts them before each forward, so after the last training forward of an epoch
    each process holds its own; this makes evaluation and the checkpoint the same everywhere.
    """
    if topology.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def barrier(topology: Topology) -> None:
    """Wait for every process (a no-op in a single process)."""
    if topology.distributed:
        dist.barrier()
