"""Files: atomic writes (a crash never leaves a half-written file), JSON and CSV.

Every writer goes through `atomic_path`: it yields a temporary path in the destination's
folder and, only when the block finishes without error, renames it over the destination
(`os.replace`, atomic on POSIX). On error the temporary file is removed and the old
destination, if any, is untouched; a folder that cannot be written to or a full disk is an
`UnwritableFile` naming the file. JSON has no NaN: `write_json` stores NaN and infinities as null.

A run's metrics.json carries a digest of its own content in its provenance (`sealed_metrics`,
written by `aoi.analysis`), so that a number edited by hand afterwards is caught where it is read
(`verified_metrics`): the provenance vouches only for what aoi computed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from aoi.errors import UserError


class UnreadableFile(UserError, ValueError):
    """A file that exists but cannot be parsed (the message names it and what to do)."""


class UnwritableFile(UserError, OSError):
    """A file that cannot be written: full disk, no permission, a folder that is a file."""


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unwritable(path: Path, exc: OSError) -> UnwritableFile:
    remedy = "free some disk space" if exc.errno in _DISK_FULL else "make its folder writable or write elsewhere"
    return UnwritableFile(f"cannot write {path} ({exc.strerror or exc}): {remedy}, then run again")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path that replaces `path` when the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    os.close(fd)
    tmp = Path(tmp)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        try:
            yield tmp
        except OSError as exc:  # the block's own errors pass, except a full disk
            if exc.errno not in _DISK_FULL or isinstance(exc, UserError):
                raise
            raise _unwritable(path, exc) from exc
        _replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _replace(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk and rename it over ``path``."""
    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _unwritable(path, exc) from exc


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_safe(obj):
    """`obj` with every NaN or infinite float (in nested dicts and lists) replaced by None."""
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj) -> None:
    """Write `obj` as indented JSON to `path` atomically (NaN and infinities as null)."""
    write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in `path`, or None when the file does not exist; `UnreadableFile` when corrupt."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableFile(f"{path} is unreadable ({exc}): delete it and run again") from exc


METRICS_DIGEST = "metrics_sha256"  # the key, in metrics.json's provenance, of the digest of its content


def json_sha256(obj) -> str:
    """SHA-256 of ``obj`` as JSON (keys sorted, NaN and infinities as null): the same for an object and
    for what `write_json` then `read_json` give back."""
    return hashlib.sha256(json.dumps(json_safe(obj), sort_keys=True, default=str).encode()).hexdigest()


def sealed_metrics(metrics: dict) -> dict:
    """``metrics`` with the `json_sha256` of the rest of it in its "provenance" dict (key
    `METRICS_DIGEST`; the dict is made when there is none)."""
    provenance = {key: value for key, value in (metrics.get("provenance") or {}).items() if key != METRICS_DIGEST}
    content = {**metrics, "provenance": provenance}
    return {**content, "provenance": {**provenance, METRICS_DIGEST: json_sha256(content)}}


def verified_metrics(path: str | os.PathLike) -> dict | None:
    """The metrics.json at ``path`` (None when there is none) if it holds what aoi wrote: its content
    matches the digest in its provenance (`sealed_metrics`); else an `UnreadableFile` saying so."""
    metrics = read_json(path)
    if metrics is None:
        return None
    provenance = metrics.get("provenance") if isinstance(metrics, dict) else None
    recorded = provenance.get(METRICS_DIGEST) if isinstance(provenance, dict) else None
    if recorded is not None and recorded == sealed_metrics(metrics)["provenance"][METRICS_DIGEST]:
        return metrics
    problem = (
        "records no digest of its content (an older aoi or a hand wrote it)"
        if recorded is None
        else "was changed after aoi wrote it (its content does not match the digest in its provenance)"
    )
    run = metrics if isinstance(metrics, dict) else {}
    rerun = f"./reproduce.sh --profile {run.get('profile')} --only '{run.get('run_name')}' --force"
    raise UnreadableFile(
        f"{path} {problem}, so its provenance cannot vouch for its numbers: restore the file aoi wrote "
        f"(git checkout -- {path}) or compute the run again ({rerun})"
    )


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame to `path` as CSV (no index, floats to 6 significant digits), atomically."""
    write_text(path, frame.to_csv(index=False, float_format="%.6g"))


def save_torch(obj, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)` atomically."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)  # through Python's file, so a full disk is an OSError, not a RuntimeError
