"""Time the saccade event-camera simulator on the ndigits and nfashion settings.

    python benchmarks/bench_simulator.py [--root DATA] [--fashion-samples 2000]

Prints dataset, samples, seconds, events/sample. ndigits runs on all 1,797 digits. nfashion
runs on the first Fashion-MNIST training images when the files are under the data root, else
on the digits upsampled to 28x28 (marked "proxy"); the full-set time is extrapolated linearly.
Nothing is cached: the simulator itself is timed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from aoi.data import digits, fashion
from aoi.data.base import resolve_root
from aoi.data.simulator import simulate_saccades_batch

FASHION_TOTAL = 70_000


def time_simulation(images: np.ndarray, params) -> tuple[float, float]:
    """(seconds, mean events per sample) to simulate `images` [N, H, W] in batches of 256."""
    start, events = time.perf_counter(), 0
    for s in range(0, len(images), 256):
        batch = images[s : s + 256]
        rngs = [np.random.default_rng([params.seed, s + k]) for k in range(len(batch))]
        events += sum(len(r) for r in simulate_saccades_batch(batch, rngs, params))
    return time.perf_counter() - start, events / len(images)


def fashion_images(root, count: int) -> tuple[np.ndarray, str]:
    if fashion.find_files(root, "train") is not None:
        return fashion.load(root, "train")[0][:count], "nfashion"
    small = torch.from_numpy(digits.load_split()[0][:, None])
    proxy = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)[:, 0].numpy()
    return np.resize(proxy, (count, 28, 28)), "nfashion (proxy: digits at 28x28)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="data root (default $AOI_DATA, else ./data)")
    parser.add_argument("--fashion-samples", type=int, default=2000)
    args = parser.parse_args()
    rows = []
    images = digits.load_split()[0]
    seconds, per_sample = time_simulation(images, digits.NDIGITS_PARAMS)
    rows.append(("ndigits", len(images), seconds, per_sample))
    images, label = fashion_images(resolve_root(args.root), args.fashion_samples)
    seconds, per_sample = time_simulation(images, fashion.NFASHION_PARAMS)
    rows.append((label, len(images), seconds, per_sample))
    rows.append(
        (f"{label.split()[0]} (extrapolated)", FASHION_TOTAL, seconds * FASHION_TOTAL / len(images), per_sample)
    )
    print(f"{'dataset':<40} {'samples':>8} {'seconds':>9} {'events/sample':>14}")
    for name, n, s, e in rows:
        print(f"{name:<40} {n:>8} {s:>9.1f} {e:>14.0f}")


if __name__ == "__main__":
    main()
