"""The files of one training run directory, checked before the run trains or anything is read
from it: the same config, a writable folder, the finished run's verified final weights, log.csv.

A finished run is final.json plus checkpoint.pt; its weights are those of final.json's
``weights_sha256``, and `load_final_checkpoint` refuses a checkpoint that does not hold them (a
byte flipped on disk, a file copied from another run), saying what to delete, before anything
is computed from it.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

from aoi.checkpoint import CheckpointError, load_checkpoint, nonfinite
from aoi.config import TrainConfig
from aoi.errors import UserError
from aoi.files import UnwritableFile, read_json, write_text


class RunMismatch(UserError, RuntimeError):
    """``run_dir`` holds a run with a different configuration."""


def check_writable(run_dir: Path) -> None:
    """Fail now, not after loading the data, when ``run_dir`` is a file or cannot be written to."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UnwritableFile(f"run directory {run_dir} is a file: choose another --run-dir or move the file away")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()
    except OSError as exc:
        raise UnwritableFile(
            f"cannot write to run directory {run_dir} ({exc.strerror or exc}): "
            "make it writable or choose another --run-dir"
        ) from exc


def check_same_config(path: Path, config: TrainConfig, stored: dict | None) -> None:
    """`RunMismatch` naming ``path`` and the differing values unless ``stored`` are ``config``'s values."""
    if stored != config.asdict():
        stored = stored or {}
        diff = {k: (stored.get(k), v) for k, v in config.asdict().items() if stored.get(k) != v}
        raise RunMismatch(
            f"{path} belongs to a run with a different config (stored, requested): {diff}; "
            "use another run directory or delete this one"
        )


def retrain(*paths: Path) -> str:
    """What to do when a finished run's weights are lost."""
    return f"delete {' and '.join(map(str, paths))}, then train the run again (same config and run directory)"


def load_final_checkpoint(run_dir: str | os.PathLike) -> dict:
    """The checkpoint of the finished run in ``run_dir``, its weights verified against final.json's
    ``weights_sha256`` (`aoi.checkpoint.load_checkpoint`).

    FileNotFoundError when the run is not finished (no final.json); `CheckpointError` saying what
    to delete when the checkpoint is missing, unreadable, corrupt, not the final weights or holds
    NaN or infinite weights.
    """
    run_dir = Path(run_dir)
    final_path, path = run_dir / "final.json", run_dir / "checkpoint.pt"
    final = read_json(final_path)
    if final is None:
        raise FileNotFoundError(
            f"{run_dir} holds no finished run (final.json and checkpoint.pt): "
            f"train it first with `python -m aoi train ... --run-dir {run_dir}`"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}, the final weights of a finished run, is missing: {retrain(final_path)}")
    weights, remedy = final.get("weights_sha256"), retrain(path, final_path)
    if not isinstance(weights, str):
        raise CheckpointError(f"{final_path} records no weights_sha256 to verify {path} by: {remedy}")
    checkpoint = load_checkpoint(path, remedy=remedy, weights=weights)
    bad = nonfinite(checkpoint["model"])
    if bad:
        raise CheckpointError(
            f"{path} holds NaN or infinite values ({', '.join(bad)}): the run diverged; "
            "train it with other settings (e.g. a lower lr) in a new run directory"
        )
    return checkpoint


def log_columns(T: int) -> list[str]:
    """The columns of log.csv for ``T`` steps."""
    steps = [f"test_acc_t{t}" for t in range(1, T + 1)]
    return ["epoch", "lr", "loss", "tet_loss", "str_loss", "train_acc", "test_acc", *steps, "seconds"]


def write_log(path: Path, log: list[dict], T: int) -> None:
    """Write the epoch rows ``log`` as log.csv, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=log_columns(T), lineterminator="\n")
    writer.writeheader()
    writer.writerows(log)
    write_text(path, buffer.getvalue())
