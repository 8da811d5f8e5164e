"""Disk caches keyed by a hash of every parameter that shapes their content; atomic writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from aoi.files import atomic_path, write_json


def params_key(params: dict) -> str:
    """A short hash of a JSON-serialisable dict of parameters (key order does not matter)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save `array` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def write_params(folder: Path, params: dict) -> None:
    """Record the parameters behind a cache folder (`params.json`, written last = complete)."""
    write_json(folder / "params.json", params)


def has_params(folder: Path, params: dict) -> bool:
    """Whether `folder` is a complete cache made with exactly `params`."""
    path = folder / "params.json"
    return path.exists() and json.loads(path.read_text()) == json.loads(json.dumps(params, default=str))
