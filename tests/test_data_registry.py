"""The registry, get_dataset's argument checks, splits and the digits dataset."""

import hashlib

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from aoi.data import DATASETS, DatasetInfo, dataset_info, get_dataset
from aoi.data.splits import nine_to_one_split, split_hash, stratified_folds, stratified_order

EXPECTED = {  # name: (num_classes, input_shape, default_T, kind)
    "digits": (10, (1, 8, 8), 4, "frame"),
    "ndigits": (10, (2, 16, 16), 10, "event"),
    "fashion-mnist": (10, (1, 28, 28), 4, "frame"),
    "nfashion": (10, (2, 34, 34), 10, "event"),
    "cifar10": (10, (3, 32, 32), 4, "frame"),
    "cifar100": (100, (3, 32, 32), 4, "frame"),
    "imagenet": (1000, (3, 224, 224), 4, "frame"),
    "cifar10dvs": (10, (2, 48, 48), 10, "event"),
    "ncaltech101": (101, (2, 48, 48), 10, "event"),
    "dvsgesture": (11, (2, 48, 48), 16, "event"),
    "nmnist": (10, (2, 34, 34), 10, "event"),
    "nmnist-small": (10, (2, 34, 34), 10, "event"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_info_of_every_registered_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no disk access: nothing may appear here
    info = dataset_info(name)
    assert isinstance(info, DatasetInfo) and info.name == name
    assert (info.num_classes, info.input_shape, info.default_T, info.kind) == EXPECTED[name]
    assert list(tmp_path.iterdir()) == []


def test_registry_lists_exactly_the_expected_datasets():
    assert set(DATASETS) == set(EXPECTED)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: digits, ndigits"):
        dataset_info("mnist")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "validation"}, "use one of train, val, test"),
        ({"split": "val"}, "> 0 for split 'val'"),
        ({"validation": 1.0}, "validation must be in"),
        ({"T": 0}, "positive integer"),
        ({"augment": True}, "no augmentation"),
        ({"limit": 0}, "limit"),
        ({"folds": 1}, "folds must be 0 or >= 2"),
        ({"folds": 5, "fold": 5}, "fold in \\[0, folds\\)"),
        ({"fold": 1}, "fold in \\[0, folds\\)"),
    ],
)
def test_bad_arguments_say_what_to_do(kwargs, message, tmp_path):
    args = {"name": "digits", "split": "train", "root": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=message):
        get_dataset(**args)


def test_digits_split_sizes_stratification_and_samples(tmp_path):
    train = get_dataset("digits", "train", root=tmp_path)
    test = get_dataset("digits", "test", root=tmp_path, T=3)
    assert (len(train), len(test)) == (1347, 450)
    per_class = np.bincount(load_digits().target)  # 178, 182, 177, ...: a quarter of each class is tested
    assert np.abs(np.bincount(test.labels, minlength=10) - per_class / 4).max() <= 1
    assert np.abs(np.bincount(train.labels) / 1347 - np.bincount(test.labels) / 450).max() < 0.01
    frames, label = test[0]
    assert frames.shape == (3, 1, 8, 8) and frames.dtype == torch.float32 and isinstance(label, int)
    assert torch.equal(frames[0], frames[2]) and frames.min() >= 0 and frames.max() <= 1
    assert train.provenance["split_hash"] == test.provenance["split_hash"]
    assert list(tmp_path.iterdir()) == []  # digits are embedded: nothing written


def test_limit_keeps_a_class_balanced_seeded_subset(tmp_path):
    a = get_dataset("digits", "train", root=tmp_path, limit=30, seed=1)
    b = get_dataset("digits", "train", root=tmp_path, limit=30, seed=1)
    c = get_dataset("digits", "train", root=tmp_path, limit=30, seed=2)
    assert len(a) == 30 and np.array_equal(np.bincount(a.labels), [3] * 10)
    assert np.array_equal(a.indices, b.indices) and not np.array_equal(a.indices, c.indices)
    assert a.provenance["limit"] == 30 and a.provenance["num_samples"] == 30


def test_stratified_order_interleaves_classes():
    order = stratified_order([0, 0, 0, 1, 1, 2], seed=0)
    assert sorted(order) == list(range(6))
    assert [int(x) for x in np.array([0, 0, 0, 1, 1, 2])[order][:3]] == [0, 1, 2]


