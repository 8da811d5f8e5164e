"""What the benchmark scripts share: where their CSVs go and the record of what made them.

Every CSV row carries the machine (CPU model, cores, torch threads, device), the versions that
matter and the git commit, so that a table is never read apart from where it was measured.
Results go to ``$OUT`` when that is set (a device machine's output folder), else to
results/benchmarks/.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import torch

from aoi.files import write_csv
from aoi.layout import REPO_ROOT
from aoi.provenance import cpu_model, git_commit, package_version

RESULTS = REPO_ROOT / "results" / "benchmarks"
VERSIONS = ("torch", "numba", "triton", "spikingjelly")


def results_dir() -> Path:
    """``$OUT`` if set, else results/benchmarks/."""
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else RESULTS


def commit() -> str:
    """The checkout's commit (12 digits), "+dirty" as `aoi.provenance.git_commit` defines it
    (a tracked file outside results/ and notebooks/ differs)."""
    head, dirty = git_commit()
    return head[:12] + ("+dirty" if dirty else "")


def provenance(device: torch.device) -> dict:
    """Columns for every row: machine, cores, torch threads, device, versions, commit, time (UTC)."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return {
        "machine": cpu_model(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": gpu or "cpu",
        **{name: package_version(name) for name in VERSIONS},
        "commit": commit(),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write(name: str, table: pd.DataFrame, device: torch.device) -> Path:
    """Write ``table`` with the `provenance` columns to <results_dir>/<name>.csv; return the path."""
    path = results_dir() / f"{name}.csv"
    write_csv(path, table.assign(**provenance(device)))
    print(f"wrote {path}")
    return path


class TriangleSpike(torch.autograd.Function):
    """H(v), v = u - theta, with the triangle surrogate max(0, 1 - |v|): the spike function most
    SNN code writes by hand, used by the plain per-step LIF loops the benchmarks compare against."""

    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad * (1.0 - v.abs()).clamp(min=0)
