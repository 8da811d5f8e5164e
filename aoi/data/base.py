"""What every loader shares: DatasetInfo, the dataset object returned to users, the data root and
the cache root, and the one-line errors for missing and unreadable files.

A dataset's ``provenance`` says what its samples depend on (split rule and hashes, cache keys,
data hashes) and never where one machine keeps its files: a path in it is relative to the data
or cache root (`portable`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from aoi.errors import UserError
from aoi.files import UnreadableFile

SPLITS = ("train", "val", "test")  # "val": held out of the training data (get_dataset's validation)
REPLACE = "download it again or put a good copy there"  # what to do with an unreadable data file


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset (known without loading anything)."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W) of one frame, after resizing
    default_T: int  # timesteps per sample
    kind: str  # "frame" (image repeated T times) or "event" (event-camera frames)
    source: str  # where the data come from, in one line
    augmentation: str = ""  # training augmentation, "" when the dataset has none


class DatasetNotFoundError(UserError, FileNotFoundError):
    """The files of a dataset are not on disk (the message names the expected layout)."""


class AoiDataset(Dataset):
    """ds[i] -> (frames: float32 tensor [T, C, H, W], label: int).

    `source` is any object with `labels` (int array, one per sample) and `__getitem__(j)`
    returning (frames, label); `indices` selects and orders the source's samples.
    """

    def __init__(self, source, info: DatasetInfo, T: int, provenance: dict, indices=None):
        self.source = source
        self.info = info
        self.T = T
        self.indices = np.arange(len(source.labels)) if indices is None else np.asarray(indices)
        self.provenance = dict(provenance)

    @property
    def labels(self) -> np.ndarray:
        """Integer label of every sample, in dataset order (no loading)."""
        return np.asarray(self.source.labels)[self.indices]

    def subset(self, positions) -> AoiDataset:
        """A dataset of the samples at `positions` (indices into this dataset)."""
        return AoiDataset(self.source, self.info, self.T, self.provenance, self.indices[positions])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        frames, label = self.source[int(self.indices[i])]
        return frames, int(label)


class PooledSource:
    """The samples of several datasets one after another (cross-validation pools a dataset's train
    and test splits): ``labels`` concatenated, item j from the part that holds it."""

    def __init__(self, parts):
        self.parts = list(parts)
        self.labels = np.concatenate([part.labels for part in self.parts])
        self.starts = np.cumsum([0, *(len(part) for part in self.parts)])

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int]:
        part = int(np.searchsorted(self.starts, j, side="right")) - 1
        return self.parts[part][j - int(self.starts[part])]


def resolve_root(root: str | os.PathLike | None) -> Path:
    """Data root: `root`, else the AOI_DATA environment variable, else ./data."""
    return Path(root if root is not None else os.environ.get("AOI_DATA", "data")).expanduser()


def cache_root(root: Path) -> Path:
    """Where aoi writes its caches: the AOI_CACHE environment variable, else the data root `root`
    (set AOI_CACHE when the data root is read-only)."""
    return Path(os.environ.get("AOI_CACHE") or root).expanduser()


def portable(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` (the data or cache root), as provenance records it: e.g. "cache/nmnist/<key>"."""
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


def missing(name: str, layout: str, where: str) -> DatasetNotFoundError:
    """The one-line error for a dataset whose files are not on disk."""
    return DatasetNotFoundError(f"{name}: files not found; expected {layout} (get them from {where})")


def unreadable(path: Path, problem: str | BaseException, todo: str) -> UnreadableFile:
    """The one-line error for a file that exists but does not parse: names it, the problem, what to do."""
    if isinstance(problem, BaseException):
        problem = f"{type(problem).__name__}: {problem}"
    return UnreadableFile(f"{path} is unreadable ({' '.join(str(problem).split())}): {todo}")


def download_or_raise(download: Callable[[], None], folder: Path, error: DatasetNotFoundError) -> None:
    """Run `download`; if it fails, delete every file and folder it created under `folder` (so no
    partial archive stays behind) and raise `error`."""

    def contents():
        return set(folder.rglob("*")) if folder.exists() else set()

    before = contents()
    try:
        download()
    except Exception as exc:
        for path in sorted(contents() - before, reverse=True):  # children before their folders
            path.rmdir() if path.is_dir() else path.unlink()
        if not before and folder.exists():
            folder.rmdir()
        raise DatasetNotFoundError(f"{error} [download failed: {type(exc).__name__}]") from exc
