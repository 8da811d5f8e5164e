"""Datasets for aoi: every sample is (frames float32 [T, C, H, W], int label).

    from aoi.data import get_dataset, dataset_info, DATASETS, DatasetInfo
    ds = get_dataset("ndigits", "train")     # data root: root=, else $AOI_DATA, else ./data
    ds = from_tonic(tonic_dataset, T=10)     # any tonic dataset, framed like the paper's (tonic_datasets)
    ds = get_dataset("nmnist-small", "test", folds=5, fold=0)   # k-fold cross-validation, train and test pooled

Caches (event frames, simulated recordings) go under $AOI_CACHE, else the data root: set AOI_CACHE
when the data root is read-only. A data or cache file that does not parse is an
`aoi.files.UnreadableFile` naming it and what to do; a cache is never used unchecked.

Modules: registry (the table, get_dataset), base (shared types), splits, cache, encoding
(direct encoding, event binning), simulator (saccade event camera), simulated (its cached
datasets), digits, fashion, images (torchvision), events + tonic_readers (tonic), nmnist_small
(slayerPytorch's 1,100 N-MNIST recordings checked and placed), tonic_datasets (`from_tonic`,
imported on first use so that importing aoi.data does not import tonic).
"""

from aoi.data.base import AoiDataset, DatasetInfo, DatasetNotFoundError
from aoi.data.registry import DATASETS, dataset_info, get_dataset

__all__ = [
    "DATASETS",
    "AoiDataset",
    "DatasetInfo",
    "DatasetNotFoundError",
    "dataset_info",
    "from_tonic",
    "get_dataset",
]


def __getattr__(name: str):
    if name == "from_tonic":
        from aoi.data.tonic_datasets import from_tonic

        return from_tonic
    raise AttributeError(f"module 'aoi.data' has no attribute {name!r}")
