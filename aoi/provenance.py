"""Where and with what a result was made: git commit, package versions, machine.

One record format for training (config.json) and analysis (metrics.json), so two results can
be compared by what produced them. Bitwise reproducibility on CPU needs the same torch thread
count, which is part of the machine record.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("aoi", "torch", "torchvision", "snntorch", "tonic", "numpy", "numba", "pandas")


def git_commit() -> tuple[str, bool | None]:
    """(commit, dirty) of the repository holding this package, or ("unknown", None). Dirty means a
    tracked file differs from the commit, results/ and notebooks/ aside (a study rewrites their
    outputs; ./reproduce.sh checks the notebooks' code against the commit itself)."""
    root = Path(__file__).resolve().parent.parent
    try:
        run = {"cwd": root, "capture_output": True, "text": True, "timeout": 10, "check": True}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        outside = ["--", ".", ":(exclude)results", ":(exclude)notebooks"]
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", *outside], **run).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def package_version(package: str) -> str:
    """The installed version of ``package``, or "not installed"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine(device=None, world_size: int = 1) -> dict:
    """Platform, Python, CPU count, torch threads, and the torch ``device`` (GPU name on CUDA)."""
    import torch

    device = torch.device(device or "cpu")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "device": str(device),
        "world_size": world_size,
    }


def provenance(device=None, world_size: int = 1, **extra) -> dict:
    """git commit and dirtiness, package versions, `machine`, the time (UTC, key ``at``), and ``extra``."""
    commit, dirty = git_commit()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": {name: package_version(name) for name in PACKAGES},
        "machine": machine(device, world_size),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
