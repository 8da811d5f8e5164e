"""N-MNIST in tonic's layout and `from_tonic`, from small files in N-MNIST's real binary format
and a small in-memory tonic dataset. No network."""

import io

import numpy as np
import pytest
import tonic.io
import torch
import torch.nn.functional as F
from runs import absolute_paths
from torch.utils.data import DataLoader

from aoi.data import DatasetNotFoundError, from_tonic, get_dataset, tonic_readers
from aoi.data.tonic_datasets import from_tonic as from_tonic_module
from aoi.models import DEFAULT_MODEL, get_model

pytestmark = pytest.mark.usefixtures("no_network")  # tests/conftest.py

# N-MNIST's .bin: 5 bytes per event: x, y, then bit 7 = polarity and bits 6-0 = timestamp bits 22-16,
# then timestamp bits 15-8 and 7-0 (microseconds).
HAND_CODED = bytes(
    [
        *[1, 2, 0x80, 0x00, 0x00],  # x=1, y=2, p=1, t=0
        *[1, 2, 0x00, 0x00, 0x64],  # x=1, y=2, p=0, t=100
        *[33, 0, 0x81, 0x00, 0x00],  # x=33, y=0, p=1, t=0x010000 = 65536
        *[10, 20, 0x83, 0x0D, 0x40],  # x=10, y=20, p=1, t=0x030D40 = 200000
        *[5, 6, 0x04, 0x93, 0xE0],  # x=5, y=6, p=0, t=0x0493E0 = 300000
    ]
)


def encode_nmnist(x, y, p, t) -> bytes:
    """Events in N-MNIST's 40-bit format (checked against HAND_CODED below)."""
    rows = [[xi, yi, (pi << 7) | (ti >> 16), (ti >> 8) & 0xFF, ti & 0xFF] for xi, yi, pi, ti in zip(x, y, p, t)]
    return bytes(np.array(rows, dtype=np.uint8).ravel())


def test_encoder_matches_the_hand_coded_bytes_and_tonics_reader():
    x, y, p, t = [1, 1, 33, 10, 5], [2, 2, 0, 20, 6], [1, 0, 1, 1, 0], [0, 100, 65536, 200000, 300000]
    assert encode_nmnist(x, y, p, t) == HAND_CODED
    events = tonic.io.read_mnist_file(io.BytesIO(HAND_CODED), tonic_readers.NMNIST.dtype, is_stream=True)
    assert [events[k].tolist() for k in "xypt"] == [x, y, p, t]


def write_nmnist(root, split, digit, index, data: bytes):
    folder = root / "NMNIST" / split / str(digit)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{index:05d}.bin").write_bytes(data)


@pytest.fixture
def nmnist_root(tmp_path):
    rng = np.random.default_rng(0)
    for split, digits in (("Train", [0, 0, 3, 7, 7, 7]), ("Test", [3, 7])):
        for index, digit in enumerate(digits):
            n = 200
            t = np.sort(rng.integers(0, 300_000, n))
            data = encode_nmnist(rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n), t)
            write_nmnist(tmp_path, split, digit, index, data)
    return tmp_path


def test_nmnist_frames_are_the_hand_computed_event_counts(tmp_path):
    write_nmnist(tmp_path, "Test", 4, 1, HAND_CODED)
    frames, label = get_dataset("nmnist", "test", root=tmp_path, T=2)[0]
    # tonic's time bins: width (t_last - t_first) // T = 150000 us, [0, 150000) and [150000, 300000);
    # the last event (t = 300000) falls after them and is not counted (tonic's ToFrame, for every dataset)
    expected = torch.zeros(2, 2, 34, 34)
    expected[0, 1, 2, 1] = 1  # t=0, p=1 at (y, x) = (2, 1)
    expected[0, 0, 2, 1] = 1  # t=100
    expected[0, 1, 0, 33] = 1  # t=65536
    expected[1, 1, 20, 10] = 1  # t=200000
    assert label == 4 and frames.dtype == torch.float32 and torch.equal(frames, expected)


