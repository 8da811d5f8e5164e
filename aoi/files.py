"""Files: atomic writes (a crash never leaves a half-written file), JSON and CSV.

Every writer goes through `atomic_path`: it yields a temporary path in the destination's
folder and, only when the block finishes without error, renames it over the destination
(`os.replace`, atomic on POSIX). On error the temporary file is removed and the old
destination, if any, is untouched; a folder that cannot be written to or a full disk is an
`UnwritableFile` naming the file. JSON has no NaN: `write_json` stores NaN and infinities as null.
"""

from __future__ import annotations

import contextlib
import errno
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


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame to `path` as CSV (no index, floats to 6 significant digits), atomically."""
    write_text(path, frame.to_csv(index=False, float_format="%.6g"))


def save_torch(obj, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)` atomically."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)  # through Python's file, so a full disk is an OSError, not a RuntimeError
