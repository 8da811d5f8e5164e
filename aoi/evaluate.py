"""Per-step logits of a trained run, saved so every cutoff analysis can be redone without the model.

``run_dir/logits_<split>.npz`` (compressed): ``outputs`` float32 [T, N, K] (per-step logits O_t
of the final model, eval mode) and ``targets`` int64 [N]. The train split is read without
augmentation (for Top-K threshold calibration), with the run's ``limit_train`` subset; the test
split with the run's ``limit_test``. Recomputed only when missing or older than the checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from aoi.atomic import atomic_path
from aoi.data import get_dataset
from aoi.distributed import resolve_device
from aoi.train import TrainConfig, build_model, load_checkpoint, time_major_batches

SPLITS = ("test", "train")


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


def _split_inputs(config: TrainConfig, split: str) -> Dataset:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    limit = config.limit_test if split == "test" else config.limit_train
    return get_dataset(config.dataset, split, T=config.T, augment=False, limit=limit, seed=config.seed)


def test_inputs(run_dir: str | os.PathLike) -> Dataset:
    """The run's test set (same T, limit and seed as in training; no augmentation)."""
    config = TrainConfig.from_dict(load_checkpoint(_finished_checkpoint(Path(run_dir)))["config"])
    return _split_inputs(config, "test")


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
    run_dir: str | os.PathLike,
    splits=SPLITS,
    progress: bool = True,
    device: str = "auto",
    batch_size: int | None = None,
) -> None:
    """Write ``run_dir/logits_<split>.npz`` for each split (skipped when newer than the checkpoint).

    ``batch_size`` defaults to the run's training batch size.
    """
    run_dir = Path(run_dir)
    checkpoint = _finished_checkpoint(run_dir)
    todo = [s for s in splits if not _is_fresh(run_dir / f"logits_{s}.npz", checkpoint)]
    if not todo:
        return
    torch_device = resolve_device(device)
    model, config = load_model(run_dir, torch_device)
    for split in todo:
        outputs, targets = collect_outputs(
            model,
            _split_inputs(config, split),
            batch_size or config.batch_size,
            torch_device,
            progress,
            desc=f"{config.run_name()} {split}",
        )
        with atomic_path(run_dir / f"logits_{split}.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, outputs=outputs.numpy(), targets=targets.numpy())


def _is_fresh(path: Path, checkpoint: Path) -> bool:
    return path.exists() and path.stat().st_mtime >= checkpoint.stat().st_mtime


def load_logits(run_dir: str | os.PathLike, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs torch.float32 [T, N, K], targets torch.long [N]) saved by `evaluate`."""
    path = Path(run_dir) / f"logits_{split}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m aoi evaluate {run_dir}` first")
    with np.load(path) as data:
        return torch.from_numpy(data["outputs"]).float(), torch.from_numpy(data["targets"]).long()