def test_nmnist_official_split_labels_and_default_model(nmnist_root):
    train = get_dataset("nmnist", "train", root=nmnist_root)
    test = get_dataset("nmnist", "test", root=nmnist_root)
    assert (len(train), len(test)) == (6, 2)
    assert train.labels.tolist() == [0, 0, 3, 7, 7, 7] and test.labels.tolist() == [3, 7]
    assert test.source.names == ["Test/3/00000.bin", "Test/7/00001.bin"]
    assert test.provenance["split_rule"] == "the official N-MNIST split (the Train and Test folders)"
    assert train.provenance["augment"] is False and train.source.max_shift is None
    frames, _ = train[2]
    assert frames.shape == (10, 2, 34, 34) and 190 < frames.sum() < 200  # tonic drops the last few us
    model = get_model(DEFAULT_MODEL["nmnist"], 10, train.info.input_shape, train.T)
    batch = torch.stack([train[i][0] for i in range(2)], 1)  # [T, N, 2, 34, 34]
    assert model(batch).shape == (10, 2, 10)


@pytest.mark.parametrize("layout", ["nothing", "files outside digit folders", "only Train"])
def test_nmnist_missing_files_fail_in_one_line_naming_the_layout(layout, tmp_path):
    if layout == "files outside digit folders":
        (tmp_path / "NMNIST" / "Test").mkdir(parents=True)
        (tmp_path / "NMNIST" / "Test" / "00001.bin").write_bytes(HAND_CODED)
    elif layout == "only Train":
        write_nmnist(tmp_path, "Train", 1, 0, HAND_CODED)
    with pytest.raises(DatasetNotFoundError) as error:
        get_dataset("nmnist", "test", root=tmp_path)
    message = str(error.value)
    assert "NMNIST/{Train,Test}/<digit>/*.bin" in message and "\n" not in message


class WordsDataset(tonic.Dataset):
    """A user's tonic dataset: 8x6 sensor, two polarities, names as targets (its ``classes``), events in memory."""

    sensor_size = (8, 6, 2)
    classes = ("no", "yes")

    def __init__(self, save_to, recordings, targets):
        super().__init__(save_to)
        self.recordings, self.targets = recordings, targets

    def __getitem__(self, index):
        return self.recordings[index], self.targets[index]

    def __len__(self):
        return len(self.recordings)


def events(rows):
    """rows of (x, y, t, p) -> a tonic structured array."""
    x, y, t, p = (np.array(column) for column in zip(*rows))
    return tonic.io.make_structured_array(x, y, t, p, dtype=tonic.io.events_struct)


def words(tmp_path):
    recordings = [
        events([(0, 0, 0, 1), (7, 5, 10, 0), (7, 5, 20, 0), (3, 2, 40, 1)]),
        events([(1, 1, 0, 0), (2, 2, 5, 1)]),
        events([(4, 4, 0, 1), (4, 4, 1, 1)]),
    ]
    return WordsDataset(str(tmp_path), recordings, ["yes", "no", "yes"])


def test_from_tonic_frames_labels_and_provenance(tmp_path):
    ds = from_tonic(words(tmp_path), T=2, root=tmp_path)
    assert from_tonic is from_tonic_module
    assert ds.labels.tolist() == [1, 0, 1] and ds.provenance["classes"] == ["no", "yes"]
    assert ds.info.input_shape == (2, 6, 8) and ds.info.num_classes == 2 and len(ds) == 3
    frames, label = ds[0]
    expected = torch.zeros(2, 2, 6, 8)  # bins [0, 20), [20, 40); t=40 is dropped (see the N-MNIST test)
    expected[0, 1, 0, 0] = 1  # t=0, p=1 at (y, x) = (0, 0)
    expected[0, 0, 5, 7] = 1  # t=10
    expected[1, 0, 5, 7] = 1  # t=20
    assert label == 1 and torch.equal(frames, expected)
    batch, labels = next(iter(DataLoader(ds, batch_size=3)))
    assert batch.shape == (3, 2, 2, 6, 8) and labels.tolist() == [1, 0, 1]


def test_from_tonic_caches_frames_and_never_serves_them_stale(tmp_path, monkeypatch):
    first = from_tonic(words(tmp_path), T=2, size=(3, 4), root=tmp_path)
    frames = first[0][0]
    full = from_tonic(words(tmp_path), T=2, root=tmp_path, cache=False)[0][0]
    resized = F.interpolate(full, size=(3, 4), mode="bilinear", antialias=True, align_corners=False)
    assert frames.shape == (2, 2, 3, 4) and torch.equal(frames, resized)
    assert (tmp_path / "cache" / "wordsdataset" / first.provenance["cache_key"] / "0000000.npy").exists()
    monkeypatch.setattr(WordsDataset, "__getitem__", lambda self, i: 1 / 0)
    assert torch.equal(from_tonic(words(tmp_path), T=2, size=(3, 4), root=tmp_path)[0][0], frames)
    monkeypatch.undo()
    assert (
        from_tonic(words(tmp_path), T=3, size=(3, 4), root=tmp_path).provenance["cache_key"]
        != (first.provenance["cache_key"])
    )
    changed = words(tmp_path)
    changed.recordings[0] = events([(1, 1, 0, 0)])
    changed.targets = ["yes", "no", "yes", "maybe"][:3]
    changed.extra_option = True  # a dataset setting changes the key
    assert (
        from_tonic(changed, T=2, size=(3, 4), root=tmp_path).provenance["cache_key"] != (first.provenance["cache_key"])
    )


