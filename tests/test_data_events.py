"""Event datasets read with tonic from small files in the real formats: DVS128 Gesture npy,
N-Caltech101 40-bit .bin, CIFAR10-DVS through a patched AEDAT4 reader. No network."""

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import tonic.datasets.cifar10dvs
import torch
from repository import snapshot

from aoi.data import DatasetNotFoundError, get_dataset, tonic_readers
from aoi.data.events import translate
from aoi.errors import UserError
from aoi.files import UnreadableFile

pytestmark = pytest.mark.usefixtures("no_network")  # tests/conftest.py


def encode_bin(x, y, p, t):
    """N-Caltech101 / N-MNIST 40-bit events: x 8 bits, y 8 bits, p 1 bit, t 23 bits (us)."""
    x, y, p, t = (np.asarray(a, np.uint32) for a in (x, y, p, t))
    return np.stack([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF], axis=1).astype(np.uint8).tobytes()


def test_bin_encoding_matches_hand_computed_bytes():
    assert encode_bin([10], [20], [1], [0x012345]) == bytes([10, 20, 0x81, 0x23, 0x45])


NCALTECH_FILES = {"BACKGROUND_Google": 11, "accordion": 3, "airplanes": 2}


def random_bin(rng, n=300) -> bytes:
    t = np.sort(rng.integers(0, 300_000, n))
    return encode_bin(rng.integers(3, 230, n), rng.integers(3, 170, n), rng.integers(0, 2, n), t)


def write_ncaltech(root):
    rng = np.random.default_rng(0)
    for cls, count in NCALTECH_FILES.items():
        folder = root / "NCALTECH101" / "Caltech101" / cls
        folder.mkdir(parents=True)
        for k in range(1, count + 1):
            (folder / f"image_{k:04d}.bin").write_bytes(random_bin(rng))
    return root


@pytest.fixture
def ncaltech_root(tmp_path):
    return write_ncaltech(tmp_path)


def test_bin_files_decode_through_tonic(tmp_path):
    folder = tmp_path / "NCALTECH101" / "Caltech101" / "accordion"
    folder.mkdir(parents=True)
    (folder / "image_0001.bin").write_bytes(encode_bin([5, 10], [7, 20], [0, 1], [100, 0x012345]))
    events, label = tonic_readers.NCALTECH101(str(tmp_path))[0]
    assert label == "accordion"
    assert events["x"].tolist() == [0, 5] and events["y"].tolist() == [0, 13]  # tonic subtracts the minimum
    assert events["t"].tolist() == [100, 0x012345] and events["p"].tolist() == [0, 1]


