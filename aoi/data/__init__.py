"""Datasets for aoi: every sample is (frames float32 [T, C, H, W], int label).

    from aoi.data import get_dataset, dataset_info, DATASETS, DatasetInfo
    ds = get_dataset("ndigits", "train")     # data root: root=, else $AOI_DATA, else ./data

Modules: registry (the table, get_dataset), base (shared types), splits, cache, encoding
(direct encoding, event binning), simulator (saccade event camera), simulated (its cached
datasets), digits, fashion, images (torchvision), events + tonic_readers (tonic).
"""

from aoi.data.base import AoiDataset, DatasetInfo, DatasetNotFoundError
from aoi.data.registry import DATASETS, dataset_info, get_dataset

__all__ = ["DATASETS", "AoiDataset", "DatasetInfo", "DatasetNotFoundError", "dataset_info", "get_dataset"]
