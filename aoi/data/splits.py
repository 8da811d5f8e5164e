"""Deterministic splits and sample orders, and the hash that identifies a split."""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

TEST_EVERY = 10  # 9:1 split: the 1st, 11th, 21st, ... file of each class goes to test


def split_hash(train_names, test_names) -> str:
    """sha256 of "train\\n" + sorted train names (one per line) + "test\\n" + sorted test names."""
    lines = ["train", *sorted(train_names), "test", *sorted(test_names)]
    return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()


def nine_to_one_split(names: list[str], classes: list[str]) -> tuple[list[int], list[int]]:
    """Stratified 9:1 split of files given by name (e.g. "cat/cat_12.aedat4") and class.

    Within each class the names are sorted (never in directory-listing order) and every
    TEST_EVERY-th one, starting with the first, goes to test. Returns (train, test) positions
    into `names`, each sorted by name.
    """
    by_class = defaultdict(list)
    for position, (name, label) in enumerate(zip(names, classes, strict=True)):
        by_class[label].append((name, position))
    train, test = [], []
    for members in by_class.values():
        for rank, (_, position) in enumerate(sorted(members)):
            (test if rank % TEST_EVERY == 0 else train).append(position)
    return sorted(train, key=names.__getitem__), sorted(test, key=names.__getitem__)


def stratified_order(labels, seed: int) -> np.ndarray:
    """Positions of all samples in a class-balanced, seeded order.

    Each class's positions are shuffled (numpy Generator seeded with `seed`), then the classes
    are interleaved round-robin in sorted class order, so any prefix is as balanced as it can be.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    queues = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    longest = max((len(q) for q in queues), default=0)
    return np.array([q[r] for r in range(longest) for q in queues if r < len(q)], dtype=np.int64)


VALIDATION_SEED = 0  # one held-out set per dataset and fraction, the same for every run and seed


def stratified_holdout(labels, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split positions [0, N) into (kept, held out): from each class, round(fraction * class size)
    positions chosen by a numpy Generator seeded with VALIDATION_SEED. Both sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(VALIDATION_SEED)
    held = [
        rng.permutation(np.flatnonzero(labels == c))[: round(fraction * np.sum(labels == c))] for c in np.unique(labels)
    ]
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(labels)), held), held


FOLD_SEED = 0  # one assignment of folds per dataset and k, the same for every run and seed
FOLD_RULE = "stratified k-fold cross-validation, train and test splits pooled (aoi.data.splits.stratified_folds)"


def stratified_folds(labels, k: int) -> np.ndarray:
    """The fold in [0, k) of every position [0, N): each class's positions are shuffled by a numpy
    Generator seeded with FOLD_SEED and the classes, in sorted order, are dealt to the folds in
    turn (the deal goes on from one class to the next). Each fold holds floor or ceil of n_c / k
    of every class c, and N // k or N // k + 1 samples."""
    labels = np.asarray(labels)
    if not (isinstance(k, int) and 2 <= k <= max(len(labels), 2)):
        raise ValueError(f"k must be an integer in [2, {max(len(labels), 2)}] (the number of samples), got {k!r}")
    rng = np.random.default_rng(FOLD_SEED)
    order = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    folds = np.empty(len(labels), dtype=np.int64)
    folds[np.concatenate(order) if order else np.zeros(0, np.int64)] = np.arange(len(labels)) % k
    return folds
