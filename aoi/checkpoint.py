"""Checkpoints that resume a run exactly: weights, optimiser, schedule, log, every RNG state.

A checkpoint is a dict saved with `torch.save` that loads with ``weights_only=True``:
``format`` (``CHECKPOINT_FORMAT``), ``config`` (TrainConfig values), ``epoch`` (completed),
``model``, ``optimizer``, ``scheduler`` (state dicts), ``log`` (rows so far) and ``rng`` (one
`rng_state` per process: torch, CUDA, numpy, python ``random``, the DataLoader generator).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aoi.errors import UserError
from aoi.files import first_line, save_torch

CHECKPOINT_FORMAT = "aoi-checkpoint-v1"
CHECKPOINT_KEYS = ("config", "epoch", "model", "optimizer", "scheduler", "log", "rng")
RESTART = "delete it to restart the run"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, corrupt, incomplete or was not written by aoi."""


def load_checkpoint(path: str | os.PathLike, map_location="cpu", remedy: str = RESTART) -> dict:
    """Load and validate an aoi checkpoint (``weights_only=True``); a `CheckpointError` naming
    ``path`` and ending in ``remedy`` (what to do) if it is not a complete one."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not an aoi checkpoint ({first_line(exc)}): {remedy}") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an aoi checkpoint (no {CHECKPOINT_FORMAT!r} marker): {remedy}")
    missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is an incomplete aoi checkpoint (it lacks {', '.join(missing)}): {remedy}")
    return checkpoint


def save_checkpoint(path: str | os.PathLike, **content) -> None:
    """Save ``content`` (config, epoch, model, optimizer, scheduler, log, rng) as a checkpoint, atomically."""
    save_torch({"format": CHECKPOINT_FORMAT, **content}, path)


def rng_state(loader_generator: torch.Generator) -> dict:
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


def set_rng_state(state: dict, loader_generator: torch.Generator) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
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
