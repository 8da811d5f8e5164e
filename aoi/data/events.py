"""The paper's event-camera datasets, read with tonic: CIFAR10-DVS, N-Caltech101, DVS128 Gesture.

Each recording becomes T event-count frames over its duration (tonic's ToFrame; DVS128 Gesture:
its first 1.3 s), resized to 48x48 (bilinear with antialiasing, like TET's Resize(48)) and
cached per file under `<root>/cache/<name>/<key>/`, the key hashing every setting that shapes
the frames. Training adds a random translation of the frames, the same for all T, zero fill:
up to 25 px at the recording's resolution, scaled to the 48x48 frames (9 px for 128x128).
Splits: CIFAR10-DVS and N-Caltech101 stratified 9:1 on sorted file names (splits.py); DVS128
Gesture the standard user split (users 24-29 test). Labels: index in the sorted class names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aoi.data.base import AoiDataset, DatasetInfo, missing
from aoi.data.cache import has_params, params_key, save_array, write_params
from aoi.data.encoding import events_to_frames
from aoi.data.splits import nine_to_one_split, split_hash

CACHE_FORMAT = 1  # bump whenever the frames change for the same parameters
TRANSLATE_PX = 25  # maximum random shift at the recording's resolution
CIFAR10DVS_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class EventLayout:
    """Where a dataset's files live and how its recordings are framed."""

    reader: str  # class name in aoi.data.tonic_readers (also tonic's folder name)
    class_folder: str  # folder (under <root>/<reader>) whose sub-folders hold the files
    suffix: str  # file extension
    sensor_size: tuple[int, int, int]  # (W, H, P) of the frames before resizing
    window_us: int | None  # keep only the first window_us microseconds (None: all)
    layout: str  # the expected layout, for the error message
    where: str  # where to get the files


LAYOUTS = {
    "cifar10dvs": EventLayout(
        "CIFAR10DVS",
        "",
        ".aedat4",
        (128, 128, 2),
        None,
        "<root>/CIFAR10DVS/<class>/*.aedat4 for all 10 classes (airplane ... truck)",
        "the CIFAR10-DVS figshare release (Li et al. 2017), converted to AEDAT4 as in tonic",
    ),
    "ncaltech101": EventLayout(
        "NCALTECH101",
        "Caltech101",
        ".bin",
        (240, 180, 2),
        None,
        "<root>/NCALTECH101/Caltech101/<class>/image_NNNN.bin",
        "Garrick Orchard's N-Caltech101 page (Caltech101.zip)",
    ),
    "dvsgesture": EventLayout(
        "DVSGesture",
        "",
        ".npy",
        (128, 128, 2),
        1_300_000,
        "<root>/DVSGesture/ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy (tonic's preprocessed npy)",
        "IBM Research's DVS128 Gesture release, converted to tonic's npy layout",
    ),
}


def check_files(name: str, root: Path, split: str) -> None:
    """Raise the one-line missing-files error unless the files tonic will read are on disk."""
    spec = LAYOUTS[name]
    base = root / spec.reader / spec.class_folder
    if name == "cifar10dvs":
        folders = [base / c for c in CIFAR10DVS_CLASSES]
    elif name == "dvsgesture":
        folders = [base / ("ibmGestureTrain" if split == "train" else "ibmGestureTest")]
    else:
        folders = [base]
    if not all(f.is_dir() and next(f.rglob(f"*{spec.suffix}"), None) for f in folders):
        raise missing(name, spec.layout.replace("<root>", str(root)), spec.where)


