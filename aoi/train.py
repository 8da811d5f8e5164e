"""Training with TET (+ STR), the paper's recipe, resumable and reproducible.

Recipe (METHOD.md): SGD (lr 0.1, momentum 0.9, weight decay 5e-4), cosine annealing of the
learning rate to 0 over ``epochs``, loss

    L = tet_loss(O, y, lamb, means)                                            method "tet"
    L = tet_loss(O, y, lamb, means) + alpha * str_loss(O, y, STF(model, beta), window)   "str"

on per-step logits O [T, N, K]. Batches come from the DataLoader as [N, T, C, H, W] and are
transposed to [T, N, C, H, W]. Training accuracy uses argmax of mean_t O_t; test accuracy at
step t uses argmax of the accumulated output (`aoi.metrics.accuracy_per_step`).

The final model is the one after the LAST epoch: nothing is ever selected on the test set
(the authors' toolkit keeps the best-test-accuracy checkpoint, which flatters its numbers).

Files in ``run_dir`` (all written atomically, by rank 0 only):
- ``config.json``: {"config": TrainConfig fields, "provenance": git commit, package versions,
  dataset provenance, machine, start time}.
- ``checkpoint.pt`` (every epoch): model, optimizer, scheduler, completed epochs, the log so
  far and every RNG state (torch, CUDA, numpy, python ``random``, the DataLoader generator;
  one set per process). Loads with ``torch.load(..., weights_only=True)``. A run killed at any
  point resumes from it and, on CPU, ends with exactly the weights and log of an uninterrupted
  run (DataLoader workers are not persistent, so their seeds come from the saved generator).
- ``log.csv`` (rewritten every epoch): epoch, lr, loss, tet_loss, str_loss, train_acc,
  test_acc, test_acc_t1..test_acc_tT, seconds. Losses are sample means over the epoch, accuracies
  fractions, ``lr`` the rate used during the epoch; ``str_loss`` is NaN for method "tet" (not computed).
- ``final.json``: {"config", "metrics" (the last log row), "wall_seconds" (sum of the epochs'
  seconds), "weights_sha256" (of the final state_dict), "finished_at"}.

Multi-GPU / multi-node: launch with ``torchrun`` (see `aoi.distributed`); the global
``batch_size`` is split evenly across processes, the model is wrapped in
DistributedDataParallel with plain BatchNorm (per-process batch statistics, as in TET; no
SyncBatchNorm), metrics are summed over processes, and STR reads the LIFs of ``model.module``.
Bitwise reproducibility is guaranteed on CPU; CUDA kernels (cudnn.benchmark is on) may differ
in the last bits between runs.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import io
import json
import math
import os
import pickle
import platform
import random
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm  # text bars: the same in a terminal, JupyterLab and papermill records

from aoi.atomic import save_torch, write_json, write_text
from aoi.data import dataset_info, get_dataset
from aoi.distributed import Topology, all_gather_objects, all_reduce_sum, barrier, broadcast_buffers, process_group
from aoi.losses import tet_loss
from aoi.metrics import accuracy_per_step
from aoi.models import DEFAULT_MODEL, MODELS, get_model
from aoi.neurons import reset_state, set_recording
from aoi.regularisers import collect_factors, str_loss

CHECKPOINT_FORMAT = "aoi-checkpoint-v1"
METHODS = ("tet", "str")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class RunMismatch(RuntimeError):
    """``run_dir`` holds a run with a different configuration."""


class CheckpointError(RuntimeError):
    """A checkpoint that is corrupt or was not written by aoi."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (plain values; JSON round-trips via `asdict`/`from_dict`).

    ``model`` and ``T`` default (None) to the dataset's: `aoi.models.DEFAULT_MODEL` and
    ``dataset_info(dataset).default_T``; they are filled in on construction. ``alpha`` is the
    STR weight: 0 for method "tet", > 0 for method "str". ``beta``: STR reference window
    (fraction of the final steps); ``window``: fraction of the final steps that must be
    predicted right for a sample to count in STR; ``lamb``, ``means``: TET's MSE weight and
    target. ``limit_train``/``limit_test``: use only that many samples (None: all).
    ``device``: "auto" (CUDA if available), "cpu", "cuda" or e.g. "cuda:1".
    """

    dataset: str
    model: str | None = None
    T: int | None = None
    method: str = "tet"
    alpha: float = 0.0
    beta: float = 0.3
    window: float = 0.3
    lamb: float = 1e-3
    means: float = 1.0
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    num_workers: int = 0
    device: str = "auto"

    def __post_init__(self):
        info = dataset_info(self.dataset)
        if self.model is None:
            if self.dataset not in DEFAULT_MODEL:
                raise ValueError(f"no default model for dataset {self.dataset!r}: pass model=...")
            object.__setattr__(self, "model", DEFAULT_MODEL[self.dataset])
        if self.T is None:
            object.__setattr__(self, "T", int(info.default_T))
        problems = []
        if self.model not in MODELS:
            problems.append(f"unknown model {self.model!r} (known: {', '.join(sorted(MODELS))})")
        if self.method not in METHODS:
            problems.append(f"method must be one of {METHODS}, got {self.method!r}")
        elif self.method == "str" and not self.alpha > 0:
            problems.append(f"method 'str' needs alpha > 0, got {self.alpha}")
        elif self.method == "tet" and self.alpha != 0:
            problems.append(f"alpha is the STR weight: use method 'str' for alpha={self.alpha}")
        for name in ("T", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("beta", "window"):
            if not 0 < getattr(self, name) <= 1:
                problems.append(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not 0 <= self.lamb <= 1:
            problems.append(f"lamb must be in [0, 1], got {self.lamb}")
        if not self.lr > 0 or self.momentum < 0 or self.weight_decay < 0:
            problems.append("lr must be > 0, momentum and weight_decay >= 0")
        for name in ("limit_train", "limit_test"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name} must be None or >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0, got {self.num_workers}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def run_name(self) -> str:
        """``"<dataset>/T<T>-<method>[-a<alpha>]-s<seed>"``, e.g. ``"ndigits/T10-str-a0.5-s0"``."""
        alpha = f"-a{self.alpha:g}" if self.method == "str" else ""
        return f"{self.dataset}/T{self.T}-{self.method}{alpha}-s{self.seed}"

    def asdict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


def build_model(config: TrainConfig) -> nn.Module:
    """The (freshly initialised) model of ``config``, for its dataset's classes and input shape."""
    info = dataset_info(config.dataset)
    return get_model(config.model, info.num_classes, info.input_shape, config.T)


