"""Per-step logits of a trained run, saved so every cutoff analysis can be redone without the model.

``run_dir/logits_<split>.npz`` (compressed): ``outputs`` float32 [T, N, K] (per-step logits O_t
of the final model, eval mode) and ``targets`` int64 [N]. Splits: ``test`` (with the run's
``limit_test``), ``train`` (without augmentation, with the run's ``limit_train`` subset: Top-K
threshold calibration) and, when the run holds data out (``validation`` > 0), ``val`` (model
selection). Recomputed only when missing or older than the checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from aoi.checkpoint import load_checkpoint
from aoi.config import TrainConfig, build_model
from aoi.data import get_dataset
from aoi.data.batches import time_major_batches
from aoi.distributed import resolve_device
from aoi.files import atomic_path

SPLITS = ("test", "train", "val")


def _finished_checkpoint(run_dir: Path) -> Path:
    checkpoint = run_dir / "checkpoint.pt"
    if not (run_dir / "final.json").exists() or not checkpoint.exists():
        raise FileNotFoundError(
            f"{run_dir} holds no finished run (final.json and checkpoint.pt): "
            f"train it first with `python -m aoi train ... --run-dir {run_dir}`"
        )
    return checkpoint


def load_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """The final model of a finished run, in eval mode on ``device``, and its `TrainConfig`."""
    checkpoint = load_checkpoint(_finished_checkpoint(Path(run_dir)))
    config = TrainConfig.from_dict(checkpoint["config"])
    model = build_model(config)
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), config


def run_splits(config: TrainConfig) -> tuple[str, ...]:
    """The splits a run has logits for: test, train, and val when it holds data out."""
    return SPLITS if config.validation else SPLITS[:2]


def split_dataset(config: TrainConfig, split: str) -> Dataset:
    """A split of the run's data as in training (same T, limit, seed and held-out part), no augmentation."""
    if split not in run_splits(config):
        raise ValueError(f"split must be one of {run_splits(config)} for this run, got {split!r}")
    limit = {"test": config.limit_test, "train": config.limit_train, "val": None}[split]
    return get_dataset(
        config.dataset, split, T=config.T, augment=False, limit=limit, seed=config.seed, validation=config.validation
    )


@torch.no_grad()
def collect_outputs(
    model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device, progress: bool = True, desc: str = ""
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step logits of ``model`` (eval mode) on ``dataset``: (outputs float32 [T, N, K] CPU, targets long [N])."""
    model.eval()
    loader = DataLoader(dataset, batch_size, shuffle=False)
    outputs, targets = [], []
    for inputs, labels in time_major_batches(loader, device, progress, desc):
        outputs.append(model(inputs).float().cpu())
        targets.append(labels.long().cpu())
    return torch.cat(outputs, dim=1), torch.cat(targets)


def evaluate(
    run_dir: str | os.PathLike, splits=None, progress: bool = True, device: str = "auto", batch_size: int | None = None
) -> None:
    """Write ``run_dir/logits_<split>.npz`` for each split (default: `run_splits`; skipped when
    newer than the checkpoint). ``batch_size`` defaults to the run's training batch size."""
    run_dir = Path(run_dir)
    checkpoint = _finished_checkpoint(run_dir)
    torch_device = resolve_device(device)
    model, config = load_model(run_dir, torch_device)
    for split in splits or run_splits(config):
        path = run_dir / f"logits_{split}.npz"
        if path.exists() and path.stat().st_mtime >= checkpoint.stat().st_mtime:
            continue
        dataset = split_dataset(config, split)
        desc = f"{config.run_name()} {split}"
        outputs, targets = collect_outputs(
            model, dataset, batch_size or config.batch_size, torch_device, progress, desc
        )
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, outputs=outputs.numpy(), targets=targets.numpy())


def load_logits(run_dir: str | os.PathLike, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs torch.float32 [T, N, K], targets torch.long [N]) saved by `evaluate`."""
    path = Path(run_dir) / f"logits_{split}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m aoi evaluate {run_dir}` first")
    with np.load(path) as data:
        return torch.from_numpy(data["outputs"]).float(), torch.from_numpy(data["targets"]).long()
