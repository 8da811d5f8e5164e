"""tonic's dataset readers, kept offline: they read what is on disk and never download.

tonic's own existence check wants the original archive plus a minimum file count, and
downloads (from links that are now broken) when it fails. aoi checks the files itself first
(see events.py), so here that check always passes and `download` refuses. tonic reads an empty
or cut-short .bin file without a clear error; these readers refuse it. The class names must equal
tonic's: tonic names the dataset folder after the class (NMNISTsmall: N-MNIST's reader over a
folder of its own).
"""

from __future__ import annotations

import os

import tonic.datasets

from aoi.data.base import DatasetNotFoundError


class _Offline:
    def _check_exists(self) -> bool:
        return True

    def download(self) -> None:
        raise DatasetNotFoundError(f"{type(self).__name__}: aoi never downloads event datasets")


class _Bin(_Offline):
    """N-MNIST / N-Caltech101 .bin files: 5 bytes per event."""

    def __getitem__(self, index):
        size = os.path.getsize(self.data[index])
        if size == 0 or size % 5:
            raise ValueError(f"{size} bytes, not one or more whole 5-byte events")
        return super().__getitem__(index)


class CIFAR10DVS(_Offline, tonic.datasets.CIFAR10DVS):
    """tonic.datasets.CIFAR10DVS reading `<save_to>/CIFAR10DVS/<class>/*.aedat4` only."""


class NCALTECH101(_Bin, tonic.datasets.NCALTECH101):
    """tonic.datasets.NCALTECH101 reading `<save_to>/NCALTECH101/Caltech101/<class>/*.bin` only."""


class DVSGesture(_Offline, tonic.datasets.DVSGesture):
    """tonic.datasets.DVSGesture reading only
    `<save_to>/DVSGesture/ibmGesture{Train,Test}/userNN_<light>/<label>.npy`."""


class NMNIST(_Bin, tonic.datasets.NMNIST):
    """tonic.datasets.NMNIST reading `<save_to>/NMNIST/{Train,Test}/<digit>/*.bin` only."""


class NMNISTsmall(NMNIST):
    """tonic.datasets.NMNIST reading `<save_to>/NMNISTsmall/{Train,Test}/<digit>/*.bin` only: the
    1,100 recordings placed by `aoi.data.nmnist_small`."""
