"""Event datasets made by the saccade simulator from image arrays, cached on disk.

The cache is a folder `<cache_root>/<key>/` with x.npy, y.npy (uint8), t.npy (int32, us),
p.npy (bool) holding every sample's events back to back, offsets.npy (int64 [N + 1]) and
params.json, written last. The key hashes the simulator parameters and the images' bytes, so
a changed parameter or image never serves a stale cache. The arrays are checked (dtype, lengths,
offsets) when the dataset opens: a corrupt cache is an `UnreadableFile`, never used.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tonic.io import events_struct, make_structured_array
from tqdm.auto import tqdm  # text bars in a terminal, widget bars in JupyterLab (ipywidgets)

from aoi.data.base import unreadable
from aoi.data.cache import has_params, load_array, params_key, save_array, writable_folder, write_params
from aoi.data.encoding import events_to_frames
from aoi.data.simulator import SaccadeParams, simulate_saccades_batch

CACHE_FORMAT = 1  # bump whenever the simulator's output changes for the same parameters
BATCH = 256  # images simulated together
FIELDS = {"x": np.uint8, "y": np.uint8, "t": np.int32, "p": bool}


def cache_params(images: np.ndarray, params: SaccadeParams) -> dict:
    """Everything the cached events depend on."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    return {
        "format": CACHE_FORMAT,
        "simulator": asdict(params),
        "images_sha256": digest,
        "images_shape": list(images.shape),
        "images_dtype": str(images.dtype),
    }


def generate(images: np.ndarray, params: SaccadeParams, folder: Path, desc: str) -> None:
    """Simulate every image [N, H, W] (sample i's noise seeded by (params.seed, i)), save to `folder`."""
    if params.sensor_size > 256:
        raise ValueError("the cache stores x, y as uint8: sensor_size must be <= 256")
    writable_folder(folder)
    chunks = {name: [] for name in FIELDS}
    counts = []
    for start in tqdm(range(0, len(images), BATCH), desc=f"simulating {desc}", unit="batch"):
        batch = images[start : start + BATCH]
        rngs = [np.random.default_rng([params.seed, start + k]) for k in range(len(batch))]
        for events in simulate_saccades_batch(batch, rngs, params):
            counts.append(len(events))
            for name, dtype in FIELDS.items():
                chunks[name].append(events[name].astype(dtype))
    for name in FIELDS:
        save_array(folder / f"{name}.npy", np.concatenate(chunks[name]))
    save_array(folder / "offsets.npy", np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def open_arrays(folder: Path, count: int) -> dict[str, np.ndarray]:
    """The cached events of `count` samples, memory-mapped; `UnreadableFile` when they do not fit together."""
    todo = f"delete the folder {folder} and run again (it is simulated anew)"
    offsets = load_array(folder / "offsets.npy", np.int64, (count + 1,), todo, "r")
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise unreadable(folder / "offsets.npy", "offsets do not rise from 0", todo)
    total = (int(offsets[-1]),)
    return {"offsets": offsets, **{n: load_array(folder / f"{n}.npy", t, total, todo, "r") for n, t in FIELDS.items()}}


class SimulatedEventSource:
    """Simulated recordings of `images` [N, H, W] in [0, 1]; item i -> (frames [T, 2, S, S], label)."""

    def __init__(self, images: np.ndarray, labels, params: SaccadeParams, cache_root: Path, T: int, desc: str):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.params = params
        self.T = T
        self.cache_params = cache_params(images, params)
        self.cache_key = params_key(self.cache_params)
        self.folder = Path(cache_root) / self.cache_key
        if not has_params(self.folder, self.cache_params):
            generate(images, params, self.folder, desc)
            write_params(self.folder, self.cache_params)
        open_arrays(self.folder, len(self.labels))  # a corrupt cache fails here, not in a loader worker
        self._arrays = None

    def __getstate__(self):  # memory maps are reopened in each worker process
        return {**self.__dict__, "_arrays": None}

    def events(self, i: int) -> np.ndarray:
        """Recording i as a tonic structured array (x, y, t [us], p)."""
        if self._arrays is None:
            self._arrays = open_arrays(self.folder, len(self.labels))
        a = self._arrays
        s = slice(int(a["offsets"][i]), int(a["offsets"][i + 1]))
        return make_structured_array(a["x"][s], a["y"][s], a["t"][s], a["p"][s], dtype=events_struct)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return events_to_frames(self.events(i), self.params.frame_sensor_size, self.T), int(self.labels[i])
