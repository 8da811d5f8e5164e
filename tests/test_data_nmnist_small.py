"""slayerPytorch's NMNISTsmall (1,100 N-MNIST recordings), written by the tests in the real .bs2
format with its label files: checked, placed, read as `nmnist-small`, cross-validated. No network,
no real recordings needed."""

import shutil

import numpy as np
import pytest
from test_data_tonic import encode_nmnist

from aoi.__main__ import main
from aoi.data import DatasetNotFoundError, get_dataset
from aoi.data.nmnist_small import place
from aoi.errors import UserError
from aoi.files import UnreadableFile, UnwritableFile

pytestmark = pytest.mark.usefixtures("no_network")  # tests/conftest.py

NUMBERS = {"train1K.txt": range(1, 1001), "test100.txt": range(60001, 60101)}


def digit(number: int) -> int:
    return number * 7 % 10  # every digit, in no order


def recording(number: int) -> bytes:
    """Two events of recording ``number``: at (x, y) = (n % 34, n // 34 % 34), t = 0 and 1000 us."""
    x, y = number % 34, number // 34 % 34
    return encode_nmnist([x, x], [y, y], [1, 0], [0, 1000])


def write_source(folder):
    """NMNISTsmall as slayerPytorch has it: CRLF label files with a header, tab-separated."""
    folder.mkdir(parents=True)
    for name, numbers in NUMBERS.items():
        lines = ["#sample #class", *(f"{n}\t{digit(n)}" for n in numbers)]
        (folder / name).write_bytes(("\r\n".join(lines) + "\r\n").encode())
        for n in numbers:
            (folder / f"{n}.bs2").write_bytes(recording(n))
    return folder


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_source(tmp_path_factory.mktemp("slayerPytorch") / "NMNISTsmall")


