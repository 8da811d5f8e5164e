"""scikit-learn's bundled handwritten digits (1,797 real 8x8 images): `digits` (direct encoding)
and `ndigits` (the same images recorded by the saccade event-camera simulator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from aoi.data.base import AoiDataset, DatasetInfo, cache_root, portable
from aoi.data.encoding import ImageArraySource
from aoi.data.simulated import SimulatedEventSource
from aoi.data.simulator import SaccadeParams
from aoi.data.splits import split_hash

TEST_FRACTION = 0.25
SPLIT_SEED = 0
SPLIT_RULE = f"sklearn train_test_split(test_size={TEST_FRACTION}, stratify=labels, random_state={SPLIT_SEED})"
NDIGITS_PARAMS = SaccadeParams()  # 10x10 digit on a 16x16 sensor (the defaults)


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(images [1797, 8, 8] float in [0, 1], labels [1797], train indices, test indices)."""
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    labels = digits.target.astype(np.int64)
    train, test = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    return images, labels, np.sort(train), np.sort(test)


def _provenance(train, test) -> dict:
    return {
        "split_rule": SPLIT_RULE,
        "num_files": len(train) + len(test),
        "split_hash": split_hash(map(str, train), map(str, test)),
    }


def build_digits(info: DatasetInfo, split: str, T: int, root: Path, augment: bool) -> AoiDataset:
    images, labels, train, test = load_split()
    source = ImageArraySource(torch.from_numpy(images[:, None]), labels, T)
    return AoiDataset(source, info, T, _provenance(train, test), train if split == "train" else test)


def build_ndigits(info: DatasetInfo, split: str, T: int, root: Path, augment: bool) -> AoiDataset:
    images, labels, train, test = load_split()
    source = SimulatedEventSource(images, labels, NDIGITS_PARAMS, cache_root(root) / "ndigits", T, "ndigits")
    provenance = {
        **_provenance(train, test),
        "simulator": source.cache_params["simulator"],
        "cache_key": source.cache_key,
        "cache": portable(source.folder, cache_root(root)),
    }
    return AoiDataset(source, info, T, provenance, train if split == "train" else test)
