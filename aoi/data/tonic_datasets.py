"""Any tonic dataset as an aoi dataset: `from_tonic`.

    import tonic
    from aoi.data.tonic_datasets import from_tonic        # also aoi.data.from_tonic
    ds = from_tonic(tonic.datasets.POKERDVS("data", train=True), T=10)   # ds[i] -> ([10, 2, 35, 35], label)

The recordings are framed, resized and cached exactly as the paper's event datasets
(`aoi.data.events`: T event-count bins over each recording, bilinear antialiased resize, one
.npy per recording under `<cache root>/cache/<name>/<key>/` (cache root: $AOI_CACHE, else the data
root), the key hashing every setting that shapes the frames, including the dataset's own scalar
settings, its transforms' repr and its file list, and each .npy named with its recording file's
size and mtime; a dataset that holds its recordings in memory is known by their number only, so
give it another ``name`` or ``cache=False`` when its recordings change).
"""

from __future__ import annotations

import os

import numpy as np

from aoi.data.base import AoiDataset, DatasetInfo, resolve_root
from aoi.data.events import EventFileSource, cache_params, open_cache, translation_limits
from aoi.data.splits import split_hash

TRANSFORMS = ("transform", "target_transform", "transforms")


def _sensor_size(dataset) -> tuple[int, int, int]:
    size = getattr(dataset, "sensor_size", None)
    if size is None or len(size) != 3 or min(int(s) for s in size) < 1:
        raise ValueError(
            f"from_tonic: {type(dataset).__name__} has no sensor_size (width, height, polarities), got {size!r}: "
            "set dataset.sensor_size before calling from_tonic"
        )
    return tuple(int(s) for s in size)


def _labels(dataset) -> tuple[np.ndarray, list[str] | None]:
    """(integer label per sample, the class names in label order when the targets are names).
    Uses ``dataset.targets`` when it has one per sample, else reads every sample once."""
    targets = getattr(dataset, "targets", None)
    if targets is None or len(targets) != len(dataset):
        targets = [dataset[i][1] for i in range(len(dataset))]
    if all(isinstance(t, (int, np.integer)) for t in targets):
        return np.asarray(targets, dtype=np.int64), None
    classes = sorted({str(t) for t in targets})
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[str(t)] for t in targets], dtype=np.int64), classes


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


def _settings(dataset, names: list[str]) -> dict:
    """What identifies this dataset's frames beyond the framing: its scalar attributes (folder,
    split, options), its transforms and its recordings."""
    attributes = sorted(getattr(dataset, "__dict__", {}).items())
    scalars = {k: v for k, v in attributes if isinstance(v, (bool, int, float, str))}
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
) -> AoiDataset:
    """A tonic dataset of (events, label) as an `AoiDataset`: ds[i] -> (float32 [T, P, H, W], int label).

    Args:
        dataset: a tonic dataset (or any dataset of tonic structured event arrays x, y, t [us], p)
            with ``sensor_size`` (W, H, P); created without a frame transform.
        T: time bins per recording.
        size: (H, W) of the frames (default: the sensor's).
        name: the dataset's name in the cache and the provenance (default: its class name, lower case).
        root: data root (default $AOI_DATA, else ./data); the cache goes under $AOI_CACHE when set, else under it.
        window_us: keep only the first ``window_us`` microseconds of each recording (None: all).
        translate: random translation of the frames for training (as the paper's event datasets).
        cache: keep the frames on disk (False: frame every recording at every access).
    Labels: integer targets as they are; other targets (names) become their index in sorted order
    (``provenance["classes"]``). The dataset's ``info.num_classes`` is the largest label + 1.
    """
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"from_tonic: T must be a positive integer, got {T!r}")
    sensor_size = _sensor_size(dataset)
    size = tuple(int(s) for s in (size or sensor_size[1::-1]))
    name = name or type(dataset).__name__.lower()
    files = _files(dataset)
    names = _names(dataset, files)
    labels, classes = _labels(dataset)
    params = cache_params(name, T, sensor_size, size, window_us, **_settings(dataset, names))
    cache_dir = open_cache(resolve_root(root), params) if cache else None
    max_shift = translation_limits(sensor_size, size) if translate else None
    source = EventFileSource(
        dataset,
        range(len(names)),
        names,
        files or [None] * len(names),
        labels,
        sensor_size,
        window_us,
        T,
        size,
        cache_dir,
        max_shift,
    )
    info = DatasetInfo(
        name,
        int(labels.max()) + 1 if len(labels) else 0,
        (sensor_size[2], *size),
        T,
        "event",
        f"tonic dataset {type(dataset).__name__}, framed by aoi.data.from_tonic",
        "random translation (aoi.data.events)" if translate else "",
    )
    provenance = {
        "split_rule": "as the tonic dataset gives it",
        "split_hash": params["files"],
        "num_files": len(names),
        "classes": classes,
        "cache_key": cache_dir.name if cache_dir else None,
        "cache_dir": str(cache_dir) if cache_dir else None,
        "cache_params": params,
    }
    return AoiDataset(source, info, T, provenance)