def test_from_tonic_without_cache_writes_nothing(tmp_path):
    ds = from_tonic(words(tmp_path), T=2, root=tmp_path, cache=False)
    assert ds[1][0].sum() == 1 and ds.provenance["cache"] is None  # t=0 counted, t=5 the dropped last
    assert not (tmp_path / "cache").exists()


def test_from_tonic_frames_a_tonic_reader_exactly_as_the_registry_does(nmnist_root):
    registry = get_dataset("nmnist", "test", root=nmnist_root)
    mine = from_tonic(tonic_readers.NMNIST(str(nmnist_root), train=False), T=10, root=nmnist_root)
    assert mine.labels.tolist() == registry.labels.tolist()
    assert mine.source.names == ["Test/3/00000.bin", "Test/7/00001.bin"]  # relative to <root>/NMNIST
    for i in range(len(mine)):
        assert torch.equal(mine[i][0], registry[i][0])


def test_from_tonic_refuses_a_dataset_without_sensor_size(tmp_path):
    dataset = words(tmp_path)
    dataset.sensor_size = None
    with pytest.raises(ValueError, match="has no sensor_size") as error:
        from_tonic(dataset, T=2, root=tmp_path)
    assert "\n" not in str(error.value)


def test_from_tonic_refuses_framed_samples(tmp_path):
    dataset = words(tmp_path)
    dataset.recordings = [np.zeros((2, 2, 6, 8))] * 3  # what a ToFrame transform returns
    with pytest.raises(ValueError, match="not events .* without a transform that frames"):
        from_tonic(dataset, T=2, root=tmp_path, cache=False)[0]


def test_from_tonic_frames_a_file_replaced_under_the_same_name_anew(nmnist_root):
    def framed(**kwargs):
        return from_tonic(tonic_readers.NMNIST(str(nmnist_root), train=False), T=2, root=nmnist_root, **kwargs)

    old = framed()
    old_frames = old[0][0]
    write_nmnist(nmnist_root, "Test", 3, 0, HAND_CODED)  # Test/3/00000.bin, item 0
    new = framed()
    assert new.provenance["cache_key"] == old.provenance["cache_key"]  # same settings, same file names
    assert torch.equal(new[0][0], framed(cache=False)[0][0]) and not torch.equal(new[0][0], old_frames)


def split_of(tmp_path, targets, classes=None) -> WordsDataset:
    """A split of a user's dataset with these targets (one recording each) and ``classes``."""
    dataset = WordsDataset(str(tmp_path), [events([(0, 0, 0, 1)])] * len(targets), targets)
    dataset.classes = classes
    return dataset


def test_every_split_maps_names_alike_even_one_that_lacks_a_class(tmp_path):
    # the test split has no "cat": "dog" must still be 1, and both splits have 2 classes
    train = split_of(tmp_path, ["cat", "dog", "cat"], classes=["cat", "dog"])
    test = split_of(tmp_path, ["dog", "dog"], classes=["cat", "dog"])
    for dataset, labels in ((train, [0, 1, 0]), (test, [1, 1])):
        framed = from_tonic(dataset, T=2, root=tmp_path, cache=False)
        assert framed.labels.tolist() == labels and framed.info.num_classes == 2
        assert framed.provenance["classes"] == ["cat", "dog"]
    given = from_tonic(split_of(tmp_path, ["dog"]), T=2, root=tmp_path, cache=False, classes={"dog": 1, "cat": 0})
    assert given.labels.tolist() == [1] and given.provenance["classes"] == ["cat", "dog"]


@pytest.mark.parametrize(
    "convert",
    [torch.tensor, np.int32, float, lambda v: np.array(float(v))],
    ids=["0-d tensor", "numpy int32", "float", "0-d float array"],
)
def test_numeric_targets_are_their_own_labels(tmp_path, convert):
    # 0..11: text order would put 10 and 11 before 2
    targets = [convert(v) for v in (2, 10, 0, 11, 1)]
    framed = from_tonic(split_of(tmp_path, targets), T=2, root=tmp_path, cache=False)
    assert framed.labels.tolist() == [2, 10, 0, 11, 1] and framed.info.num_classes == 12