@pytest.fixture(scope="module")
def placed(source, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    assert place(source, root) == (root / "NMNISTsmall", True)
    return root


def test_placing_lays_out_every_recording_as_the_nmnist_reader_reads_it(source, placed):
    folder = placed / "NMNISTsmall"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert len(files) == 1100 and files[0] == "Test/0/60010.bin" and f"Train/{digit(1)}/00001.bin" in files
    assert (folder / f"Train/{digit(1)}/00001.bin").read_bytes() == (source / "1.bs2").read_bytes()
    train, test = (get_dataset("nmnist-small", split, root=placed) for split in ("train", "test"))
    assert (len(train), len(test)) == (1000, 100)
    assert sorted(test.labels.tolist()) == sorted(digit(n) for n in NUMBERS["test100.txt"])
    assert test.source.names[0] == "Test/0/60010.bin" and test.labels[0] == 0
    frames, label = test[0]
    assert frames.shape == (10, 2, 34, 34) and label == 0
    assert frames[:, 1, 60010 // 34 % 34, 60010 % 34].sum() == 1  # its first event; tonic drops the last
    assert sorted(placed.iterdir()) == [folder, placed / "cache"]  # no partial copy left behind


def test_placing_again_leaves_the_same_files_alone(source, placed):
    before = (placed / "NMNISTsmall" / "Test" / "0" / "60010.bin").stat().st_mtime_ns
    assert place(source, placed) == (placed / "NMNISTsmall", False)
    assert (placed / "NMNISTsmall" / "Test" / "0" / "60010.bin").stat().st_mtime_ns == before


def test_a_folder_of_other_files_in_the_way_is_never_overwritten(source, tmp_path):
    (tmp_path / "NMNISTsmall").mkdir()
    (tmp_path / "NMNISTsmall" / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="exists and holds other files .* move it away"):
        place(source, tmp_path)
    assert (tmp_path / "NMNISTsmall" / "mine.txt").read_text() == "keep me"


def remove(folder, *names):
    for name in names:
        (folder / name).unlink()


def rewrite_label(folder, old: str, new: str):
    path = folder / "train1K.txt"
    path.write_bytes(path.read_bytes().replace(old.encode(), new.encode(), 1))


BROKEN = {  # what is wrong -> (how to break a good copy, error type, words of its message)
    "label file missing": (lambda f: remove(f, "test100.txt"), DatasetNotFoundError, "test100.txt not found"),
    "recordings missing": (
        lambda f: remove(f, "17.bs2", "60100.bs2"),
        DatasetNotFoundError,
        "2 of 1100 recordings missing (17.bs2, 60100.bs2)",
    ),
    "cut short": (
        lambda f: (f / "5.bs2").write_bytes(recording(5)[:-1]),
        UnreadableFile,
        "1 recordings are not N-MNIST's format: 5.bs2 (9 bytes, not whole 5-byte events)",
    ),
    "empty": (lambda f: (f / "6.bs2").write_bytes(b""), UnreadableFile, "6.bs2 (0 bytes, not whole 5-byte events)"),
    "another sensor": (
        lambda f: (f / "8.bs2").write_bytes(encode_nmnist([200], [3], [1], [0])),
        UnreadableFile,
        "8.bs2 (an address beyond N-MNIST's 34x34 sensor)",
    ),
    "a digit out of range": (
        lambda f: rewrite_label(f, "\r\n3\t1\r\n", "\r\n3\t12\r\n"),
        UnreadableFile,
        "train1K.txt line 4 is '3\\t12', not '<recording number> <digit 0-9>'",
    ),
    "a label missing": (
        lambda f: rewrite_label(f, "\r\n7\t9\r\n", "\r\n"),
        UnreadableFile,
        "does not label recordings 1-1000 after a '#' header (missing: 7; unexpected: none)",
    ),
}


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_wrong_or_incomplete_folder_is_one_line_naming_what_and_what_to_do(broken, source, tmp_path):
    copy = tmp_path / "NMNISTsmall"
    shutil.copytree(source, copy)
    damage, error, words = BROKEN[broken]
    damage(copy)
    with pytest.raises(error) as raised:
        place(copy, tmp_path / "data")
    message = str(raised.value)
    assert words in message and "\n" not in message
    assert "clone https://github.com/bamsumit/slayerPytorch" in message
    assert not (tmp_path / "data").exists()  # nothing placed


def test_the_command_places_and_says_so_or_fails_in_one_line(source, tmp_path, capsys):
    assert main(["place-nmnist-small", str(source), "--root", str(tmp_path / "data")]) == 0
    assert capsys.readouterr().out == (
        "1,100 N-MNIST recordings (1,000 of its training set, 100 of its test set) checked and placed in "
        f"{tmp_path / 'data' / 'NMNISTsmall'}\n"
    )
    with pytest.raises(SystemExit) as failed:
        main(["place-nmnist-small", str(tmp_path / "nothing")])
    assert str(failed.value) == (
        f"aoi place-nmnist-small: {tmp_path / 'nothing'} is not a folder: clone https://github.com/bamsumit/"
        "slayerPytorch (or a sparse checkout of test/test_files/NMNISTsmall) and pass that folder"
    )


def test_the_dataset_without_its_files_names_the_command_that_places_them(tmp_path):
    with pytest.raises(DatasetNotFoundError) as missing:
        get_dataset("nmnist-small", "train", root=tmp_path)
    assert "NMNISTsmall/{Train,Test}/<digit>/<number>.bin" in str(missing.value)
    assert "python -m aoi place-nmnist-small" in str(missing.value)


def test_cross_validation_tests_every_recording_once_and_validates_on_training_folds_only(placed):
    pool = np.array([digit(n) for n in NUMBERS["train1K.txt"]] + [digit(n) for n in NUMBERS["test100.txt"]])
    tested = []
    for fold in range(5):
        splits = {
            split: get_dataset("nmnist-small", split, root=placed, folds=5, fold=fold, validation=0.1)
            for split in ("train", "val", "test")
        }
        positions = {split: set(dataset.indices.tolist()) for split, dataset in splits.items()}
        assert positions["train"].isdisjoint(positions["test"]) and positions["val"].isdisjoint(positions["test"])
        assert positions["train"].isdisjoint(positions["val"])
        assert positions["train"] | positions["val"] | positions["test"] == set(range(1100))
        test = splits["test"]
        assert len(test) == 220 and test.provenance["fold"] == fold and test.provenance["folds"] == 5
        counts, expected = np.bincount(test.labels, minlength=10), np.bincount(pool, minlength=10) / 5
        assert ((np.floor(expected) <= counts) & (counts <= np.ceil(expected))).all()  # stratified
        assert splits["val"].provenance["fold_hash"] == test.provenance["fold_hash"]
        tested += sorted(positions["test"])
    assert sorted(tested) == list(range(1100))  # each recording tested exactly once


def test_a_data_root_that_cannot_be_written_is_one_line_and_leaves_nothing(source, tmp_path, read_only):
    read_only(tmp_path / "data")
    with pytest.raises(UnwritableFile, match="cannot write .*NMNISTsmall .*: make it writable, free some space"):
        place(source, tmp_path / "data")
    assert not (tmp_path / "data").exists()