def test_ncaltech_split_is_stratified_and_its_hash_is_hand_computable(ncaltech_root):
    train = get_dataset("ncaltech101", "train", root=ncaltech_root)
    test = get_dataset("ncaltech101", "test", root=ncaltech_root)
    test_names = [
        "BACKGROUND_Google/image_0001.bin",
        "BACKGROUND_Google/image_0011.bin",
        "accordion/image_0001.bin",
        "airplanes/image_0001.bin",
    ]
    all_names = [f"{c}/image_{k:04d}.bin" for c, n in NCALTECH_FILES.items() for k in range(1, n + 1)]
    train_names = sorted(set(all_names) - set(test_names))
    text = "\n".join(["train", *train_names, "test", *test_names]) + "\n"
    assert test.provenance["split_hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert train.provenance["split_hash"] == test.provenance["split_hash"]
    assert test.source.names == test_names and (len(train), len(test)) == (12, 4)
    assert test.labels.tolist() == [0, 0, 1, 2]  # sorted class names; BACKGROUND_Google sorts first
    frames, label = test[2]
    assert frames.shape == (10, 2, 48, 48) and frames.dtype == torch.float32 and label == 1
    assert train.provenance["augment"] is True and test.provenance["augment"] is False


def test_adding_a_file_changes_the_split_hash(ncaltech_root):
    before = get_dataset("ncaltech101", "test", root=ncaltech_root).provenance["split_hash"]
    folder = ncaltech_root / "NCALTECH101" / "Caltech101" / "accordion"
    (folder / "image_0004.bin").write_bytes(encode_bin([1, 2], [1, 2], [0, 1], [0, 10]))
    after = get_dataset("ncaltech101", "test", root=ncaltech_root).provenance["split_hash"]
    assert before != after


def test_frames_are_cached_and_a_changed_T_is_never_served_stale(ncaltech_root, monkeypatch):
    first = get_dataset("ncaltech101", "test", root=ncaltech_root)
    frames = first[0][0]
    monkeypatch.setattr(tonic_readers.NCALTECH101, "__getitem__", lambda self, i: 1 / 0)
    assert torch.equal(get_dataset("ncaltech101", "test", root=ncaltech_root)[0][0], frames)  # from the cache
    monkeypatch.undo()
    five = get_dataset("ncaltech101", "test", root=ncaltech_root, T=5)
    assert five.provenance["cache_key"] != first.provenance["cache_key"]
    assert five[0][0].shape == (5, 2, 48, 48)


def test_translation_moves_all_frames_alike_with_zero_fill():
    frames = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    moved = translate(frames, 1, -2)
    assert torch.equal(moved[:, :, 1:, :2], frames[:, :, :3, 2:])
    assert moved[:, :, 0].abs().sum() == 0 and moved[:, :, :, 2:].abs().sum() == 0


def test_training_augmentation_shifts_the_frames(ncaltech_root):
    train = get_dataset("ncaltech101", "train", root=ncaltech_root)
    plain = get_dataset("ncaltech101", "train", root=ncaltech_root, augment=False)
    torch.manual_seed(0)
    assert any(not torch.equal(train[0][0], plain[0][0]) for _ in range(5))
    assert train.source.max_shift == (7, 5)  # 25 px scaled from 180x240 to 48x48


def write_gesture(root, user, lighting, labels, late_corner=False):
    folder = root / "DVSGesture" / ("ibmGestureTrain" if user < 24 else "ibmGestureTest") / f"user{user:02d}_{lighting}"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(user)
    for label in labels:
        n = 400
        events = np.stack(
            [rng.integers(0, 64, n), rng.integers(0, 64, n), rng.integers(0, 2, n), np.sort(rng.integers(0, 1200, n))],
            axis=1,
        )  # x, y, p, t [ms]
        if late_corner:  # events after 1.3 s, all in the bottom-right corner
            late = np.array([[127, 127, 1, 1500 + k] for k in range(50)])
            events = np.concatenate([events, late])
        np.save(folder / f"{label}.npy", events.astype(np.int64))


def test_dvsgesture_user_split_and_first_1300ms(tmp_path):
    write_gesture(tmp_path, 1, "fluorescent", range(11), late_corner=True)
    write_gesture(tmp_path, 2, "led", [0, 5])
    write_gesture(tmp_path, 24, "natural", [3, 10])
    train = get_dataset("dvsgesture", "train", root=tmp_path, augment=False)
    test = get_dataset("dvsgesture", "test", root=tmp_path)
    assert (len(train), len(test)) == (13, 2)
    assert sorted(test.labels.tolist()) == [3, 10]
    frames, label = train[0]
    assert frames.shape == (16, 2, 48, 48) and frames.dtype == torch.float32 and label == 0
    assert frames[..., 30:, 30:].sum() == 0 and frames.sum() > 0  # the late corner events are cut
    assert train.provenance["split_hash"] != test.provenance["split_hash"]


def write_cifar10dvs(root):
    """Two empty .aedat4 files per class (the tests patch the reader or expect them refused)."""
    for cls in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]:
        folder = root / "CIFAR10DVS" / cls
        folder.mkdir(parents=True)
        for k in range(2):
            (folder / f"cifar10_{cls}_{k}.aedat4").write_bytes(b"")
    return root