def test_split_hash_matches_a_hand_computed_sha256():
    expected = hashlib.sha256(b"train\na/1\nb/2\ntest\na/0\n").hexdigest()
    assert split_hash(["b/2", "a/1"], ["a/0"]) == expected


def test_nine_to_one_split_uses_sorted_names_not_listing_order():
    names = [f"cat/{i:02d}" for i in (5, 3, 11, 0, 7, 1, 2, 4, 6, 8, 9, 10)] + ["dog/b", "dog/a"]
    classes = [n.split("/")[0] for n in names]
    train, test = nine_to_one_split(names, classes)
    assert [names[i] for i in test] == ["cat/00", "cat/10", "dog/a"]
    assert len(train) == 11 and set(train).isdisjoint(test)
    shuffled = names[::-1]
    _, test2 = nine_to_one_split(shuffled, [n.split("/")[0] for n in shuffled])
    assert [shuffled[i] for i in test2] == ["cat/00", "cat/10", "dog/a"]


def test_validation_is_held_out_of_training_stratified_and_the_same_for_every_seed(tmp_path):
    train = get_dataset("digits", "train", root=tmp_path, validation=0.2)
    val = get_dataset("digits", "val", root=tmp_path, validation=0.2, seed=5)
    full = get_dataset("digits", "train", root=tmp_path)
    per_class = np.bincount(full.labels)
    assert np.array_equal(np.bincount(val.labels), np.round(0.2 * per_class).astype(int))
    assert sorted([*train.indices, *val.indices]) == sorted(full.indices)  # a partition of the training data
    assert set(train.indices).isdisjoint(val.indices)
    assert train.provenance["validation_hash"] == val.provenance["validation_hash"]
    assert np.array_equal(get_dataset("digits", "val", root=tmp_path, validation=0.2).indices, val.indices)
    assert not val.provenance["augment"]


LABELS = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]  # 5, 3 and 2 samples of classes 0, 1, 2


def test_stratified_folds_partition_the_samples_class_by_class():
    folds = stratified_folds(LABELS, 3)
    assert folds.tolist() == stratified_folds(LABELS, 3).tolist()  # fixed seed: the same every time
    assert set(folds.tolist()) == {0, 1, 2}  # every sample in exactly one of the 3 folds
    assert sorted(np.bincount(folds).tolist()) == [3, 3, 4]  # 10 // 3 or one more
    labels = np.array(LABELS)
    for fold in range(3):
        per_class = np.bincount(labels[folds == fold], minlength=3)
        assert per_class[0] in (1, 2) and per_class[1] == 1 and per_class[2] in (0, 1)  # floor or ceil of n_c / 3
    # the deal goes on across classes: class 0 fills folds 0 1 2 0 1, so class 1 starts at fold 2
    assert [np.bincount(labels[folds == f], minlength=3).tolist() for f in range(3)] == [
        [2, 1, 1],
        [2, 1, 0],
        [1, 1, 1],
    ]


@pytest.mark.parametrize("k", [1, 11, 2.0])
def test_stratified_folds_refuse_a_k_they_cannot_deal(k):
    with pytest.raises(ValueError, match="k must be an integer in \\[2, 10\\]"):
        stratified_folds(LABELS, k)


def test_folds_pool_train_and_test_and_hold_validation_out_of_the_training_folds(tmp_path):
    pool = [*get_dataset("digits", "train", root=tmp_path).labels, *get_dataset("digits", "test", root=tmp_path).labels]
    assert len(pool) == 1797
    tested = []
    for fold in range(5):
        train, val, test = (
            get_dataset("digits", split, root=tmp_path, folds=5, fold=fold, validation=0.1)
            for split in ("train", "val", "test")
        )
        assert set(val.indices).isdisjoint(test.indices) and set(train.indices).isdisjoint(test.indices)
        assert sorted([*train.indices, *val.indices, *test.indices]) == list(range(1797))
        assert np.array_equal(test.labels, np.array(pool)[test.indices])
        assert len(test) in (359, 360) and test.provenance["split_rule"].startswith("stratified k-fold")
        rest = np.bincount([*train.labels, *val.labels], minlength=10)  # the training folds, per class
        assert np.array_equal(np.bincount(val.labels, minlength=10), np.round(0.1 * rest))
        tested += test.indices.tolist()
    assert sorted(tested) == list(range(1797))  # every sample tested exactly once
