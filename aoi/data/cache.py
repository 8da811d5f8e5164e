"""Disk caches keyed by a hash of every parameter that shapes their content; atomic writes.

Caches live under the cache root (`base.cache_root`: $AOI_CACHE, else the data root). A cache that
cannot be written fails in one line naming it and suggesting AOI_CACHE; a cached array that does
not load with the expected dtype and shape fails naming it (`load_array`), it is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from aoi.data.base import unreadable
from aoi.errors import UserError
from aoi.files import atomic_path, read_json, write_json


def params_key(params: dict) -> str:
    """A short hash of a JSON-serialisable dict of parameters (key order does not matter)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _writing(path: Path):
    """Turn a failed write of cache `path` (read-only folder, full disk) into a one-line UserError."""
    try:
        yield
    except OSError as exc:
        raise UserError(
            f"cannot write aoi's cache {path} ({exc.strerror or exc}): "
            "set AOI_CACHE to a writable folder for aoi's caches (default: the data root)"
        ) from exc


def writable_folder(folder: Path) -> None:
    """Create cache folder `folder` and check that it takes a file (before long work that fills it)."""
    with _writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save `array` to `path` atomically."""
    with _writing(path), atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def load_array(path: Path, dtype, shape: tuple[int, ...], todo: str, mmap_mode: str | None = None) -> np.ndarray:
    """The array saved in `path`, of `dtype` and `shape`; else `UnreadableFile` naming it and saying `todo`."""
    try:
        array = np.load(path, mmap_mode=mmap_mode)
    except (OSError, ValueError, EOFError) as exc:
        raise unreadable(path, exc, todo) from exc
    if array.dtype != dtype or array.shape != shape:
        raise unreadable(path, f"{array.dtype} {array.shape}, expected {np.dtype(dtype)} {shape}", todo)
    return array


def write_params(folder: Path, params: dict) -> None:
    """Record the parameters behind a cache folder (`params.json`, written last = complete)."""
    with _writing(folder / "params.json"):
        write_json(folder / "params.json", params)


def has_params(folder: Path, params: dict) -> bool:
    """Whether `folder` is a complete cache made with exactly `params` (a corrupt params.json: UnreadableFile)."""
    return read_json(folder / "params.json") == json.loads(json.dumps(params, default=str))