def test_cifar10dvs_reads_aedat4_through_a_patched_reader(tmp_path, monkeypatch):
    write_cifar10dvs(tmp_path)
    dtype = np.dtype([("t", np.uint64), ("x", np.uint16), ("y", np.uint16), ("p", bool)])

    def fake_read_aedat4(path):
        events = np.zeros(500, dtype)
        events["t"] = np.arange(500) * 1000
        events["x"], events["y"] = np.arange(500) % 128, (np.arange(500) * 7) % 128
        events["p"] = np.arange(500) % 2
        return events

    monkeypatch.setattr(tonic.datasets.cifar10dvs, "read_aedat4", fake_read_aedat4)
    train = get_dataset("cifar10dvs", "train", root=tmp_path)
    test = get_dataset("cifar10dvs", "test", root=tmp_path)
    assert (len(train), len(test)) == (10, 10)
    assert test.source.names[:2] == ["airplane/cifar10_airplane_0.aedat4", "automobile/cifar10_automobile_0.aedat4"]
    assert test.labels.tolist() == list(range(10))
    frames, label = test[3]
    assert frames.shape == (10, 2, 48, 48) and label == 3 and (frames.sum(dim=(1, 2, 3)) > 0).all()


@pytest.mark.parametrize(
    "name, layout",
    [
        ("cifar10dvs", "CIFAR10DVS/<class>/*.aedat4"),
        ("ncaltech101", "NCALTECH101/Caltech101/<class>/image_NNNN.bin"),
        ("dvsgesture", "DVSGesture/ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy"),
    ],
)
def test_missing_files_fail_in_one_line_naming_the_layout(name, layout, tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        get_dataset(name, "train", root=tmp_path)
    assert layout in str(error.value) and "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or created


def test_cifar10dvs_with_a_class_folder_missing_is_refused(tmp_path):
    for cls in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]:
        (tmp_path / "CIFAR10DVS" / cls).mkdir(parents=True)
        (tmp_path / "CIFAR10DVS" / cls / "a.aedat4").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="all 10 classes"):
        get_dataset("cifar10dvs", "test", root=tmp_path)


def test_a_recording_replaced_under_the_same_name_is_framed_anew(ncaltech_root, monkeypatch, tmp_path_factory):
    old = get_dataset("ncaltech101", "test", root=ncaltech_root)
    old_frames = [old[i][0] for i in range(len(old))]
    replaced = ncaltech_root / "NCALTECH101" / "Caltech101" / "accordion" / "image_0001.bin"  # test item 2
    replaced.write_bytes(random_bin(np.random.default_rng(1), n=200))
    read, real_getitem = [], tonic_readers.NCALTECH101.__getitem__
    monkeypatch.setattr(tonic_readers.NCALTECH101, "__getitem__", lambda ds, i: read.append(i) or real_getitem(ds, i))
    new = get_dataset("ncaltech101", "test", root=ncaltech_root)
    new_frames = [new[i][0] for i in range(len(new))]
    assert read == [new.source.positions[2]]  # only the replaced recording is read again
    assert all(torch.equal(new_frames[i], old_frames[i]) for i in (0, 1, 3))  # the others from the cache
    monkeypatch.setenv("AOI_CACHE", str(tmp_path_factory.mktemp("fresh")))  # framed with no cache at all
    assert torch.equal(new_frames[2], get_dataset("ncaltech101", "test", root=ncaltech_root)[2][0])
    assert not torch.equal(new_frames[2], old_frames[2])


