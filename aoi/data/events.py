"""Event-camera datasets read with tonic: the paper's CIFAR10-DVS, N-Caltech101, DVS128 Gesture,
and N-MNIST (also its 1,100 recordings of slayerPytorch's NMNISTsmall: `aoi.data.nmnist_small`).

Each recording becomes T event-count frames over its duration (tonic's ToFrame; DVS128 Gesture:
its first 1.3 s), resized to 48x48 (bilinear with antialiasing, like TET's Resize(48); N-MNIST
keeps its 34x34). Training adds a random translation of the frames, the same for all T, zero
fill: up to 25 px at the recording's resolution, scaled to the 48x48 frames (9 px for 128x128);
N-MNIST has none. Splits: CIFAR10-DVS and N-Caltech101 stratified 9:1 on sorted file names
(splits.py); DVS128 Gesture the standard user split (users 24-29 test); N-MNIST its official
Train/Test folders (cross-validation pools the splits: `aoi.data.get_dataset`'s folds). Labels:
index in the sorted class names (DVS128 Gesture, N-MNIST: tonic's).

Cache: one .npy per recording under `<cache root>/cache/<name>/<key>/` (cache root: $AOI_CACHE,
else the data root), the key hashing every setting that shapes the frames, the file named after
the recording and its file's size and mtime (stat only; a content hash would read every file at
each start), so a recording replaced under the same name is framed anew. A recording that does
not parse or holds no events, or a cached frame file that does not load, is an `UnreadableFile`.
`EventFileSource`, `cache_params` and `open_cache` also serve `aoi.data.tonic_datasets.from_tonic`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aoi.data.base import REPLACE, AoiDataset, DatasetInfo, cache_root, missing, portable, unreadable
from aoi.data.cache import has_params, load_array, params_key, save_array, write_params
from aoi.data.encoding import events_to_frames
from aoi.data.splits import nine_to_one_split, split_hash
from aoi.errors import UserError

CACHE_FORMAT = 1  # bump whenever the frames change for the same parameters
TRANSLATE_PX = 25  # maximum random shift at the recording's resolution
NINE_TO_ONE_RULE = "stratified 9:1 on sorted file names per class (every 10th, from the first, to test)"


class BadEvents(UserError, ValueError):
    """A recording that is not tonic events on the dataset's sensor; the message names it."""


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
    split_folders: tuple[str, str] | None = None  # (train, test) folders of a release that holds its split
    split_rule: str = NINE_TO_ONE_RULE
    files: str = ""  # glob (under each checked folder) of the files that must be there; "": **/*<suffix>


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
        ("ibmGestureTrain", "ibmGestureTest"),
        "standard user split (users 24-29 test)",
    ),
    "nmnist": EventLayout(
        "NMNIST",
        "",
        ".bin",
        (34, 34, 2),
        None,
        "<root>/NMNIST/{Train,Test}/<digit>/*.bin (tonic's layout; Train.zip and Test.zip unpacked)",
        "Garrick Orchard's N-MNIST page or its Mendeley Data release (Orchard et al. 2015)",
        ("Train", "Test"),
        "the official N-MNIST split (the Train and Test folders)",
        "[0-9]/*.bin",
    ),
    "nmnist-small": EventLayout(
        "NMNISTsmall",
        "",
        ".bin",
        (34, 34, 2),
        None,
        "<root>/NMNISTsmall/{Train,Test}/<digit>/<number>.bin, placed by "
        "`python -m aoi place-nmnist-small <slayerPytorch>/test/test_files/NMNISTsmall`",
        "github.com/bamsumit/slayerPytorch, folder test/test_files/NMNISTsmall",
        ("Train", "Test"),
        "N-MNIST's split: the first 1,000 of its training set (Train), the first 100 of its test set (Test)",
        "[0-9]/*.bin",
    ),
}


def check_files(name: str, root: Path, split: str) -> None:
    """Raise the one-line missing-files error unless the files tonic will read are on disk."""
    spec = LAYOUTS[name]
    base = root / spec.reader / spec.class_folder
    if name == "cifar10dvs":
        folders = [base / c for c in CIFAR10DVS_CLASSES]
    elif spec.split_folders:
        folders = [base / spec.split_folders[split == "test"]]
    else:
        folders = [base]
    if not all(f.is_dir() and next(f.glob(spec.files or f"**/*{spec.suffix}"), None) for f in folders):
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


