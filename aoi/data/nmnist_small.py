"""1,100 real N-MNIST recordings for the `nmnist-small` dataset: checked and placed.

slayerPytorch (https://github.com/bamsumit/slayerPytorch, GPL-3.0) carries in its folder
``test/test_files/NMNISTsmall/`` the first 1,000 recordings of N-MNIST's training set
(``1.bs2`` ... ``1000.bs2``), the first 100 of its test set (``60001.bs2`` ... ``60100.bs2``) and
their labels (``train1K.txt``, ``test100.txt``: a ``#sample #class`` header, then one
``<number> <digit>`` line per recording). A .bs2 file has the layout of N-MNIST's .bin files
(5 bytes per event: x, y, polarity bit + 23-bit timestamp in microseconds), read by tonic's
N-MNIST reader (`aoi.data.tonic_readers`).

    python -m aoi place-nmnist-small path/to/slayerPytorch/test/test_files/NMNISTsmall

checks that every label and recording is there and parses (`check`), then copies the recordings
to ``<data root>/NMNISTsmall/{Train,Test}/<digit>/<number, 5 digits>.bin`` (`place`), the layout
of tonic's N-MNIST reader, which the `nmnist-small` dataset reads. Nothing is ever overwritten:
the copy is made in a temporary folder and renamed into place; a folder already there is left
alone when it holds exactly these files, else it is an error.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from pathlib import Path

import tonic.io

from aoi.data.base import DatasetNotFoundError, resolve_root
from aoi.data.tonic_readers import NMNIST
from aoi.errors import UserError
from aoi.files import UnreadableFile, UnwritableFile

SOURCE = "https://github.com/bamsumit/slayerPytorch"
SOURCE_FOLDER = "test/test_files/NMNISTsmall"
FOLDER = "NMNISTsmall"  # under the data root (tonic_readers.NMNISTsmall reads it)
SPLITS = {"Train": ("train1K.txt", range(1, 1001)), "Test": ("test100.txt", range(60001, 60101))}
SENSOR = 34  # N-MNIST's x and y are in [0, 34)
GET_THEM = f"clone {SOURCE} (or a sparse checkout of {SOURCE_FOLDER}) and pass that folder"
SHOWN = 5  # names listed in an error before "..."


def _names(items) -> str:
    items = list(items)
    return ", ".join(map(str, items[:SHOWN])) + (f", ... ({len(items)} in all)" if len(items) > SHOWN else "")


def read_labels(source: Path, split: str) -> dict[int, int]:
    """Recording number -> digit of ``split`` ("Train", "Test") from its label file in ``source``;
    a missing file, a line that does not parse, or numbers other than the expected ones is a
    one-line error naming the file."""
    name, expected = SPLITS[split]
    path = source / name
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} not found: {source} is not slayerPytorch's NMNISTsmall; {GET_THEM}")
    labels = {}
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines[1:], 2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not all(f.isdigit() for f in fields) or int(fields[1]) > 9 or int(fields[0]) in labels:
            raise UnreadableFile(
                f"{path} line {number} is {line.strip()!r}, not '<recording number> <digit 0-9>' of a new "
                f"recording: {GET_THEM}"
            )
        labels[int(fields[0])] = int(fields[1])
    if not lines or not lines[0].startswith("#") or set(labels) != set(expected):
        missing, extra = sorted(set(expected) - set(labels)), sorted(set(labels) - set(expected))
        raise UnreadableFile(
            f"{path} does not label recordings {expected.start}-{expected.stop - 1} after a '#' header "
            f"(missing: {_names(missing) or 'none'}; unexpected: {_names(extra) or 'none'}): {GET_THEM}"
        )
    return labels


def recording_problem(path: Path) -> str | None:
    """What makes ``path`` not an N-MNIST recording (None: it is one): no whole 5-byte events, no
    events, or an address outside the 34x34 sensor."""
    size = path.stat().st_size
    if size == 0 or size % 5:
        return f"{size} bytes, not whole 5-byte events"
    events = tonic.io.read_mnist_file(str(path), dtype=NMNIST.dtype)
    if len(events) == 0:
        return "no events"
    if max(events["x"].max(), events["y"].max()) >= SENSOR:
        return f"an address beyond N-MNIST's {SENSOR}x{SENSOR} sensor"
    return None


def check(source: str | os.PathLike) -> dict[str, dict[int, int]]:
    """Every label and recording of slayerPytorch's NMNISTsmall in ``source``: split ("Train",
    "Test") -> recording number -> digit. A missing folder, label file or recording, or a file
    that is not in N-MNIST's format, is a one-line error saying what and what to do."""
    source = Path(source).expanduser()
    if not source.is_dir():
        raise DatasetNotFoundError(f"{source} is not a folder: {GET_THEM}")
    labels = {split: read_labels(source, split) for split in SPLITS}
    files = [source / f"{number}.bs2" for split in SPLITS for number in labels[split]]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        listed = f"{len(missing)} of {len(files)} recordings missing ({_names(missing)})"
        raise DatasetNotFoundError(f"{source}: {listed}: {GET_THEM}")
    bad = [(f.name, problem) for f in files if (problem := recording_problem(f))]
    if bad:
        listed = _names(f"{name} ({problem})" for name, problem in bad)
        raise UnreadableFile(f"{source}: {len(bad)} recordings are not N-MNIST's format: {listed}; {GET_THEM}")
    return labels


def layout(labels: dict[str, dict[int, int]]) -> dict[str, str]:
    """Placed path (under the FOLDER) -> source file name, e.g. "Train/5/00001.bin" -> "1.bs2"."""
    return {
        f"{split}/{digit}/{number:05d}.bin": f"{number}.bs2"
        for split, numbers in labels.items()
        for number, digit in numbers.items()
    }


def place(source: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """Check ``source`` (`check`) and copy its recordings to ``<root>/NMNISTsmall`` (root: the data
    root, default $AOI_DATA, else ./data). Returns (that folder, whether it was copied now: False
    when it already held exactly these files). A folder there with other content is an error."""
    source = Path(source).expanduser()
    files = layout(check(source))
    target = resolve_root(root) / FOLDER
    if target.exists():
        present = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
        if present == sorted(files) and all(filecmp.cmp(target / p, source / files[p], shallow=False) for p in files):
            return target, False
        raise UserError(
            f"{target} exists and holds other files than the {len(files)} recordings of {source}: "
            "move it away (aoi never overwrites data), then run again"
        )
    try:
        _copy(source, files, target)
    except OSError as exc:
        remedy = "make it writable, free some space or pass --root"
        raise UnwritableFile(f"cannot write {target} ({exc.strerror or exc}): {remedy}") from exc
    return target, True


def _copy(source: Path, files: dict[str, str], target: Path) -> None:
    """Copy ``files`` (placed path -> source name) into a temporary folder beside ``target``, then
    rename it to ``target``; on any failure the temporary folder is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.", dir=target.parent))
    try:
        for placed, name in files.items():
            (partial / placed).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, partial / placed)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
