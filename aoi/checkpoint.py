"""Checkpoints that resume a run exactly: weights, optimiser, schedule, log, every RNG state.

A checkpoint is a dict saved with `torch.save` that loads with ``weights_only=True``:
``format`` (``CHECKPOINT_FORMAT``), ``config`` (TrainConfig values), ``epoch`` (completed),
``model``, ``optimizer``, ``scheduler`` (state dicts), ``log`` (rows so far), ``rng`` (one
`rng_state` per process: torch, CUDA, numpy, python ``random``, the DataLoader generator) and
``sha256``, the `content_sha256` of everything else. torch does not check the zip's CRC, so a
flipped byte inside a tensor would load silently: `load_checkpoint` recomputes the checksum and
refuses a checkpoint that does not match it (and, given the final weights' hash, one whose
weights are not those).
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
CHECKSUM = "sha256"  # the key of the checksum in a checkpoint
RESTART = "delete it to restart the run"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, corrupt, incomplete or was not written by aoi."""


def load_checkpoint(
    path: str | os.PathLike, map_location="cpu", remedy: str = RESTART, weights: str | None = None
) -> dict:
    """Load and verify an aoi checkpoint (``weights_only=True``): its checksum, and when ``weights``
    (a `state_sha256`, final.json's) is given, its model's weights. A `CheckpointError` naming
    ``path`` and ending in ``remedy`` (what to do) if it is not a complete, intact one; a
    checkpoint without a checksum (written before aoi wrote them) passes only with ``weights``."""
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
    recorded = checkpoint.pop(CHECKSUM, None)
    if recorded is None and weights is None:
        raise CheckpointError(f"{path} carries no checksum (an older aoi wrote it), so it cannot be verified: {remedy}")
    if recorded is not None and recorded != content_sha256(checkpoint):
        raise CheckpointError(f"{path} is corrupt (its content does not match the checksum saved with it): {remedy}")
    if weights is not None and state_sha256(checkpoint["model"]) != weights:
        raise CheckpointError(f"{path} does not hold the final weights (their sha256 is not final.json's): {remedy}")
    return checkpoint


def save_checkpoint(path: str | os.PathLike, **content) -> None:
    """Save ``content`` (config, epoch, model, optimizer, scheduler, log, rng) and its checksum
    as a checkpoint, atomically."""
    checkpoint = {"format": CHECKPOINT_FORMAT, **content}
    save_torch({**checkpoint, CHECKSUM: content_sha256(checkpoint)}, path)


def content_sha256(content) -> str:
    """SHA-256 of nested dicts, lists and tuples (in order) of tensors (dtype, shape and bytes)
    and plain values (type and repr): what a checkpoint holds, equal iff it loads back the same."""
    digest = hashlib.sha256()
    pending = [content]
    while pending:
        value = pending.pop()
        if isinstance(value, torch.Tensor):
            digest.update(f"tensor {value.dtype} {tuple(value.shape)}:".encode())
            digest.update(_tensor_bytes(value))
        elif isinstance(value, dict):
            digest.update(f"dict {len(value)}:".encode())
            pending += reversed([part for pair in value.items() for part in pair])
        elif isinstance(value, (list, tuple)):
            digest.update(f"{type(value).__name__} {len(value)}:".encode())
            pending += reversed(value)
        else:
            digest.update(f"{type(value).__name__} {value!r};".encode())
    return digest.hexdigest()


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


def _tensor_bytes(tensor: torch.Tensor) -> np.ndarray:
    """The bytes of ``tensor``'s values in order, as a uint8 array (hashed without a copy)."""
    return tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy()


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state_dict (names, dtypes, shapes and values, in order): equal iff identical weights."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def weights_sha256(model: nn.Module) -> str:
    """`state_sha256` of ``model``'s state_dict (final.json's ``weights_sha256``)."""
    return state_sha256(model.state_dict())


def nonfinite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of a state dict (parameters, buffers) holding NaN or infinity."""
    tensors = {name: t for name, t in state.items() if t.is_floating_point()}
    if not tensors:
        return []
    finite = torch.stack([torch.isfinite(t).all() for t in tensors.values()]).tolist()
    return [name for name, ok in zip(tensors, finite) if not ok]