def test_a_set_of_numeric_classes_is_sorted_as_numbers(tmp_path):
    framed = from_tonic(split_of(tmp_path, [10, 2, 0, 10]), T=2, root=tmp_path, cache=False, classes={10, 2, 0})
    assert framed.labels.tolist() == [2, 1, 0, 2] and framed.provenance["classes"] == [0, 2, 10]


def test_integer_targets_index_the_datasets_class_names(tmp_path):
    # tonic's way (NMNIST, DVSGesture): targets are indices into ``classes``; a split without class 2 keeps 3
    framed = from_tonic(split_of(tmp_path, [1, 0], classes=["zero", "one", "two"]), T=2, root=tmp_path, cache=False)
    assert framed.labels.tolist() == [1, 0] and framed.info.num_classes == 3


@pytest.mark.parametrize(
    "targets, classes, problem",
    [
        (["cat", "bird"], ["cat", "dog"], "the target 'bird' of sample 1 is none of the classes ['cat', 'dog']"),
        (["cat", "dog"], None, "the target 'cat' of sample 0 is not an integer label >= 0"),
        ([0, 3], ["zero", "one"], "the target 3 of sample 1 is none of the classes ['zero', 'one']"),
        ([1, 20], [10, 20], "the target 1 of sample 0 is none of the classes [10, 20]"),
        ([0, -1], None, "the target -1 of sample 1 is not an integer label >= 0"),
        ([0.5], None, "the target 0.5 of sample 0 is not an integer label >= 0"),
    ],
    ids=["missing-name", "names-without-classes", "index-beyond", "code-not-index", "negative", "fraction"],
)
def test_a_target_the_mapping_lacks_is_one_line(tmp_path, targets, classes, problem):
    with pytest.raises(ValueError) as error:
        from_tonic(split_of(tmp_path, targets, classes), T=2, root=tmp_path, cache=False)
    assert str(error.value) == (
        f"from_tonic: {problem}: pass classes=[...], every class in label order (the same for every split)"
    )


@pytest.mark.parametrize(
    "event, problem",
    [((-1, 0, 0, 1), "x or y below 0"), ((0, 0, 0, 2), "a polarity outside 0..1"), ((0, 0, 0, -1), "outside 0..1")],
    ids=["negative-x", "polarity-2", "polarity-minus-1"],
)
def test_events_outside_the_sensor_are_one_line(tmp_path, event, problem):
    integers = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])  # tonic's N-Caltech101 dtype
    dataset = WordsDataset(str(tmp_path), [np.array([(1, 1, 0, 0), event], dtype=integers)], ["yes"])
    framed = from_tonic(dataset, T=2, root=tmp_path, cache=False)
    with pytest.raises(ValueError) as error:
        framed[0]
    assert str(error.value).startswith("sample 0000000 holds events outside the sensor (W, H, P) = (8, 6, 2)")
    assert problem in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("window_us", [0, -5, 2.5])
def test_a_window_that_is_not_a_positive_integer_is_refused(tmp_path, window_us):
    with pytest.raises(ValueError, match=f"window_us must be a positive integer .* got {window_us}"):
        from_tonic(words(tmp_path), T=2, root=tmp_path, window_us=window_us)


def test_provenance_names_no_path_of_this_machine(tmp_path):
    framed = from_tonic(words(tmp_path), T=2, root=tmp_path / "data")
    assert absolute_paths(framed.provenance) == []
    assert framed.provenance["cache"] == f"cache/wordsdataset/{framed.provenance['cache_key']}"
    assert framed.provenance["cache_params"]["settings"]["location_on_system"] == "../WordsDataset"
    nmnist = from_tonic(tonic_readers.NMNIST(str(tmp_path), train=False), T=2, root=tmp_path, cache=False)
    assert nmnist.provenance["cache_params"]["settings"]["location_on_system"] == "NMNIST"


@pytest.mark.parametrize("classes", [3, "cat"])
def test_classes_that_are_not_a_collection_are_refused(tmp_path, classes):
    with pytest.raises(ValueError, match="classes must be a sequence, a mapping or a set of classes, got"):
        from_tonic(split_of(tmp_path, [0]), T=2, root=tmp_path, cache=False, classes=classes)