def time_major_batches(
    loader: DataLoader, device: torch.device, progress: bool = False, desc: str = ""
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(inputs [T, N, C, H, W], targets [N])`` on ``device`` from a loader of [N, T, ...] batches."""
    for inputs, targets in tqdm(loader, desc=desc, leave=False, disable=not progress):
        yield (inputs.to(device, non_blocking=True).transpose(0, 1), targets.to(device, non_blocking=True))


# ----------------------------------------------------------------------------- checkpoints


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load and validate an aoi checkpoint (``weights_only=True``); clear error if it is not one."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not an aoi checkpoint ({reason}): delete it to restart the run") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not an aoi checkpoint (no {CHECKPOINT_FORMAT!r} marker): delete it to restart the run"
        )
    return checkpoint


def _rng_state(loader_generator: torch.Generator) -> dict:
    """Every RNG state of this process as tensors and plain values (weights_only-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64), "gauss": py_state[2]},
        "loader": loader_generator.get_state(),
    }


def _set_rng_state(state: dict, loader_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["state"].tolist()), py_state["gauss"]))
    loader_generator.set_state(state["loader"])


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of a state_dict (names, dtypes, shapes and values, in order): equal iff identical weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- provenance


def git_commit() -> tuple[str, bool | None]:
    """(commit, dirty) of the repository holding this package, or ("unknown", None)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def package_version(package: str) -> str:
    """The installed version of ``package``, or "not installed"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def provenance(train_set: Dataset, test_set: Dataset, device: torch.device, topology: Topology) -> dict:
    """Where and with what a run was made: git commit, versions, data, machine, start time."""
    commit, dirty = git_commit()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": {name: package_version(name) for name in ("aoi", "torch", "snntorch", "tonic", "numpy")},
        "data": {"train": getattr(train_set, "provenance", None), "test": getattr(test_set, "provenance", None)},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),  # bitwise reproducibility on CPU needs the same count
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "device": str(device),
            "world_size": topology.world_size,
        },
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- run directory


