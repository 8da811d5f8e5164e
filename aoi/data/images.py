"""The paper's image datasets through torchvision: CIFAR-10, CIFAR-100 and ImageNet, direct
encoding (each image repeated T times), with the TET training augmentations."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms as tv

from aoi.data.base import AoiDataset, DatasetInfo, download_or_raise, missing, portable
from aoi.data.encoding import repeat_frames

# Standard CIFAR statistics (per-channel mean and std of the training images).
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # standard ImageNet statistics
CUTOUT_PX = 16
CIFAR_WHERE = "https://www.cs.toronto.edu/~kriz/cifar.html"


class Cutout:
    """Zero a size x size square centred on a uniformly random pixel (clipped at the borders)
    of an image tensor [C, H, W] (DeVries & Taylor 2017); uses torch's RNG."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        cy, cx = (int(torch.randint(n, ())) for n in (h, w))
        half = self.size // 2
        image = image.clone()
        image[..., max(cy - half, 0) : cy + half, max(cx - half, 0) : cx + half] = 0
        return image


def cifar_transform(name: str, augment: bool) -> tv.Compose:
    """Test: ToTensor, Normalize. Train adds RandomCrop(32, 4), flip, AutoAugment (CIFAR-10
    policy) before and Cutout 16 px after."""
    normalise = [tv.ToTensor(), tv.Normalize(*CIFAR_STATS[name])]
    if not augment:
        return tv.Compose(normalise)
    return tv.Compose(
        [
            tv.RandomCrop(32, padding=4),
            tv.RandomHorizontalFlip(),
            tv.AutoAugment(tv.AutoAugmentPolicy.CIFAR10),
            *normalise,
            Cutout(CUTOUT_PX),
        ]
    )


def imagenet_transform(augment: bool) -> tv.Compose:
    """Train: RandomResizedCrop 224, flip, ColorJitter(0.2, 0.2, 0.2, 0.1); test: Resize 256,
    CenterCrop 224; both then ToTensor, Normalize."""
    head = (
        [tv.RandomResizedCrop(224), tv.RandomHorizontalFlip(), tv.ColorJitter(0.2, 0.2, 0.2, 0.1)]
        if augment
        else [tv.Resize(256), tv.CenterCrop(224)]
    )
    return tv.Compose([*head, tv.ToTensor(), tv.Normalize(*IMAGENET_STATS)])


class TorchvisionSource:
    """A torchvision dataset of (image tensor [C, H, W], label), direct-encoded to [T, C, H, W]."""

    def __init__(self, dataset, T: int):
        self.dataset = dataset
        self.labels = np.asarray(dataset.targets, dtype=np.int64)
        self.T = T

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[i]
        return repeat_frames(image, self.T), int(label)


def build_cifar(info: DatasetInfo, split: str, T: int, root: Path, augment: bool) -> AoiDataset:
    """CIFAR-10/100 from `<root>/<name>/cifar-10-batches-py` or `cifar-100-python` (downloaded when missing)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if info.name == "cifar10" else CIFAR100
    folder = root / info.name
    error = missing(info.name, f"{folder}/{cls.base_folder}/ (the python-version batches)", CIFAR_WHERE)
    if not (folder / cls.base_folder).is_dir():
        download_or_raise(lambda: cls(folder, train=True, download=True), folder, error)
    try:
        dataset = cls(folder, train=split == "train", transform=cifar_transform(info.name, augment))
    except RuntimeError as exc:  # torchvision's md5 check failed
        raise type(error)(f"{error} [present but incomplete or corrupted: {exc}]") from exc
    return AoiDataset(
        TorchvisionSource(dataset, T),
        info,
        T,
        {"folder": portable(folder / cls.base_folder, root), "split_rule": "official train/test batches"},
    )


def build_imagenet(info: DatasetInfo, split: str, T: int, root: Path, augment: bool) -> AoiDataset:
    """ImageNet from `<root>/imagenet/{train,val}/<wnid>/*.JPEG` (torchvision ImageFolder); never downloads."""
    from torchvision.datasets import ImageFolder

    folder = root / "imagenet" / ("train" if split == "train" else "val")
    if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
        raise missing(
            "imagenet",
            "<root>/imagenet/{train,val}/<wnid>/*.JPEG (val sorted into wnid folders)",
            "https://image-net.org (ILSVRC2012)",
        )
    dataset = ImageFolder(folder, transform=imagenet_transform(augment))
    info = dataclasses.replace(info, num_classes=len(dataset.classes))
    return AoiDataset(
        TorchvisionSource(dataset, T),
        info,
        T,
        {"folder": portable(folder, root), "num_files": len(dataset), "split_rule": "official train/val"},
    )
