"""Per-step logits of a trained run, saved so every cutoff analysis can be redone without the model.

``run_dir/logits_<split>.npz`` (compressed): ``outputs`` float32 [T, N, K] (per-step logits O_t
of the final model, eval mode), ``targets`` int64 [N] and ``weights_sha256`` (of the weights they
come from, as in final.json). Splits: ``test`` (with the run's ``limit_test``), ``train``
(without augmentation, with the run's ``limit_train`` subset: Top-K threshold calibration) and,
when the run holds data out (``validation`` > 0), ``val`` (model selection).
`evaluate` first verifies the final checkpoint against final.json (`aoi.run_files`; a damaged
one is refused and nothing is written), then recomputes a file that is missing, unreadable or
from other weights; `load_logits` refuses one whose weights are not final.json's.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from aoi.checkpoint import weights_sha256
from aoi.config import TrainConfig, build_model
from aoi.data import get_dataset
from aoi.data.batches import time_major_batches
from aoi.distributed import resolve_device
from aoi.errors import UserError
from aoi.files import UnreadableFile, atomic_path, first_line, read_json
from aoi.run_files import load_final_checkpoint

SPLITS = ("test", "train", "val")
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)  # what np.load raises on a bad file


def load_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """The final model of a finished run (weights verified against final.json), in eval mode on
    ``device``, and its `TrainConfig`."""
    checkpoint = load_final_checkpoint(run_dir)
    config = TrainConfig.from_dict(checkpoint["config"])
    model = build_model(config)
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), config


def run_splits(config: TrainConfig) -> tuple[str, ...]:
    """The splits a run has logits for: test, train, and val when it holds data out."""
    return SPLITS if config.validation else SPLITS[:2]


def check_splits(config: TrainConfig, splits) -> None:
    """A `UserError` unless every split of ``splits`` is one of the run's (`run_splits`)."""
    unknown = [split for split in splits if split not in run_splits(config)]
    if unknown:
        held = "" if config.validation else " (val only for runs trained with --validation > 0)"
        raise UserError(
            f"run {config.run_name()} has no split {', '.join(unknown)}: choose among {run_splits(config)}{held}"
        )


def split_dataset(config: TrainConfig, split: str) -> Dataset:
    """A split of the run's data as in training (same T, limit, seed, fold and held-out part), no augmentation."""
    check_splits(config, [split])
    limit = {"test": config.limit_test, "train": config.limit_train, "val": None}[split]
    return get_dataset(
        config.dataset,
        split,
        T=config.T,
        augment=False,
        limit=limit,
        seed=config.seed,
        validation=config.validation,
        folds=config.folds,
        fold=config.fold,
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
    """Write ``run_dir/logits_<split>.npz`` for each split (default: `run_splits`), keeping those
    already computed from the final weights. ``batch_size`` defaults to the run's training batch size."""
    run_dir = Path(run_dir)
    torch_device = resolve_device(device)
    model, config = load_model(run_dir, torch_device)
    weights = weights_sha256(model)
    splits = splits or run_splits(config)
    check_splits(config, splits)
    for split in splits:
        path = run_dir / f"logits_{split}.npz"
        if path.exists():
            problem = _logits_problem(path, weights)
            if problem is None:
                continue
            print(f"aoi evaluate: {path} {problem}: recomputing it", file=sys.stderr)
        dataset = split_dataset(config, split)
        desc = f"{config.run_name()} {split}"
        outputs, targets = collect_outputs(
            model, dataset, batch_size or config.batch_size, torch_device, progress, desc
        )
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, outputs=outputs.numpy(), targets=targets.numpy(), weights_sha256=np.array(weights))


def _logits_problem(path: Path, weights: str) -> str | None:
    """What is wrong with the logits file ``path`` for the weights of hash ``weights``; None if nothing."""
    try:
        with np.load(path) as data:
            recorded = str(data["weights_sha256"]) if "weights_sha256" in data else None
    except _UNREADABLE as exc:
        return f"is unreadable ({first_line(exc)})"
    if recorded is None:
        return "does not record the weights it comes from"
    return None if recorded == weights else "comes from other weights than the run's final ones"


def load_logits(run_dir: str | os.PathLike, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs torch.float32 [T, N, K], targets torch.long [N]) saved by `evaluate` from the
    final weights (final.json's ``weights_sha256``)."""
    path = Path(run_dir) / f"logits_{split}.npz"
    again = f"run `python -m aoi evaluate {run_dir}` to recompute it"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m aoi evaluate {run_dir}` first")
    final = read_json(Path(run_dir) / "final.json")
    problem = final and _logits_problem(path, final.get("weights_sha256"))
    if problem:
        raise UserError(f"{path} {problem}: {again}")
    try:
        with np.load(path) as data:
            return torch.from_numpy(data["outputs"]).float(), torch.from_numpy(data["targets"]).long()
    except _UNREADABLE as exc:
        raise UnreadableFile(f"{path} is unreadable ({first_line(exc)}): {again}") from exc