def translation_limits(sensor_size: tuple[int, int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Largest random shift (dy, dx) of frames of ``size`` (H, W): TRANSLATE_PX at the sensor's
    resolution (W, H, P), scaled."""
    width, height, _ = sensor_size
    return round(TRANSLATE_PX * size[0] / height), round(TRANSLATE_PX * size[1] / width)


def frame_events(
    events: np.ndarray, sensor_size: tuple[int, int, int], T: int, size: tuple[int, int], window_us: int | None
) -> torch.Tensor:
    """One recording (tonic structured array x, y, t [us], p) as float32 frames [T, P, H', W']:
    events outside the sensor (W, H, P) dropped, only the first ``window_us`` kept (None: all),
    counted in T time bins, resized to ``size`` (H', W')."""
    width, height, _ = sensor_size
    keep = (events["x"] < width) & (events["y"] < height)
    if window_us is not None and len(events):
        times = events["t"].astype(np.int64)
        keep &= times - times.min() < window_us
    return resize(events_to_frames(events[keep], sensor_size, T), size)


def outside_sensor(events: np.ndarray, sensor_size: tuple[int, int, int]) -> bool:
    """Whether any event (x, y, t, p) has x or y below 0 or, on a sensor of P > 1 polarities, a
    polarity outside 0..P-1 (events beyond the width or height are dropped by `frame_events`)."""
    if not len(events):
        return False
    polarity, polarities = events["p"], sensor_size[2]
    negative = events["x"].min() < 0 or events["y"].min() < 0
    return bool(negative or (polarities > 1 and not 0 <= polarity.min() <= polarity.max() < polarities))


def cache_params(name: str, T: int, sensor_size, size, window_us: int | None, **settings) -> dict:
    """Every setting that shapes the frames of dataset ``name`` (the cache key hashes them)."""
    params = {"format": CACHE_FORMAT, "dataset": name, "T": T, "sensor_size": sensor_size, "size": size}
    return {**params, "window_us": window_us, "resize": "bilinear-antialias", **settings}


def open_cache(root: Path, params: dict) -> Path:
    """The frame cache folder `<cache root>/cache/<dataset>/<key>/` of ``params`` (recorded in it),
    for the data root `root`."""
    cache_dir = cache_root(root) / "cache" / params["dataset"] / params_key(params)
    if not has_params(cache_dir, params):
        write_params(cache_dir, params)
    return cache_dir


class EventFileSource:
    """Recordings read by a tonic dataset; item j -> (frames [T, P, H', W'] float32, label).

    ``files``: each recording's file (None: held in memory). Frames are made by `frame_events` and
    kept in ``cache_dir`` (None: never cached); with ``max_shift`` (dy, dx) every item is
    translated at random (training augmentation).
    """

    def __init__(
        self,
        reader,
        positions,
        names,
        files,
        labels,
        sensor_size: tuple[int, int, int],
        window_us: int | None,
        T: int,
        size: tuple[int, int],
        cache_dir: Path | None,
        max_shift: tuple[int, int] | None = None,
    ):
        self.reader, self.positions, self.names, self.files = reader, list(positions), list(names), list(files)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.sensor_size, self.window_us, self.T, self.size = sensor_size, window_us, T, size
        self.cache_dir, self.max_shift = cache_dir, max_shift

    def cache_path(self, j: int) -> Path:
        """Recording j's cache file: its name, then (when it is a file) the file's size and mtime."""
        name = self.names[j].replace("/", "__")
        if self.files[j] is not None:
            stat = os.stat(self.files[j])
            name += f".{stat.st_size}.{stat.st_mtime_ns}"
        return self.cache_dir / f"{name}.npy"

    def events(self, j: int) -> np.ndarray:
        """Recording j as a tonic structured array (x, y, t, p); a file must parse and hold events."""
        file = self.files[j]
        try:
            events, _ = self.reader[self.positions[j]]
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except BaseException as exc:  # BaseException: the AEDAT4 decoder panics on a corrupt file
            if file is None:
                raise
            raise unreadable(file, exc, REPLACE) from exc
        if getattr(events, "dtype", None) is None or not {"x", "y", "t", "p"} <= set(events.dtype.names or ()):
            raise BadEvents(
                f"sample {self.names[j]} is {type(events).__name__}, not events (a structured array with x, y, t, "
                "p): create the tonic dataset without a transform that frames the events"
            )
        if file is not None and len(events) == 0:
            raise unreadable(file, "no events", REPLACE)
        if outside_sensor(events, self.sensor_size):
            raise BadEvents(
                f"sample {self.names[j]} holds events outside the sensor (W, H, P) = {self.sensor_size}: x or y "
                f"below 0, or a polarity outside 0..{self.sensor_size[2] - 1}: fix the events or the sensor_size"
            )
        return events

    def frames(self, j: int) -> torch.Tensor:
        """The resized frames of recording j (from the cache when present)."""
        path = None if self.cache_dir is None else self.cache_path(j)
        if path is not None and path.exists():
            shape = (self.T, self.sensor_size[2], *self.size)
            return torch.from_numpy(load_array(path, np.float32, shape, "delete it and run again"))
        frames = frame_events(self.events(j), self.sensor_size, self.T, self.size, self.window_us)
        if path is not None:
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
    reader = reader_cls(str(root), train=split == "train") if spec.split_folders else reader_cls(str(root))
    base = Path(reader.location_on_system, spec.class_folder)
    names = [Path(p).relative_to(base).as_posix() for p in reader.data]
    classes = [n.split("/")[0] for n in names]
    if spec.split_folders:  # the reader holds one split; tonic's label (DVS128 Gesture: the file name)
        positions = sorted(range(len(names)), key=names.__getitem__)
        labels = [int(reader.targets[p]) for p in positions]
        split_names = [names[p] for p in positions]
        digest = split_hash(split_names, []) if split == "train" else split_hash([], split_names)
    else:
        train, test = nine_to_one_split(names, classes)
        positions = train if split == "train" else test
        class_index = {c: i for i, c in enumerate(sorted(set(classes)))}
        labels = [class_index[classes[p]] for p in positions]
        digest = split_hash([names[p] for p in train], [names[p] for p in test])
    size = info.input_shape[1:]
    params = cache_params(info.name, T, spec.sensor_size, size, spec.window_us)
    cache_dir = open_cache(root, params)
    max_shift = translation_limits(spec.sensor_size, size) if augment else None
    source = EventFileSource(
        reader,
        positions,
        [names[p] for p in positions],
        [reader.data[p] for p in positions],
        labels,
        spec.sensor_size,
        spec.window_us,
        T,
        size,
        cache_dir,
        max_shift,
    )
    provenance = {
        "split_rule": spec.split_rule,
        "split_hash": digest,
        "num_files": len(names),
        "num_classes_found": len(set(labels)),
        "cache_key": cache_dir.name,
        "cache": portable(cache_dir, cache_root(root)),
        "cache_params": params,
        "folder": portable(base, root),
    }
    return AoiDataset(source, info, T, provenance)