def _check_same_config(path: Path, config: TrainConfig, stored: dict) -> None:
    if stored != config.asdict():
        diff = {k: (stored.get(k), v) for k, v in config.asdict().items() if stored.get(k) != v}
        raise RunMismatch(
            f"{path} belongs to a run with a different config (stored, requested): {diff}; "
            "use another run directory or delete this one"
        )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunMismatch(f"{path} is unreadable ({exc}): delete the run directory to restart") from exc


def _log_columns(T: int) -> list[str]:
    return (
        ["epoch", "lr", "loss", "tet_loss", "str_loss", "train_acc", "test_acc"]
        + [f"test_acc_t{t}" for t in range(1, T + 1)]
        + ["seconds"]
    )


def _write_log(path: Path, log: list[dict], T: int) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_log_columns(T), lineterminator="\n")
    writer.writeheader()
    writer.writerows(log)
    write_text(path, buffer.getvalue())


def _json_safe(row: dict) -> dict:
    """NaN/inf floats -> None (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


# ----------------------------------------------------------------------------- epochs


def _train_epoch(
    model: nn.Module,
    core: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    epoch: int,
    device: torch.device,
    topology: Topology,
    progress: bool,
) -> dict:
    """One pass over the training data; returns sample-mean losses and training accuracy."""
    model.train()
    use_str = config.method == "str"
    set_recording(core, use_str)
    totals = torch.zeros(5, dtype=torch.float64, device=device)  # sums of loss, tet, str, correct; count
    for batch, (inputs, targets) in enumerate(
        time_major_batches(loader, device, progress, desc=f"epoch {epoch}"), start=1
    ):
        outputs = model(inputs)
        tet = tet_loss(outputs, targets, config.lamb, config.means)
        if use_str:
            regulariser = str_loss(outputs, targets, collect_factors(core, config.beta), config.window)
            loss = tet + config.alpha * regulariser
        else:
            regulariser = torch.full_like(tet, float("nan"))
            loss = tet
        finite = torch.isfinite(loss.detach()).to(torch.float64).reshape(1)
        if all_reduce_sum(finite, topology).item() < topology.world_size:
            raise TrainingDiverged(
                f"training diverged: the loss is {loss.item()} (NaN or infinite) at epoch "
                f"{epoch}, batch {batch}; lower the learning rate or check the data"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reset_state(core)  # drop the recorded LIF tensors (and their graph) now
        n = targets.shape[0]
        totals[:3] += torch.stack([loss.detach(), tet.detach(), regulariser.detach()]).to(torch.float64) * n
        totals[3] += (outputs.detach().mean(0).argmax(-1) == targets).sum()
        totals[4] += n
    set_recording(core, False)
    loss_sum, tet_sum, str_sum, correct, count = all_reduce_sum(totals, topology).tolist()
    return {
        "loss": loss_sum / count,
        "tet_loss": tet_sum / count,
        "str_loss": str_sum / count,
        "train_acc": correct / count,
    }


@torch.no_grad()
def _test_accuracy_per_step(
    model: nn.Module, loader: DataLoader, T: int, device: torch.device, topology: Topology, progress: bool
) -> list[float]:
    """Accuracy of argmax of the accumulated output at every step t = 1..T on this process's test
    shard, summed over processes."""
    model.eval()
    totals = torch.zeros(T + 1, dtype=torch.float64, device=device)  # correct at t = 1..T, count
    for inputs, targets in time_major_batches(loader, device, progress, desc="test"):
        n = targets.shape[0]
        totals[:T] += accuracy_per_step(model(inputs), targets).to(torch.float64) * n
        totals[T] += n
    totals = all_reduce_sum(totals, topology)
    return (totals[:T] / totals[T]).tolist()


# ----------------------------------------------------------------------------- train


def _loaders(
    config: TrainConfig,
    train_set: Dataset,
    test_set: Dataset,
    generator: torch.Generator,
    topology: Topology,
    device: torch.device,
):
    """(train loader, its DistributedSampler or None, test loader of this process's shard).

    Shuffling draws from ``generator`` (single process) or from the seed and the epoch
    (DistributedSampler); each process gets ``batch_size / world_size`` samples per step and
    every ``world_size``-th test sample.
    """
    per_process_batch = config.batch_size // topology.world_size
    options = dict(num_workers=config.num_workers, pin_memory=device.type == "cuda")
    if topology.distributed:
        sampler = DistributedSampler(train_set, topology.world_size, topology.rank, shuffle=True, seed=config.seed)
        test_set = Subset(test_set, range(topology.rank, len(test_set), topology.world_size))
    else:
        sampler = None
    train_loader = DataLoader(
        train_set, per_process_batch, shuffle=sampler is None, sampler=sampler, generator=generator, **options
    )
    return train_loader, sampler, DataLoader(test_set, per_process_batch, shuffle=False, **options)


def train(config: TrainConfig, run_dir: str | os.PathLike, progress: bool = True) -> dict:
    """Train ``config`` into ``run_dir`` (resuming from its checkpoint) and return final.json's content.

    A finished run (final.json with the same config) is returned at once; a run directory of a
    different config raises `RunMismatch`; a NaN/inf loss raises `TrainingDiverged`.
    Under ``torchrun`` (WORLD_SIZE > 1) every process calls this with the same arguments.
    """
    run_dir = Path(run_dir)
    final_path, config_path = run_dir / "final.json", run_dir / "config.json"
    if final_path.exists():
        final = _read_json(final_path)
        _check_same_config(final_path, config, final.get("config"))
        return final
    if config_path.exists():
        _check_same_config(config_path, config, _read_json(config_path).get("config"))
    with process_group(config.device) as (topology, device):
        return _train(config, run_dir, progress and topology.is_main, topology, device)


def _train(config: TrainConfig, run_dir: Path, progress: bool, topology: Topology, device: torch.device) -> dict:
    if config.batch_size % topology.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} is not divisible by the {topology.world_size} processes: choose a multiple"
        )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(config.seed)
    model = build_model(config).to(device)
    train_set = get_dataset(config.dataset, "train", T=config.T, limit=config.limit_train, seed=config.seed)
    test_set = get_dataset(config.dataset, "test", T=config.T, augment=False, limit=config.limit_test, seed=config.seed)

    loader_generator = torch.Generator().manual_seed(config.seed)
    train_loader, train_sampler, test_loader = _loaders(config, train_set, test_set, loader_generator, topology, device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=0.0)

    checkpoint_path, log_path = run_dir / "checkpoint.pt", run_dir / "log.csv"
    log: list[dict] = []
    start_epoch = 0
    if checkpoint_path.exists():
        checkpoint = load_checkpoint(checkpoint_path)
        _check_same_config(checkpoint_path, config, checkpoint["config"])
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        log, start_epoch = list(checkpoint["log"]), int(checkpoint["epoch"])
        rng = checkpoint["rng"]  # one per process; a different process count reuses them cyclically
        _set_rng_state(rng[topology.rank % len(rng)], loader_generator)
        if topology.is_main:
            _write_log(log_path, log, config.T)  # drop rows of epochs whose checkpoint was never written
    if topology.is_main and not (run_dir / "config.json").exists():
        write_json(
            run_dir / "config.json",
            {"config": config.asdict(), "provenance": provenance(train_set, test_set, device, topology)},
        )
    barrier(topology)

    core = model
    if topology.distributed:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    epochs = tqdm(
        range(start_epoch + 1, config.epochs + 1),
        desc=config.run_name(),
        initial=start_epoch,
        total=config.epochs,
        disable=not progress,
    )
    for epoch in epochs:
        started = time.perf_counter()
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        row = {
            "epoch": epoch,
            "lr": lr,
            **_train_epoch(model, core, train_loader, optimizer, config, epoch, device, topology, progress),
        }
        scheduler.step()
        broadcast_buffers(core, topology)
        per_step = _test_accuracy_per_step(core, test_loader, config.T, device, topology, progress)
        row["test_acc"] = per_step[-1]
        row.update({f"test_acc_t{t}": acc for t, acc in enumerate(per_step, start=1)})
        row["seconds"] = time.perf_counter() - started
        log.append(row)
        rng_states = all_gather_objects(_rng_state(loader_generator), topology)
        if topology.is_main:
            save_torch(
                {
                    "format": CHECKPOINT_FORMAT,
                    "config": config.asdict(),
                    "epoch": epoch,
                    "model": core.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "log": log,
                    "rng": rng_states,
                },
                checkpoint_path,
            )
            _write_log(log_path, log, config.T)
        epochs.set_postfix(loss=f"{row['loss']:.3f}", test_acc=f"{row['test_acc']:.3f}")

    final = {
        "config": config.asdict(),
        "metrics": _json_safe(log[-1]),
        "wall_seconds": sum(row["seconds"] for row in log),
        "weights_sha256": weights_sha256(core),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if topology.is_main:
        write_json(run_dir / "final.json", final)
    barrier(topology)
    return final
