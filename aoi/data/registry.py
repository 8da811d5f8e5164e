"""The table of datasets and `get_dataset`, the one entry point.

DatasetInfo values live here so `dataset_info` needs no import of torchvision or tonic and no
disk access; each dataset's loader is imported only when it is built.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import MappingProxyType

import numpy as np

from aoi.data.base import SPLITS, AoiDataset, DatasetInfo, PooledSource, resolve_root
from aoi.data.splits import FOLD_RULE, split_hash, stratified_folds, stratified_holdout, stratified_order

_CIFAR_AUG = "RandomCrop(32, padding=4), HorizontalFlip, AutoAugment(CIFAR10), Normalize, Cutout 16px"
_EVENT_AUG = "random translation up to 25 px at the recording's resolution (scaled), same for all frames"
_EVENT_SOURCE = "tonic reader over files placed by hand under the data root; 48x48 after resize"

_TABLE = (  # (info, "module:builder")
    (
        DatasetInfo(
            "digits",
            10,
            (1, 8, 8),
            4,
            "frame",
            "scikit-learn's bundled handwritten digits, 1,797 real 8x8 images, 75/25 stratified split",
        ),
        "digits:build_digits",
    ),
    (
        DatasetInfo(
            "ndigits",
            10,
            (2, 16, 16),
            10,
            "event",
            "the digits recorded by aoi's saccade event-camera simulator on a 16x16 sensor",
        ),
        "digits:build_ndigits",
    ),
    (
        DatasetInfo(
            "fashion-mnist",
            10,
            (1, 28, 28),
            4,
            "frame",
            "Fashion-MNIST, 70,000 real 28x28 images, official 60k/10k split (torchvision)",
        ),
        "fashion:build_fashion",
    ),
    (
        DatasetInfo(
            "nfashion",
            10,
            (2, 34, 34),
            10,
            "event",
            "Fashion-MNIST recorded by aoi's saccade event-camera simulator on a 34x34 sensor",
        ),
        "fashion:build_nfashion",
    ),
    (DatasetInfo("cifar10", 10, (3, 32, 32), 4, "frame", "CIFAR-10 (torchvision)", _CIFAR_AUG), "images:build_cifar"),
    (
        DatasetInfo("cifar100", 100, (3, 32, 32), 4, "frame", "CIFAR-100 (torchvision)", _CIFAR_AUG),
        "images:build_cifar",
    ),
    (
        DatasetInfo(
            "imagenet",
            1000,
            (3, 224, 224),
            4,
            "frame",
            "ImageNet ILSVRC2012 (torchvision ImageFolder)",
            "RandomResizedCrop 224, HorizontalFlip, ColorJitter(0.2, 0.2, 0.2, 0.1)",
        ),
        "images:build_imagenet",
    ),
    (
        DatasetInfo("cifar10dvs", 10, (2, 48, 48), 10, "event", f"CIFAR10-DVS, 128x128; {_EVENT_SOURCE}", _EVENT_AUG),
        "events:build_events",
    ),
    (
        DatasetInfo(
            "ncaltech101",
            101,
            (2, 48, 48),
            10,
            "event",
            f"N-Caltech101, 101 folders incl. BACKGROUND_Google, 240x180 sensor; {_EVENT_SOURCE}",
            _EVENT_AUG,
        ),
        "events:build_events",
    ),
    (
        DatasetInfo(
            "dvsgesture",
            11,
            (2, 48, 48),
            16,
            "event",
            f"DVS128 Gesture, first 1.3 s, 128x128; {_EVENT_SOURCE}",
            _EVENT_AUG,
        ),
        "events:build_events",
    ),
    (
        DatasetInfo(
            "nmnist-small",
            10,
            (2, 34, 34),
            10,
            "event",
            "1,100 real N-MNIST recordings (ATIS camera, 34x34): the first 1,000 of its training set and the first "
            "100 of its test set, from slayerPytorch's NMNISTsmall, placed by `python -m aoi place-nmnist-small`",
        ),
        "events:build_events",
    ),
    (
        DatasetInfo(
            "nmnist",
            10,
            (2, 34, 34),
            10,
            "event",
            "N-MNIST, MNIST recorded by an ATIS camera in 3 saccades, 34x34, official 60k/10k split; "
            "tonic reader over files placed by hand under the data root",
        ),
        "events:build_events",
    ),
)

DATASETS = MappingProxyType({info.name: info for info, _ in _TABLE})
_BUILDERS = MappingProxyType({info.name: builder for info, builder in _TABLE})


def dataset_info(name: str) -> DatasetInfo:
    """The static description of dataset `name` (no loading, no disk access)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def get_dataset(
    name: str,
    split: str,
    T: int | None = None,
    root: str | os.PathLike | None = None,
    augment: bool | None = None,
    limit: int | None = None,
    seed: int = 0,
    validation: float = 0.0,
    folds: int = 0,
    fold: int = 0,
) -> AoiDataset:
    """Dataset `name`, split "train", "val" or "test": ds[i] -> (float32 [T, C, H, W], int label).

    T: timesteps (default info.default_T). root: data root (default $AOI_DATA, else ./data);
    caches go under $AOI_CACHE when set, else under the data root.
    augment: training augmentation (default: split == "train" for datasets that have one;
    True for a dataset without one is an error). limit: keep the first `limit` samples of a
    class-balanced order seeded by `seed` (each class shuffled, classes interleaved
    round-robin; splits.stratified_order); `seed` affects nothing else, the data are fixed.
    folds: 0 for the dataset's own train/test split; k >= 2 for stratified k-fold
    cross-validation over its train and test splits pooled (splits.stratified_folds, the same
    for every seed): "test" is fold `fold` (0 .. k-1), "train" and "val" come from the other folds.
    validation: the fraction of the training data (with folds: of the other folds) held out,
    stratified and the same for every seed (splits.stratified_holdout): "train" is the rest, "val"
    the held-out part (no augmentation by default). The split hashes go into the provenance.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    T = info.default_T if T is None else T
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    if augment is None:
        augment = split == "train" and bool(info.augmentation)
    elif augment and not info.augmentation:
        raise ValueError(f"dataset {name!r} has no augmentation; pass augment=None or False")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if not 0 <= validation < 1 or (split == "val" and validation == 0):
        raise ValueError(f"validation must be in [0, 1) (and > 0 for split 'val'), got {validation!r}")
    if folds == 1 or folds < 0 or not 0 <= fold < max(folds, 1):
        raise ValueError(f"folds must be 0 or >= 2 and fold in [0, folds), got folds={folds!r}, fold={fold!r}")
    module, builder = _BUILDERS[name].split(":")
    build = functools.partial(getattr(importlib.import_module(f"aoi.data.{module}"), builder), info)
    if folds:
        dataset = _fold([build(part, T, resolve_root(root), augment) for part in ("train", "test")], split, folds, fold)
    else:
        dataset = build("test" if split == "test" else "train", T, resolve_root(root), augment)
    if split != "test" and validation:
        kept, held = stratified_holdout(dataset.labels, validation)
        dataset = dataset.subset(held if split == "val" else kept)
        dataset.provenance.update(validation=validation, validation_hash=split_hash(map(str, kept), map(str, held)))
    if limit is not None:
        dataset = dataset.subset(stratified_order(dataset.labels, seed)[:limit])
    dataset.provenance.update(
        dataset=name, split=split, T=T, augment=augment, limit=limit, seed=seed, num_samples=len(dataset)
    )
    return dataset


def _fold(parts: list[AoiDataset], split: str, folds: int, fold: int) -> AoiDataset:
    """Fold ``fold`` of the ``parts`` (a dataset's train and test splits) pooled, for split "test";
    the other folds for "train" and "val"."""
    pool = AoiDataset(PooledSource(parts), parts[0].info, parts[0].T, {})
    assigned = stratified_folds(pool.labels, folds)
    tested, rest = np.flatnonzero(assigned == fold), np.flatnonzero(assigned != fold)
    dataset = pool.subset(tested if split == "test" else rest)
    dataset.provenance.update(
        split_rule=FOLD_RULE,
        folds=folds,
        fold=fold,
        fold_hash=split_hash(map(str, rest), map(str, tested)),
        pooled={"train": parts[0].provenance, "test": parts[1].provenance},
    )
    return dataset
