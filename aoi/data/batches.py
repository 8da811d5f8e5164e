"""Batches for the engines: a DataLoader's [N, T, ...] samples, turned time-major."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm  # text bars in a terminal, widget bars in JupyterLab (ipywidgets)


def time_major_batches(
    loader: DataLoader, device: torch.device, progress: bool = False, desc: str = ""
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(inputs [T, N, C, H, W], targets [N])`` on ``device`` from a loader of [N, T, ...] batches."""
    for inputs, targets in tqdm(loader, desc=desc, leave=False, disable=not progress):
        yield (inputs.to(device, non_blocking=True).transpose(0, 1), targets.to(device, non_blocking=True))
