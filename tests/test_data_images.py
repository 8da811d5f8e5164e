"""Frame datasets from small files in the real formats: CIFAR pickled batches, an ImageNet
ImageFolder tree, Fashion-MNIST idx files (and nfashion made from them). No network."""

import gzip
import hashlib
import pickle
import shutil

import numpy as np
import pytest
import torch
import torchvision.datasets.utils as tv_utils
from PIL import Image
from repository import snapshot
from runs import absolute_paths
from torchvision.datasets import CIFAR10, CIFAR100

from aoi.data import DatasetNotFoundError, fashion, get_dataset, simulated
from aoi.data.images import Cutout
from aoi.errors import UserError
from aoi.files import UnreadableFile

pytestmark = pytest.mark.usefixtures("no_network")  # tests/conftest.py


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


@pytest.fixture
def cifar10_root(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        labels = [(k + j) % 10 for j in range(4)]
        write_pickle(folder / name, {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": labels})
    write_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(folder / n)] for n in names[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(folder / "batches.meta")})
    return tmp_path


def test_cifar10_reads_pickled_batches(cifar10_root):
    train = get_dataset("cifar10", "train", root=cifar10_root)
    test = get_dataset("cifar10", "test", root=cifar10_root)
    assert (len(train), len(test)) == (20, 4)
    frames, label = train[0]
    assert frames.shape == (4, 3, 32, 32) and frames.dtype == torch.float32 and label == 0
    assert train.provenance["augment"] is True and test.provenance["augment"] is False
    frames, _ = test[0]
    assert torch.equal(frames[0], frames[3])
    assert frames.min() < -1.5 and frames.max() > 1.5  # normalised, not [0, 1]


def test_cifar100_reads_pickled_files(tmp_path, monkeypatch):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    for name, n in (("train", 6), ("test", 2)):
        write_pickle(folder / name, {"data": np.zeros((n, 3072), np.uint8), "fine_labels": list(range(n))})
    write_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5(folder / "train")]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5(folder / "test")]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": md5(folder / "meta")})
    ds = get_dataset("cifar100", "test", root=tmp_path, T=2)
    assert len(ds) == 2 and ds[1][0].shape == (2, 3, 32, 32) and ds[1][1] == 1


def test_cifar_missing_files_fail_in_one_line_and_leave_no_partial_archive(tmp_path, monkeypatch):
    attempts = []

    def partial_download(url, root, filename=None, md5=None, **kwargs):
        attempts.append(url)
        (tmp_path / "cifar10" / filename).write_bytes(b"half an archive")
        raise ConnectionError("offline")

    monkeypatch.setattr(tv_utils, "download_url", partial_download)
    with pytest.raises(DatasetNotFoundError) as error:
        get_dataset("cifar10", "train", root=tmp_path)
    message = str(error.value)
    assert "\n" not in message and "cifar-10-batches-py" in message and "download failed" in message
    assert len(attempts) == 1
    assert not (tmp_path / "cifar10").exists()


def test_cifar_corrupted_files_name_the_problem(tmp_path):
    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="incomplete or corrupted"):
        get_dataset("cifar10", "test", root=tmp_path)


def test_cutout_zeroes_a_16px_box():
    torch.manual_seed(0)
    out = Cutout(16)(torch.ones(3, 32, 32))
    zeros = (out[0] == 0).sum().item()
    assert 64 <= zeros <= 256 and torch.equal(out[0] == 0, out[2] == 0)


def test_imagenet_reads_an_image_folder_tree(tmp_path):
    for split, per_class in (("train", 2), ("val", 1)):
        for wnid in ("n01440764", "n01443537", "n01484850"):
            folder = tmp_path / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for k in range(per_class):
                Image.new("RGB", (40, 40), (k * 90, 20, 200)).save(folder / f"{wnid}_{k}.JPEG")
    train = get_dataset("imagenet", "train", root=tmp_path, T=2)
    test = get_dataset("imagenet", "test", root=tmp_path, T=2)
    assert (len(train), len(test)) == (6, 3)
    assert train.info.num_classes == 3 and sorted(test.labels) == [0, 1, 2]
    for ds in (train, test):
        frames, label = ds[0]
        assert frames.shape == (2, 3, 224, 224) and frames.dtype == torch.float32 and label == 0


