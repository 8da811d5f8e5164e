"""Tiny training runs driven through the command line, the ways a run's files go bad on disk (for
the guard tests), and what a run's records must not hold (a path of the machine that made them)."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest
import torch

from aoi.__main__ import main
from aoi.checkpoint import content_sha256

TINY = dict(dataset="digits", batch_size=16, limit_train=32, limit_test=16, device="cpu")


def train_args(run_dir, **values) -> list[str]:
    """The command line ``aoi train`` of TINY and ``values`` into ``run_dir``."""
    args = ["train", "--run-dir", str(run_dir), "--no-progress"]
    for name, value in {**TINY, **values}.items():
        args += ["--" + name.replace("_", "-"), str(value)]
    return args


def cli_error(*args) -> str:
    """The one line the command line exits with."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code


def copy_run(source, tmp_path) -> Path:
    return Path(shutil.copytree(source, tmp_path / "run"))


def flip_bits_inside(path: Path, tensor: torch.Tensor) -> None:
    """Flip the lowest bit of three float32 values in the middle of ``tensor``'s bytes inside the
    file ``path`` (a zip that torch reads without checking its CRC), as a bad disk or copy would:
    the values stay finite and torch loads them without a word."""
    raw = bytearray(path.read_bytes())
    data = tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
    at = raw.find(data)
    assert at > 0 and raw.find(data, at + 1) == -1, "the tensor's bytes must occur once in the file"
    middle = at + len(data) // 8 * 4
    for byte in (middle, middle + 4, middle + 8):
        raw[byte] ^= 1
    path.write_bytes(bytes(raw))


def signed(checkpoint: dict) -> dict:
    """``checkpoint`` (as torch.load gives it) with its checksum recomputed, as aoi writes one."""
    content = {key: value for key, value in checkpoint.items() if key != "sha256"}
    return {**content, "sha256": content_sha256(content)}


def read_log(run_dir) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def absolute_paths(record) -> list[str]:
    """Every string in the nested dicts and lists ``record`` that is an absolute path."""
    if isinstance(record, dict):
        return [path for value in record.values() for path in absolute_paths(value)]
    if isinstance(record, list):
        return [path for value in record for path in absolute_paths(value)]
    return [record] if isinstance(record, str) and os.path.isabs(record) else []
