"""Event-camera simulator: a static image seen by a sensor that moves along three saccades.

Like the recording of N-MNIST / N-Caltech101 (Orchard et al. 2015), the image moves over the
sensor along a triangle: first a horizontal sweep (only vertical edges fire), then two diagonal
sweeps, so the early events carry only part of the image. A pixel emits an ON (OFF) event each
time its log intensity rises (falls) by the contrast threshold since its last event (per-pixel
reference log intensity); a pixel is silent for a refractory period after each event, and
background noise events arrive at a small uniform rate. Times are in microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tonic.io import events_struct, make_structured_array

NUM_SACCADES = 3


@dataclass(frozen=True)
class SaccadeParams:
    """Simulator settings. Distances in sensor pixels, times in microseconds (us)."""

    sensor_size: int = 16  # square sensor, pixels per side
    image_size: int = 10  # the image is resized (bilinear) to image_size x image_size pixels
    image_offset_px: int = 1  # image's top-left corner on the sensor at the start
    saccade_amplitude_px: float = 4.0  # side length of the triangular saccade path
    saccade_duration_us: int = 100_000  # duration of each of the 3 saccades (bell speed profile)
    steps_per_saccade: int = 25  # simulation steps per saccade (here 4,000 us each)
    contrast_threshold: float = 0.45  # log-intensity change that triggers one event
    threshold_mismatch: float = 0.03  # relative std of the per-pixel threshold (fixed per sensor)
    refractory_us: int = 500  # minimum time between two events of one pixel
    intensity_floor: float = 0.3  # log(floor + intensity) keeps black pixels finite
    noise_rate_hz: float = 4.0  # background events per pixel per second
    seed: int = 0  # seeds the sensor's threshold pattern and each sample's noise

    def __post_init__(self):
        needed = self.image_offset_px + self.image_size + math.ceil(self.saccade_amplitude_px)
        if needed > self.sensor_size:
            raise ValueError(
                f"image (offset {self.image_offset_px} + size {self.image_size} + motion "
                f"{self.saccade_amplitude_px} px) does not fit a {self.sensor_size}-pixel sensor; "
                "enlarge sensor_size or reduce the others"
            )
        if self.contrast_threshold <= 0 or self.steps_per_saccade < 1:
            raise ValueError("contrast_threshold must be > 0 and steps_per_saccade >= 1")

    @property
    def duration_us(self) -> int:
        """Length of one recording in microseconds."""
        return NUM_SACCADES * self.saccade_duration_us

    @property
    def frame_sensor_size(self) -> tuple[int, int, int]:
        """(W, H, polarities), as tonic's ToFrame expects."""
        return (self.sensor_size, self.sensor_size, 2)


def saccade_path(params: SaccadeParams) -> np.ndarray:
    """Image displacement (dx, dy) in pixels at each step boundary: [3 * steps + 1, 2].

    Triangle A=(0,0) -> B=(a,0) -> C=(a/2,a) -> A. Along each leg the speed follows a bell
    (position (1 - cos(pi s)) / 2 for s in [0, 1]): slow at the start and end of a saccade, as
    an eye's, so the first milliseconds carry few events. It is zero only at the corners.
    """
    a = params.saccade_amplitude_px
    corners = np.array([[0.0, 0.0], [a, 0.0], [a / 2, a], [0.0, 0.0]])
    s = np.linspace(0.0, 1.0, params.steps_per_saccade + 1)[1:, None]
    frac = (1 - np.cos(np.pi * s)) / 2
    legs = [corners[i] + frac * (corners[i + 1] - corners[i]) for i in range(NUM_SACCADES)]
    return np.concatenate([corners[:1], *legs])