def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Frames [T, P, H, W] resized to `size` (bilinear, antialiased)."""
    return F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)


def translate(frames: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """frames [..., H, W] moved down by dy and right by dx pixels, zero fill."""
    h, w = frames.shape[-2:]
    out = torch.zeros_like(frames)
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = frames[
        ..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


class EventFileSource:
    """Recordings read by a tonic dataset; item j -> (frames [T, P, H', W'] float32, label)."""

    def __init__(
        self,
        reader,
        positions,
        names,
        labels,
        spec: EventLayout,
        T: int,
        size: tuple[int, int],
        cache_dir: Path,
        augment: bool,
    ):
        self.reader, self.positions, self.names = reader, list(positions), list(names)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.spec, self.T, self.size, self.cache_dir = spec, T, size, cache_dir
        width, height, _ = spec.sensor_size
        self.max_shift = (
            (round(TRANSLATE_PX * size[0] / height), round(TRANSLATE_PX * size[1] / width)) if augment else None
        )

    def frames(self, j: int) -> torch.Tensor:
        """The resized frames of recording j (from the cache when present)."""
        path = self.cache_dir / (self.names[j].replace("/", "__") + ".npy")
        if path.exists():
            return torch.from_numpy(np.load(path))
        events, _ = self.reader[self.positions[j]]
        width, height, _ = self.spec.sensor_size
        keep = (events["x"] < width) & (events["y"] < height)
        if self.spec.window_us is not None and len(events):
            times = events["t"].astype(np.int64)
            keep &= times - times.min() < self.spec.window_us
        frames = resize(events_to_frames(events[keep], self.spec.sensor_size, self.T), self.size)
        save_array(path, frames.numpy())
        return frames

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int]:
        frames = self.frames(j)
        if self.max_shift is not None:
            dy, dx = (int(torch.randint(-m, m + 1, ())) for m in self.max_shift)
            frames = translate(frames, dy, dx)
        return frames, int(self.labels[j])


def build_events(info: DatasetInfo, split: str, T: int, root: Path, augment: bool) -> AoiDataset:
    from aoi.data import tonic_readers

    spec = LAYOUTS[info.name]
    check_files(info.name, root, split)
    reader_cls = getattr(tonic_readers, spec.reader)
    reader = reader_cls(str(root), train=split == "train") if info.name == "dvsgesture" else reader_cls(str(root))
    base = Path(reader.location_on_system, spec.class_folder)
    names = [Path(p).relative_to(base).as_posix() for p in reader.data]
    classes = [n.split("/")[0] for n in names]
    if info.name == "dvsgesture":  # the reader holds one split; tonic's label is the file name
        positions = sorted(range(len(names)), key=names.__getitem__)
        labels = [int(reader.targets[p]) for p in positions]
        split_names = [names[p] for p in positions]
        digest = split_hash(split_names, []) if split == "train" else split_hash([], split_names)
        rule = "standard user split (users 24-29 test)"
    else:
        train, test = nine_to_one_split(names, classes)
        positions = train if split == "train" else test
        class_index = {c: i for i, c in enumerate(sorted(set(classes)))}
        labels = [class_index[classes[p]] for p in positions]
        digest = split_hash([names[p] for p in train], [names[p] for p in test])
        rule = "stratified 9:1 on sorted file names per class (every 10th, from the first, to test)"
    size = info.input_shape[1:]
    cache_params = {
        "format": CACHE_FORMAT,
        "dataset": info.name,
        "T": T,
        "sensor_size": spec.sensor_size,
        "size": size,
        "window_us": spec.window_us,
        "resize": "bilinear-antialias",
    }
    cache_dir = root / "cache" / info.name / params_key(cache_params)
    if not has_params(cache_dir, cache_params):
        write_params(cache_dir, cache_params)
    source = EventFileSource(
        reader, positions, [names[p] for p in positions], labels, spec, T, size, cache_dir, augment
    )
    provenance = {
        "split_rule": rule,
        "split_hash": digest,
        "num_files": len(names),
        "num_classes_found": len(set(labels)),
        "cache_key": cache_dir.name,
        "cache_dir": str(cache_dir),
        "cache_params": cache_params,
        "folder": str(base),
    }
    return AoiDataset(source, info, T, provenance)