def test_imagenet_missing_never_downloads(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"imagenet/\{train,val\}/<wnid>"):
        get_dataset("imagenet", "test", root=tmp_path)


def idx_bytes(array) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.astype(np.uint8).tobytes()


def write_idx(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(idx_bytes(array)))


def test_read_idx_decodes_the_header_by_hand(tmp_path):
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255])
    (tmp_path / "a-idx2-ubyte").write_bytes(raw)
    assert fashion.read_idx(tmp_path / "a-idx2-ubyte").tolist() == [[1, 2, 3], [4, 5, 255]]


def fashion_images() -> np.ndarray:
    """12 discs of growing size, uint8 [12, 28, 28] (0 or 255)."""
    yy, xx = np.mgrid[:28, :28]
    return np.stack([((yy - 6 - k) ** 2 + (xx - 14) ** 2 < 40 + 8 * k) * 255 for k in range(12)]).astype(np.uint8)


@pytest.fixture
def fashion_root(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion, "SYSTEM_FOLDERS", ())
    for prefix in ("train", "t10k"):
        write_idx(tmp_path / "fashion-mnist" / f"{prefix}-images-idx3-ubyte.gz", fashion_images())
        write_idx(tmp_path / "fashion-mnist" / f"{prefix}-labels-idx1-ubyte.gz", np.arange(12) % 10)
    return tmp_path


def test_fashion_mnist_reads_idx_files(fashion_root):
    ds = get_dataset("fashion-mnist", "test", root=fashion_root)
    frames, label = ds[11]
    assert len(ds) == 12 and frames.shape == (4, 1, 28, 28) and label == 1
    assert frames.max() == 1.0 and frames.min() == 0.0


def test_fashion_provenance_is_the_datas_hashes_not_its_paths(fashion_root):
    ds = get_dataset("nfashion", "test", root=fashion_root)
    assert ds.provenance["images_sha256"] == hashlib.sha256(fashion_images().tobytes()).hexdigest()
    assert ds.provenance["labels_sha256"] == hashlib.sha256(bytes(range(10)) + bytes(range(2))).hexdigest()
    assert absolute_paths(ds.provenance) == [] and ds.provenance["cache"] == f"nfashion/{ds.provenance['cache_key']}"


def test_fashion_mnist_missing_tries_download_then_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion, "SYSTEM_FOLDERS", ())
    with pytest.raises(DatasetNotFoundError, match="fashion-mnist.*download failed"):
        get_dataset("fashion-mnist", "train", root=tmp_path)
    assert not (tmp_path / "fashion-mnist").exists()


def test_nfashion_is_cached_and_keyed_by_its_parameters(fashion_root, monkeypatch):
    ds = get_dataset("nfashion", "train", root=fashion_root)
    frames, _ = ds[0]
    assert frames.shape == (10, 2, 34, 34) and (frames.sum(dim=(1, 2, 3)) > 0).all()

    def refuse(*args):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(simulated, "generate", refuse)
    again = get_dataset("nfashion", "train", root=fashion_root, T=5)
    assert again.provenance["cache_key"] == ds.provenance["cache_key"]
    fewer_steps = again[0][0]
    assert fewer_steps.shape == (5, 2, 34, 34)
    assert abs(fewer_steps.sum() - frames.sum()) <= 0.02 * frames.sum()  # same events, rebinned
    monkeypatch.undo()
    monkeypatch.setattr(fashion, "SYSTEM_FOLDERS", ())
    monkeypatch.setattr(
        fashion,
        "NFASHION_PARAMS",
        fashion.SaccadeParams(sensor_size=34, image_size=28, image_offset_px=1, contrast_threshold=0.3),
    )
    other = get_dataset("nfashion", "train", root=fashion_root)
    assert other.provenance["cache_key"] != ds.provenance["cache_key"]