def test_a_read_only_data_root_needs_aoi_cache_and_aoi_cache_leaves_it_untouched(
    ncaltech_root, read_only, monkeypatch, tmp_path_factory
):
    before = snapshot(ncaltech_root)
    read_only(ncaltech_root)
    with pytest.raises(UserError) as error:
        get_dataset("ncaltech101", "test", root=ncaltech_root)
    message = str(error.value)
    assert f"cannot write aoi's cache {ncaltech_root / 'cache'}" in message and "set AOI_CACHE" in message
    assert "\n" not in message
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("AOI_CACHE", str(cache))
    ds = get_dataset("ncaltech101", "test", root=ncaltech_root)
    assert ds[0][0].shape == (10, 2, 48, 48)
    assert ds.provenance["cache"] == f"cache/ncaltech101/{ds.provenance['cache_key']}"  # relative to AOI_CACHE
    assert len(list((cache / ds.provenance["cache"]).glob("*.npy"))) == 1
    assert snapshot(ncaltech_root) == before


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def write_dvsgesture(root):
    write_gesture(root, 24, "natural", [3, 10])
    return root


NCALTECH_FILE = ("ncaltech101", "NCALTECH101/Caltech101/accordion/image_0001.bin")
GESTURE_FILE = ("dvsgesture", "DVSGesture/ibmGestureTest/user24_natural/3.npy")
CIFAR10DVS_FILE = ("cifar10dvs", "CIFAR10DVS/airplane/cifar10_airplane_0.aedat4")
CORRUPT = {  # case: (dataset, file, its content, the problem named)
    "empty .bin": (*NCALTECH_FILE, b"", "0 bytes, not one or more whole 5-byte events"),
    "cut-short .bin": (*NCALTECH_FILE, encode_bin([1, 2], [3, 4], [0, 1], [0, 9])[:-1], "9 bytes, not one"),
    "empty .npy": (*GESTURE_FILE, b"", "EOFError"),
    "cut-short .npy": (*GESTURE_FILE, npy_bytes(np.ones((100, 4), np.int64))[:-80], "Failed to read all data"),
    ".npy of no events": (*GESTURE_FILE, npy_bytes(np.zeros((0, 4), np.int64)), "no events"),
    ".npy of 3 columns": (*GESTURE_FILE, npy_bytes(np.ones((100, 3), np.int64)), "IndexError"),
    "empty .aedat4": (*CIFAR10DVS_FILE, b"", "RuntimeError"),
    "garbage .aedat4": (*CIFAR10DVS_FILE, b"#!AER-DAT4.0\r\n" + bytes(64), "PanicException"),
}
WRITE_TREE = {"ncaltech101": write_ncaltech, "dvsgesture": write_dvsgesture, "cifar10dvs": write_cifar10dvs}


@pytest.mark.parametrize("case", CORRUPT)
def test_a_corrupt_or_empty_recording_names_its_file_and_is_never_cached(case, tmp_path):
    name, relative, content, problem = CORRUPT[case]
    WRITE_TREE[name](tmp_path)
    path = tmp_path / relative
    path.write_bytes(content)
    ds = get_dataset(name, "test", root=tmp_path)
    with pytest.raises(UnreadableFile) as error:
        ds[[Path(f) for f in ds.source.files].index(path)]
    message = str(error.value)
    assert message.startswith(f"{path} is unreadable (") and problem in message and "\n" not in message
    assert message.endswith("download it again or put a good copy there")
    assert path.read_bytes() == content and not list((tmp_path / ds.provenance["cache"]).glob("*.npy"))


@pytest.mark.parametrize("damage", ["cut short", "other frames"])
def test_a_corrupt_frame_cache_names_its_file_and_is_never_used(damage, ncaltech_root):
    ds = get_dataset("ncaltech101", "test", root=ncaltech_root)
    frames = ds[0][0]
    cached = ds.source.cache_path(0)
    if damage == "cut short":
        cached.write_bytes(cached.read_bytes()[:200])
    else:
        np.save(cached, np.zeros((5, 2, 48, 48), np.float32))
    with pytest.raises(UnreadableFile) as error:
        get_dataset("ncaltech101", "test", root=ncaltech_root)[0]
    message = str(error.value)
    assert message.startswith(f"{cached} is unreadable (") and message.endswith("delete it and run again")
    assert "\n" not in message
    cached.unlink()
    assert torch.equal(get_dataset("ncaltech101", "test", root=ncaltech_root)[0][0], frames)
