"""Any tonic dataset as an aoi dataset: `from_tonic`.

    import tonic
    from aoi.data.tonic_datasets import from_tonic        # also aoi.data.from_tonic
    ds = from_tonic(tonic.datasets.POKERDVS("data", train=True), T=10)   # ds[i] -> ([10, 2, 35, 35], label)

The recordings are framed, resized and cached exactly as the paper's event datasets
(`aoi.data.events`: T event-count bins over each recording, bilinear antialiased resize, one
.npy per recording under `<cache root>/cache/<name>/<key>/` (cache root: $AOI_CACHE, else the data
root), the key hashing every setting that shapes the frames, including the dataset's own scalar
settings (paths relative to the data root), its transforms' repr and its file list, and each .npy
named with its recording file's size and mtime; a dataset that holds its recordings in memory is
known by their number only, so give it another ``name`` or ``cache=False`` when its recordings
change). Targets become labels by one mapping for every split (`_labels`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from aoi.data.base import AoiDataset, DatasetInfo, cache_root, portable, resolve_root
from aoi.data.events import EventFileSource, cache_params, open_cache, translation_limits
from aoi.data.splits import split_hash
from aoi.errors import UserError

TRANSFORMS = ("transform", "target_transform", "transforms")


class TonicError(UserError, ValueError):
    """A dataset, an argument or a target that `from_tonic` cannot use; the message says what to do."""


def _sensor_size(dataset) -> tuple[int, int, int]:
    size = getattr(dataset, "sensor_size", None)
    if size is None or len(size) != 3 or min(int(s) for s in size) < 1:
        raise TonicError(
            f"from_tonic: {type(dataset).__name__} has no sensor_size (width, height, polarities), got {size!r}: "
            "set dataset.sensor_size before calling from_tonic"
        )
    return tuple(int(s) for s in size)


def _plain(value):
    """A target or class as a plain value: a number (an int when integral) or text."""
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode()
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _class_list(classes) -> list | None:
    """The classes in label order: a sequence as it is, a mapping {class: label} by label, a set
    sorted (numbers as numbers, before names)."""
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
        raise TonicError(f"from_tonic: classes must be a sequence, a mapping or a set of classes, got {classes!r}")
    if isinstance(classes, Mapping):
        classes = [c for c, _ in sorted(classes.items(), key=lambda item: _plain(item[1]))]
    elif isinstance(classes, (set, frozenset)):
        classes = sorted(classes, key=lambda c: (isinstance(_plain(c), str), _plain(c)))
    classes = [_plain(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise TonicError(f"from_tonic: the classes {classes} name a class twice: give each class once")
    return classes


def _labels(dataset, classes) -> tuple[np.ndarray, list | None]:
    """(integer label per sample, the classes in label order, or None).

    With classes (given, else the dataset's ``classes``), a target that is one of them is its
    index; an integer target is already a label when the classes are names (tonic's ``classes``:
    NMNIST, DVSGesture), below their number. Without classes, every target must be an integer
    (int, numpy or 0-d tensor, integral float) >= 0: its own label. Anything else is an error, so
    every split of a dataset maps its targets alike. Uses ``dataset.targets`` when it has one per
    sample, else reads every sample once.
    """
    targets = getattr(dataset, "targets", None)
    if targets is None or len(targets) != len(dataset):
        targets = [dataset[i][1] for i in range(len(dataset))]
    classes = _class_list(getattr(dataset, "classes", None) if classes is None else classes)
    index = {c: i for i, c in enumerate(classes or ())}
    indices = classes is None or all(isinstance(c, str) for c in classes)  # integer targets are labels
    limit = len(classes) if classes is not None else float("inf")
    labels = []
    for position, target in enumerate(map(_plain, targets)):
        if target in index:
            labels.append(index[target])
        elif indices and isinstance(target, int) and 0 <= target < limit:
            labels.append(target)
        else:
            lacks = "is not an integer label >= 0" if classes is None else f"is none of the classes {classes}"
            raise TonicError(
                f"from_tonic: the target {target!r} of sample {position} {lacks}: pass classes=[...], every class "
                "in label order (the same for every split)"
            )
    return np.asarray(labels, dtype=np.int64), classes


def _files(dataset) -> list[str] | None:
    """The file of each recording (tonic's ``data``), or None when the recordings are not files."""
    files = getattr(dataset, "data", None)
    if isinstance(files, (list, tuple)) and len(files) == len(dataset) and all(isinstance(f, str) for f in files):
        return list(files)
    return None


def _names(dataset, files: list[str] | None) -> list[str]:
    """A name per recording: its file relative to the dataset's folder, else its index."""
    if files is None:
        return [f"{i:07d}" for i in range(len(dataset))]
    base = getattr(dataset, "location_on_system", None)
    return [os.path.relpath(f, base).replace(os.sep, "/") if base else f for f in files]


def _settings(dataset, names: list[str], root: Path) -> dict:
    """What identifies this dataset's frames beyond the framing: its scalar attributes (folder,
    split, options; an absolute path relative to the data ``root``), its transforms and its recordings."""
    attributes = sorted(getattr(dataset, "__dict__", {}).items())
    scalars = {k: v for k, v in attributes if isinstance(v, (bool, int, float, str))}
    scalars = {k: portable(v, root) if isinstance(v, str) and os.path.isabs(v) else v for k, v in scalars.items()}
    transforms = {k: repr(getattr(dataset, k, None)) for k in TRANSFORMS}
    return {
        "class": type(dataset).__name__,
        "settings": scalars,
        "transforms": transforms,
        "files": split_hash(names, []),
    }


def from_tonic(
    dataset,
    T: int,
    size: tuple[int, int] | None = None,
    name: str | None = None,
    root=None,
    window_us: int | None = None,
    translate: bool = False,
    cache: bool = True,
    classes=None,
) -> AoiDataset:
    """A tonic dataset of (events, label) as an `AoiDataset`: ds[i] -> (float32 [T, P, H, W], int label).

    Args:
        dataset: a tonic dataset (or any dataset of tonic structured event arrays x, y, t [us], p)
            with ``sensor_size`` (W, H, P); created without a frame transform. Events beyond the
            sensor's width or height are dropped; negative coordinates or a polarity outside 0..P-1
            are an error.
        T: time bins per recording.
        size: (H, W) of the frames (default: the sensor's).
        name: the dataset's name in the cache and the provenance (default: its class name, lower case).
        root: data root (default $AOI_DATA, else ./data); the cache goes under $AOI_CACHE when set, else under it.
        window_us: keep only the first ``window_us`` (> 0) microseconds of each recording (None: all).
        translate: random translation of the frames for training (as the paper's event datasets).
        cache: keep the frames on disk (False: frame every recording at every access).
        classes: the classes in label order (a sequence, a {class: label} mapping, or a set, sorted);
            default: the dataset's ``classes``. Give the same for every split (`_labels` says how
            targets become labels; ``provenance["classes"]``). ``info.num_classes`` is their
            number (without classes: the largest label + 1).
    """
    if not isinstance(T, int) or T < 1:
        raise TonicError(f"from_tonic: T must be a positive integer, got {T!r}")
    if window_us is not None and not (isinstance(window_us, int) and window_us > 0):
        raise TonicError(f"from_tonic: window_us must be a positive integer (microseconds) or None, got {window_us!r}")
    sensor_size = _sensor_size(dataset)
    size = tuple(int(s) for s in (size or sensor_size[1::-1]))
    name, root, files = name or type(dataset).__name__.lower(), resolve_root(root), _files(dataset)
    names = _names(dataset, files)
    labels, classes = _labels(dataset, classes)
    params = cache_params(name, T, sensor_size, size, window_us, **_settings(dataset, names, root))
    cache_dir = open_cache(root, params) if cache else None
    max_shift = translation_limits(sensor_size, size) if translate else None
    recordings = (dataset, range(len(names)), names, files or [None] * len(names), labels)
    source = EventFileSource(*recordings, sensor_size, window_us, T, size, cache_dir, max_shift)
    num_classes = len(classes) if classes is not None else int(labels.max()) + 1 if len(labels) else 0
    about = f"tonic dataset {type(dataset).__name__}, framed by aoi.data.from_tonic"
    augmentation = "random translation (aoi.data.events)" if translate else ""
    info = DatasetInfo(name, num_classes, (sensor_size[2], *size), T, "event", about, augmentation)
    provenance = {
        "split_rule": "as the tonic dataset gives it",
        "split_hash": params["files"],
        "num_files": len(names),
        "classes": classes,
        "cache_key": cache_dir.name if cache_dir else None,
        "cache": portable(cache_dir, cache_root(root)) if cache_dir else None,
        "cache_params": params,
    }
    return AoiDataset(source, info, T, provenance)
