"""Training with TET (+ STR), the paper's recipe, resumable and reproducible.

Recipe (docs/method.md): SGD (lr 0.1, momentum 0.9, weight decay 5e-4), cosine annealing of the
learning rate to 0 over ``epochs``, loss

    L = tet_loss(O, y, lamb, means)                                            method "tet"
    L = tet_loss(O, y, lamb, means) + alpha * str_loss(O, y, STF(model, beta), window)   "str"

on per-step logits O [T, N, K]. Batches come from the DataLoader as [N, T, C, H, W] and are
transposed to [T, N, C, H, W]. Training accuracy uses argmax of mean_t O_t; test accuracy at
step t uses argmax of the accumulated output (`aoi.metrics.accuracy_per_step`).

The final model is the one after the LAST epoch: nothing is ever selected on the test set
(the authors' toolkit keeps the best-test-accuracy checkpoint, which flatters its numbers).
With ``validation`` > 0 a stratified part of the training data is held out for selecting
between runs (`aoi.data.get_dataset`); training never sees it. With ``folds`` = k the data are
the dataset's train and test splits pooled, ``fold`` the part tested (k-fold cross-validation).

Files in ``run_dir`` (all written atomically, by rank 0 only):
- ``config.json``: {"config": TrainConfig fields, "provenance": `aoi.provenance` record plus
  the datasets' provenance (split hashes)}.
- ``checkpoint.pt`` (every epoch, `aoi.checkpoint`, with its checksum): a run killed at any point
  resumes from it, once verified, and, on CPU, ends with exactly the weights and log of an
  uninterrupted run (DataLoader workers are not persistent, so their seeds come from the saved generator).
- ``log.csv`` (rewritten every epoch): epoch, lr, loss, tet_loss, str_loss, train_acc,
  test_acc, test_acc_t1..test_acc_tT, seconds. Losses are sample means over the epoch, accuracies
  fractions, ``lr`` the rate used during the epoch; ``str_loss`` is NaN for method "tet" (not computed).
- ``final.json``: {"config", "metrics" (the last log row), "wall_seconds" (sum of the epochs'
  seconds), "weights_sha256" (of the final state_dict), "finished_at"}. The final weights are
  those of ``checkpoint.pt``, verified against ``weights_sha256`` before any use
  (`aoi.run_files`): a finished run whose checkpoint is lost or damaged is trained again after
  deleting both files.

Nothing non-finite passes silently: a NaN or infinite loss or input batch stops training at
that batch, a NaN or infinite parameter or buffer (BatchNorm statistics) at the end of the
epoch, before its checkpoint (`TrainingDiverged`); the checkpoint on disk stays the last finite one.

Multi-GPU / multi-node: launch with ``torchrun`` (see `aoi.distributed`); the global
``batch_size`` is split evenly across processes, the model is wrapped in
DistributedDataParallel with plain BatchNorm (per-process batch statistics, as in TET; no
SyncBatchNorm), metrics are summed over processes, and STR reads the LIFs of ``model.module``.
Bitwise reproducibility is guaranteed on CPU; CUDA kernels (cudnn.benchmark is on) may differ
in the last bits between runs.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm  # text bars in a terminal, widget bars in JupyterLab (ipywidgets)

from aoi.checkpoint import (
    RESTART,
    CheckpointError,
    load_checkpoint,
    nonfinite,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    weights_sha256,
)
from aoi.config import ConfigError, TrainConfig, build_model
from aoi.data import get_dataset
from aoi.data.batches import time_major_batches
from aoi.distributed import Topology, all_gather_objects, all_reduce_sum, barrier, broadcast_buffers, process_group
from aoi.errors import UserError
from aoi.files import json_safe, read_json, write_json
from aoi.losses import tet_loss
from aoi.metrics import accuracy_per_step
from aoi.neurons import reset_state, set_recording
from aoi.provenance import provenance
from aoi.regularisers import collect_factors, str_loss
from aoi.run_files import check_same_config, check_writable, load_final_checkpoint, write_log


class TrainingDiverged(UserError, RuntimeError):
    """The loss, the weights or an input batch became NaN or infinite."""


def train(config: TrainConfig, run_dir: str | os.PathLike, progress: bool = True) -> dict:
    """Train ``config`` into ``run_dir`` (resuming from its checkpoint) and return final.json's content.

    A finished run (final.json with the same config) is returned without training once its
    checkpoint is verified (`aoi.run_files.load_final_checkpoint`: a `CheckpointError` when it is
    gone, corrupt or not the final weights); a checkpoint that fails its checksum is a
    `CheckpointError` too; a run directory of a different config raises `aoi.run_files.RunMismatch`;
    a NaN or infinite loss, weight or input `TrainingDiverged`; a run directory that cannot be
    written to `aoi.files.UnwritableFile`.
    Under ``torchrun`` (WORLD_SIZE > 1) every process calls this with the same arguments.
    """
    run_dir = Path(run_dir)
    final = read_json(run_dir / "final.json")
    if final is not None:
        check_same_config(run_dir / "final.json", config, final.get("config"))
        load_final_checkpoint(run_dir)
        return final
    check_writable(run_dir)
    stored = read_json(run_dir / "config.json")
    if stored is not None:
        check_same_config(run_dir / "config.json", config, stored.get("config"))
    with process_group(config.device) as (topology, device):
        session = _Session.start(config, run_dir, topology, device)
        return session.run(progress and topology.is_main)


@dataclass
class _Session:
    """One process's training state: model (``core``; ``model`` is its DDP wrapper when
    distributed), data, optimiser and schedule, the log so far, and where files go."""

    config: TrainConfig
    run_dir: Path
    topology: Topology
    device: torch.device
    core: nn.Module
    model: nn.Module
    train_loader: DataLoader
    train_sampler: DistributedSampler | None
    test_loader: DataLoader
    loader_generator: torch.Generator
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    log: list[dict]

    @classmethod
    def start(cls, config: TrainConfig, run_dir: Path, topology: Topology, device: torch.device) -> _Session:
        """Build everything from ``config`` (seeded), then resume from the checkpoint if there is one."""
        if config.batch_size % topology.world_size:
            raise ConfigError(
                f"batch_size {config.batch_size} is not divisible by the {topology.world_size} processes: "
                "choose a multiple"
            )
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        seed_everything(config.seed)
        core = build_model(config).to(device)
        folds = {"folds": config.folds, "fold": config.fold}
        data = {"limit": config.limit_train, "seed": config.seed, "validation": config.validation, **folds}
        train_set = get_dataset(config.dataset, "train", T=config.T, **data)
        test_set = get_dataset(
            config.dataset, "test", T=config.T, augment=False, limit=config.limit_test, seed=config.seed, **folds
        )
        for split, dataset in (("train", train_set), ("test", test_set)):
            if len(dataset) == 0:
                raise UserError(
                    f"the {split} split of {config.dataset!r} is empty (validation={config.validation}): "
                    "lower --validation or check the dataset's files"
                )
        generator = torch.Generator().manual_seed(config.seed)
        train_loader, sampler, test_loader = _loaders(config, train_set, test_set, generator, topology, device)
        optimizer = torch.optim.SGD(
            core.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=0.0)
        session = cls(
            config,
            run_dir,
            topology,
            device,
            core,
            core,
            train_loader,
            sampler,
            test_loader,
            generator,
            optimizer,
            scheduler,
            [],
        )
        session._resume()
        if topology.is_main and not (run_dir / "config.json").exists():
            data_provenance = {"train": train_set.provenance, "test": test_set.provenance}
            record = provenance(device, topology.world_size, data=data_provenance)
            write_json(run_dir / "config.json", {"config": config.asdict(), "provenance": record})
        barrier(topology)
        if topology.distributed:
            session.model = DistributedDataParallel(core, device_ids=[device.index] if device.type == "cuda" else None)
        return session

    def _resume(self) -> None:
        path = self.run_dir / "checkpoint.pt"
        if not path.exists():
            return
        checkpoint = load_checkpoint(path)
        check_same_config(path, self.config, checkpoint["config"])
        self.core.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.log = list(checkpoint["log"])
        states = checkpoint["rng"]  # one per process; a different process count reuses them cyclically
        set_rng_state(states[self.topology.rank % len(states)], self.loader_generator)
        if self.topology.is_main:
            write_log(self.run_dir / "log.csv", self.log, self.config.T)  # drop epochs never checkpointed
        bad = nonfinite(self.core.state_dict())
        if bad:
            raise CheckpointError(f"{path} holds NaN or infinite values ({', '.join(bad)}): {RESTART}")

    def run(self, progress: bool) -> dict:
        """Train the remaining epochs (checkpoint after each), then write and return final.json's content."""
        config, done = self.config, len(self.log)
        epochs = tqdm(
            range(done + 1, config.epochs + 1),
            desc=config.run_name(),
            initial=done,
            total=config.epochs,
            disable=not progress,
        )
        for epoch in epochs:
            row = self._epoch(epoch, progress)
            epochs.set_postfix(loss=f"{row['loss']:.3f}", test_acc=f"{row['test_acc']:.3f}")
        final = json_safe(
            {
                "config": config.asdict(),
                "metrics": self.log[-1],
                "wall_seconds": sum(row["seconds"] for row in self.log),
                "weights_sha256": weights_sha256(self.core),
                "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
        )
        if self.topology.is_main:
            write_json(self.run_dir / "final.json", final)
        barrier(self.topology)
        return final

    def _epoch(self, epoch: int, progress: bool) -> dict:
        """One epoch: train, step the schedule, test at every step, log and checkpoint."""
        started = time.perf_counter()
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)
        row = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"], **self._train_epoch(epoch, progress)}
        self.scheduler.step()
        broadcast_buffers(self.core, self.topology)
        bad = nonfinite(self.core.state_dict())
        if bad:
            raise self._diverged(f"{', '.join(bad)} of the model became NaN or infinite", epoch)
        per_step, finite = _test_accuracy_per_step(
            self.core, self.test_loader, self.config.T, self.device, self.topology, progress
        )
        if not finite:
            raise self._bad_data("test", epoch)
        row["test_acc"] = per_step[-1]
        row.update({f"test_acc_t{t}": acc for t, acc in enumerate(per_step, start=1)})
        row["seconds"] = time.perf_counter() - started
        self.log.append(row)
        states = all_gather_objects(rng_state(self.loader_generator), self.topology)
        if self.topology.is_main:
            save_checkpoint(
                self.run_dir / "checkpoint.pt",
                config=self.config.asdict(),
                epoch=epoch,
                model=self.core.state_dict(),
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                log=self.log,
                rng=states,
            )
            write_log(self.run_dir / "log.csv", self.log, self.config.T)
        return row

    def _train_epoch(self, epoch: int, progress: bool) -> dict:
        """One pass over the training data; returns sample-mean losses and training accuracy."""
        config, core, topology = self.config, self.core, self.topology
        self.model.train()
        set_recording(core, config.method == "str")
        totals = torch.zeros(5, dtype=torch.float64, device=self.device)  # sums of loss, tet, str, correct; count
        batches = time_major_batches(self.train_loader, self.device, progress, desc=f"epoch {epoch}")
        for batch, (inputs, targets) in enumerate(batches, start=1):
            outputs = self.model(inputs)
            loss, tet, regulariser = _loss(config, core, outputs, targets)
            finite = torch.stack([torch.isfinite(inputs).all(), torch.isfinite(loss.detach()).all()])
            finite_inputs, finite_loss = all_reduce_sum(finite.to(torch.float64), topology).tolist()
            if finite_inputs < topology.world_size:
                raise self._bad_data("train", epoch, f", batch {batch}")
            if finite_loss < topology.world_size:
                raise self._diverged(f"the loss is {loss.item()} (NaN or infinite) at batch {batch}", epoch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
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

    def _diverged(self, what: str, epoch: int) -> TrainingDiverged:
        return TrainingDiverged(
            f"training diverged in epoch {epoch}: {what}; {self._kept(epoch)}; "
            "lower the learning rate (in a new run directory) or check the data"
        )

    def _bad_data(self, split: str, epoch: int, where: str = "") -> TrainingDiverged:
        return TrainingDiverged(
            f"the {split} data of {self.config.dataset!r} hold NaN or infinite values (epoch {epoch}{where}); "
            f"{self._kept(epoch)}; check the dataset's files"
        )

    def _kept(self, epoch: int) -> str:
        """Which checkpoint survives a stop during ``epoch``."""
        path = self.run_dir / "checkpoint.pt"
        return f"{path} keeps epoch {epoch - 1}" if epoch > 1 else "no checkpoint was written"


def _loss(config: TrainConfig, core: nn.Module, outputs: torch.Tensor, targets: torch.Tensor):
    """(loss, TET part, STR part or NaN for method "tet") of one batch of per-step logits [T, N, K]."""
    tet = tet_loss(outputs, targets, config.lamb, config.means)
    if config.method != "str":
        return tet, tet, torch.full_like(tet, float("nan"))
    regulariser = str_loss(outputs, targets, collect_factors(core, config.beta), config.window)
    return tet + config.alpha * regulariser, tet, regulariser


@torch.no_grad()
def _test_accuracy_per_step(
    model: nn.Module, loader: DataLoader, T: int, device: torch.device, topology: Topology, progress: bool
) -> tuple[list[float], bool]:
    """(accuracy of argmax of the accumulated output at every step t = 1..T, whether every input
    was finite) on this process's test shard, summed over processes."""
    model.eval()
    totals = torch.zeros(T + 2, dtype=torch.float64, device=device)  # correct at t = 1..T, count, non-finite
    for inputs, targets in time_major_batches(loader, device, progress, desc="test"):
        n = targets.shape[0]
        totals[:T] += accuracy_per_step(model(inputs), targets).to(torch.float64) * n
        totals[T] += n
        totals[T + 1] += ~torch.isfinite(inputs).all()
    totals = all_reduce_sum(totals, topology)
    return (totals[:T] / totals[T]).tolist(), totals[T + 1].item() == 0


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
    options = {"num_workers": config.num_workers, "pin_memory": device.type == "cuda"}
    if topology.distributed:
        sampler = DistributedSampler(train_set, topology.world_size, topology.rank, shuffle=True, seed=config.seed)
        test_set = Subset(test_set, range(topology.rank, len(test_set), topology.world_size))
    else:
        sampler = None
    train_loader = DataLoader(
        train_set, per_process_batch, shuffle=sampler is None, sampler=sampler, generator=generator, **options
    )
    return train_loader, sampler, DataLoader(test_set, per_process_batch, shuffle=False, **options)
