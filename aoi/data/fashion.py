"""Fashion-MNIST (70,000 real 28x28 images): `fashion-mnist` (direct encoding) and `nfashion`
(recorded by the saccade simulator on a 34x34 sensor, as N-MNIST was).

The idx files (plain or .gz) are looked for in `<root>/fashion-mnist/`, in torchvision's layout
`<root>/fashion-mnist/FashionMNIST/raw/`, and where Debian's `dataset-fashion-mnist` package puts
them; when absent, torchvision downloads them into the second place. A file that is not an idx
file or is cut short, or images and labels of different counts, is an `UnreadableFile`. nfashion's
simulator cache: `<cache root>/nfashion/<key>/` (cache root: $AOI_CACHE, else the data root).
"""

from __future__ import annotations

import gzip
import hashlib
import math
from pathlib import Path

import numpy as np
import torch

from aoi.data.base import (
    REPLACE,
    AoiDataset,
    DatasetInfo,
    cache_root,
    download_or_raise,
    missing,
    portable,
    unreadable,
)
from aoi.data.encoding import ImageArraySource
from aoi.data.simulated import SimulatedEventSource
from aoi.data.simulator import SaccadeParams
from aoi.files import UnreadableFile

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SYSTEM_FOLDERS = (Path("/usr/share/datasets/fashion-mnist"),)
NFASHION_PARAMS = SaccadeParams(sensor_size=34, image_size=28, image_offset_px=1)
LAYOUT = "<root>/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"
WHERE = "https://github.com/zalandoresearch/fashion-mnist or Debian's dataset-fashion-mnist package"


def read_idx(path: Path) -> np.ndarray:
    """An idx file (unsigned-byte data, optionally gzipped) as a uint8 array of its shape."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # not gzip; a gzip stream cut short
        raise unreadable(path, exc, REPLACE) from exc
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or len(raw) < 4 + 4 * raw[3]:
        raise unreadable(path, "not an unsigned-byte idx file", REPLACE)
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise unreadable(path, f"{data.size} bytes of data, its header says {math.prod(shape)}: cut short", REPLACE)
    return data.reshape(shape)


def find_files(root: Path, split: str) -> tuple[Path, Path] | None:
    """(images, labels) idx paths of a split, or None when not on disk."""
    folders = (root / "fashion-mnist", root / "fashion-mnist" / "FashionMNIST" / "raw", *SYSTEM_FOLDERS)
    for folder in folders:
        found = [next((p for p in (folder / n, folder / f"{n}.gz") if p.is_file()), None) for n in FILES[split]]
        if all(found):
            return found[0], found[1]
    return None


def load(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(images [N, 28, 28] float32 in [0, 1], labels [N] int64, provenance: the split rule and the
    SHA-256 of the idx files' images and labels), downloading when missing."""
    paths = find_files(root, split)
    if paths is None:
        from torchvision.datasets import FashionMNIST

        folder = root / "fashion-mnist"
        download_or_raise(
            lambda: FashionMNIST(folder, train=split == "train", download=True),
            folder,
            missing("fashion-mnist", LAYOUT, WHERE),
        )
        paths = find_files(root, split)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if labels.shape != images.shape[:1]:
        raise UnreadableFile(
            f"{paths[0]} holds {len(images)} images but {paths[1]} {labels.size} labels: "
            "download both again or put good copies there"
        )
    provenance = {
        "images_sha256": hashlib.sha256(images).hexdigest(),
        "labels_sha256": hashlib.sha256(labels).hexdigest(),
        "split_rule": "official train/test files",
    }
    return images.astype(np.float32) / 255.0, labels.astype(np.int64), provenance


def build_fashion(info: DatasetInfo, split: str, T: int, root: Path, augment: bool) -> AoiDataset:
    images, labels, provenance = load(root, split)
    source = ImageArraySource(torch.from_numpy(images[:, None]), labels, T)
    return AoiDataset(source, info, T, provenance)


def build_nfashion(info: DatasetInfo, split: str, T: int, root: Path, augment: bool) -> AoiDataset:
    images, labels, provenance = load(root, split)
    folder = cache_root(root) / "nfashion"
    source = SimulatedEventSource(images, labels, NFASHION_PARAMS, folder, T, f"nfashion {split}")
    provenance.update(
        simulator=source.cache_params["simulator"],
        cache_key=source.cache_key,
        cache=portable(source.folder, cache_root(root)),
    )
    return AoiDataset(source, info, T, provenance)
