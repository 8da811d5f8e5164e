"""Turning one sample into timesteps: direct encoding of images and event binning."""

from __future__ import annotations

import numpy as np
import torch
from tonic.transforms import ToFrame


def repeat_frames(image: torch.Tensor, T: int) -> torch.Tensor:
    """Direct encoding: the image [C, H, W] repeated T times -> float32 [T, C, H, W]."""
    return image.to(torch.float32).unsqueeze(0).repeat(T, 1, 1, 1)


class ImageArraySource:
    """Images held in memory [N, C, H, W] (float in [0, 1]), direct-encoded to [T, C, H, W]."""

    def __init__(self, images: torch.Tensor, labels, T: int):
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.T = T

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return repeat_frames(self.images[i], self.T), int(self.labels[i])


def events_to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], T: int) -> torch.Tensor:
    """Event counts in T equal time bins spanning the recording (tonic's ToFrame).

    events: tonic structured array with x, y, t (us), p; sensor_size: (W, H, P).
    Returns float32 [T, P, H, W] (all zeros when there are no events).
    """
    width, height, polarities = sensor_size
    if len(events) == 0:
        return torch.zeros(T, polarities, height, width)
    times = events["t"].astype(np.int64)
    if np.any(np.diff(times) < 0):
        events = events[np.argsort(times, kind="stable")]
    frames = ToFrame(sensor_size=sensor_size, n_time_bins=T)(events)
    return torch.from_numpy(frames.astype(np.float32))