def _shift(canvas: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[..., y, x] = canvas[..., y - dy, x - dx] for dy, dx >= 0, zero fill."""
    out = np.zeros_like(canvas)
    h, w = canvas.shape[-2:]
    out[..., dy:, dx:] = canvas[..., : h - dy, : w - dx]
    return out


def _render(canvas: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The canvas [N, S, S] moved by a sub-pixel displacement (bilinear interpolation)."""
    ix, iy = math.floor(dx), math.floor(dy)
    fx, fy = dx - ix, dy - iy
    return (
        (1 - fy) * (1 - fx) * _shift(canvas, iy, ix)
        + (1 - fy) * fx * _shift(canvas, iy, ix + 1)
        + fy * (1 - fx) * _shift(canvas, iy + 1, ix)
        + fy * fx * _shift(canvas, iy + 1, ix + 1)
    )


def _place_on_sensor(images: np.ndarray, params: SaccadeParams) -> np.ndarray:
    """Images [N, H, W] in [0, 1] resized and placed at the start position: [N, S, S]."""
    resized = (
        F.interpolate(
            torch.as_tensor(images, dtype=torch.float32)[:, None],
            size=(params.image_size, params.image_size),
            mode="bilinear",
            align_corners=False,
        )[:, 0]
        .clamp(0, 1)
        .numpy()
    )
    canvas = np.zeros((len(images), params.sensor_size, params.sensor_size), np.float32)
    o, s = params.image_offset_px, params.image_size
    canvas[:, o : o + s, o : o + s] = resized
    return canvas


def _pixel_thresholds(params: SaccadeParams) -> np.ndarray:
    """Per-pixel contrast thresholds [S, S]: the sensor's fixed pattern, set by params.seed."""
    rng = np.random.default_rng([params.seed, 0xC0FFEE])
    gain = 1 + params.threshold_mismatch * rng.standard_normal((params.sensor_size,) * 2)
    return (params.contrast_threshold * np.maximum(gain, 0.5)).astype(np.float32)


def _signal_events(images: np.ndarray, params: SaccadeParams) -> tuple[np.ndarray, ...]:
    """Motion events of a batch, as flat arrays (sample, x, y, t_us, p), unsorted."""
    canvas = _place_on_sensor(images, params)
    threshold = np.broadcast_to(_pixel_thresholds(params), canvas.shape).ravel()
    path = saccade_path(params)
    step_us = params.saccade_duration_us / params.steps_per_saccade

    def log_intensity(k):  # flat [N * S * S]
        return np.log(params.intensity_floor + _render(canvas, *path[k])).ravel()

    reference = log_intensity(0)  # per-pixel log intensity at its last event
    last_event_us = np.full(reference.shape, -np.inf, np.float32)
    current = reference.copy()
    found = []
    for k in range(1, len(path)):
        start, end = current, log_intensity(k)
        t_start = (k - 1) * step_us
        while True:  # one threshold crossing per pixel per pass, in time order
            pixels = np.flatnonzero(np.abs(end - reference) >= threshold)
            if pixels.size == 0:
                break
            begin, change = start[pixels], end[pixels] - start[pixels]
            sign = np.sign(end[pixels] - reference[pixels])
            level = reference[pixels] + sign * threshold[pixels]
            moving = change != 0  # crossing time by linear interpolation within the step
            frac = np.where(moving, np.clip((level - begin) / np.where(moving, change, 1), 0, 1), 0)
            t = t_start + frac * step_us
            fire = t - last_event_us[pixels] >= params.refractory_us
            if not fire.any():
                break
            pixels = pixels[fire]
            n, y, x = np.unravel_index(pixels, canvas.shape)
            found.append((n, x, y, t[fire], sign[fire] > 0))
            reference[pixels] = level[fire]
            last_event_us[pixels] = t[fire]
        current = end
    if not found:
        return tuple(np.zeros(0, dt) for dt in (np.int64, np.int64, np.int64, np.float64, bool))
    return tuple(np.concatenate(parts) for parts in zip(*found))


def _noise_events(rng: np.random.Generator, params: SaccadeParams) -> tuple[np.ndarray, ...]:
    """Uniform background events (x, y, t_us, p) for one recording."""
    pixels = params.sensor_size**2
    count = rng.poisson(params.noise_rate_hz * pixels * params.duration_us * 1e-6)
    return (
        rng.integers(0, params.sensor_size, count),
        rng.integers(0, params.sensor_size, count),
        rng.uniform(0, params.duration_us, count),
        rng.random(count) < 0.5,
    )


def simulate_saccades_batch(
    images: np.ndarray, rngs: list[np.random.Generator], params: SaccadeParams
) -> list[np.ndarray]:
    """Simulate one recording per image (vectorised over the batch).

    images: [N, H, W] float in [0, 1]; rngs: one noise generator per image.
    Returns N tonic structured arrays (x, y int16; t int64 us; p bool, True = ON), sorted by t.
    A sample's events depend only on its image, its rng and params, not on the batch.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or len(images) != len(rngs):
        raise ValueError("images must be [N, H, W] with one rng per image")
    n, x, y, t, p = _signal_events(images, params)
    order = np.lexsort((t, n))
    n, x, y, t, p = n[order], x[order], y[order], t[order], p[order]
    bounds = np.searchsorted(n, np.arange(len(images) + 1))
    recordings = []
    for i, rng in enumerate(rngs):
        s = slice(bounds[i], bounds[i + 1])
        nx, ny, nt, np_ = _noise_events(rng, params)
        all_t = np.rint(np.concatenate([t[s], nt])).astype(np.int64)
        by_time = np.argsort(all_t, kind="stable")
        recordings.append(
            make_structured_array(
                np.concatenate([x[s], nx])[by_time],
                np.concatenate([y[s], ny])[by_time],
                all_t[by_time],
                np.concatenate([p[s], np_])[by_time],
                dtype=events_struct,
            )
        )
    return recordings


def simulate_saccades(image: np.ndarray, rng: np.random.Generator, params: SaccadeParams) -> np.ndarray:
    """Events of one image [H, W] in [0, 1]: a tonic structured array (x, y, t [us], p), sorted by t."""
    return simulate_saccades_batch(np.asarray(image)[None], [rng], params)[0]