IMAGES = np.zeros((12, 28, 28), np.uint8)
BAD_IDX = {  # case: (file written next to the fixture's .gz files, where a plain file is read first; content; problem)
    "cut-short gzip": ("t10k-images-idx3-ubyte.gz", gzip.compress(idx_bytes(IMAGES))[:-30], "EOFError"),
    "cut-short idx": ("t10k-images-idx3-ubyte", idx_bytes(IMAGES)[:-100], "9308 bytes of data, its header says 9408"),
    "not idx": ("t10k-labels-idx1-ubyte", b"<html>Not Found</html>", "not an unsigned-byte idx file"),
}


@pytest.mark.parametrize("case", BAD_IDX)
def test_a_corrupt_idx_file_names_itself_and_what_to_do(case, fashion_root):
    name, content, problem = BAD_IDX[case]
    path = fashion_root / "fashion-mnist" / name
    path.write_bytes(content)
    with pytest.raises(UnreadableFile) as error:
        get_dataset("fashion-mnist", "test", root=fashion_root)
    message = str(error.value)
    assert message.startswith(f"{path} is unreadable (") and problem in message and "\n" not in message
    assert message.endswith("download it again or put a good copy there") and path.read_bytes() == content


@pytest.mark.parametrize("name", ["fashion-mnist", "nfashion"])
def test_idx_files_of_20_images_and_10_labels_do_not_train(name, fashion_root):
    folder = fashion_root / "fashion-mnist"
    images, labels = folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz"
    write_idx(images, np.zeros((20, 28, 28)))
    write_idx(labels, np.arange(10))
    with pytest.raises(UnreadableFile) as error:
        get_dataset(name, "train", root=fashion_root)
    message = str(error.value)
    assert message == f"{images} holds 20 images but {labels} 10 labels: download both again or put good copies there"
    assert not (fashion_root / "nfashion").exists()


@pytest.mark.parametrize("damage", ["cut-short t.npy", "offsets out of order", "corrupt params.json"])
def test_a_corrupt_simulator_cache_names_its_file_and_is_never_used(damage, fashion_root):
    ds = get_dataset("nfashion", "test", root=fashion_root)
    frames = ds[3][0]
    folder = fashion_root / ds.provenance["cache"]  # relative to the cache root, here the data root
    if damage == "cut-short t.npy":
        broken, todo = folder / "t.npy", f"delete the folder {folder} and run again (it is simulated anew)"
        broken.write_bytes(broken.read_bytes()[:-40])
    elif damage == "offsets out of order":
        broken, todo = folder / "offsets.npy", f"delete the folder {folder} and run again (it is simulated anew)"
        np.save(broken, np.load(broken)[::-1].copy())
    else:
        broken, todo = folder / "params.json", "delete it and run again"
        broken.write_text('{"format": ')
    with pytest.raises(UnreadableFile) as error:
        get_dataset("nfashion", "test", root=fashion_root)
    message = str(error.value)
    assert message.startswith(f"{broken} is unreadable (") and message.endswith(todo) and "\n" not in message
    shutil.rmtree(folder) if broken.suffix == ".npy" else broken.unlink()
    assert torch.equal(get_dataset("nfashion", "test", root=fashion_root)[3][0], frames)  # simulated anew


def test_nfashion_on_a_read_only_data_root_needs_aoi_cache(fashion_root, read_only, monkeypatch, tmp_path_factory):
    before = snapshot(fashion_root)
    read_only(fashion_root)
    with pytest.raises(UserError) as error:
        get_dataset("nfashion", "test", root=fashion_root)
    message = str(error.value)
    assert f"cannot write aoi's cache {fashion_root / 'nfashion'}" in message and "set AOI_CACHE" in message
    assert "\n" not in message
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("AOI_CACHE", str(cache))
    ds = get_dataset("nfashion", "test", root=fashion_root)
    assert ds[0][0].shape == (10, 2, 34, 34)
    assert ds.provenance["cache"] == f"nfashion/{ds.provenance['cache_key']}"  # relative to AOI_CACHE
    assert (cache / ds.provenance["cache"] / "params.json").is_file()
    assert snapshot(fashion_root) == before
