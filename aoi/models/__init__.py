"""Spiking models by name: `get_model(name, num_classes, input_shape, T)`.

Every model takes [T, N, C, H, W] inputs and returns per-step logits O [T, N, K]; convolutions
and BN run once over the time-folded batch, only `aoi.neurons.LIF` layers loop over time, and
each works with `aoi.neurons.streaming` (one [1, N, ...] step at a time) in eval mode.

- ``resnet19`` (TET's ResNet-19, CIFAR), ``vggsnn`` (TET's VGGSNN, event data),
  ``sew_resnet34`` (SEW-ResNet-34, ImageNet): the paper's architectures.
- ``digits_snn`` (digits, ndigits) and ``fashion_snn`` (fashion-mnist, nfashion, nmnist, nmnist-small):
  small CPU models.

`DEFAULT_MODEL` maps each dataset name to the model the paper (or our CPU profiles) use.
"""

from __future__ import annotations

from types import MappingProxyType

from torch import nn

from aoi.models.resnet import ResNet19, SEWResNet34
from aoi.models.small import ConvSNN, digits_snn, fashion_snn
from aoi.models.vgg import VGGSNN
from aoi.neurons import lif_layers

MODELS = MappingProxyType(
    {
        "resnet19": ResNet19,
        "vggsnn": VGGSNN,
        "sew_resnet34": SEWResNet34,
        "digits_snn": digits_snn,
        "fashion_snn": fashion_snn,
    }
)

DEFAULT_MODEL = MappingProxyType(
    {
        "digits": "digits_snn",
        "ndigits": "digits_snn",
        "fashion-mnist": "fashion_snn",
        "nfashion": "fashion_snn",
        "cifar10": "resnet19",
        "cifar100": "resnet19",
        "imagenet": "sew_resnet34",
        "cifar10dvs": "vggsnn",
        "ncaltech101": "vggsnn",
        "dvsgesture": "vggsnn",
        "nmnist": "fashion_snn",
        "nmnist-small": "fashion_snn",
    }
)


WIDENABLE = ("vggsnn", "digits_snn", "fashion_snn")  # models whose channel counts scale with ``width``


def get_model(
    name: str, num_classes: int, input_shape, T: int, detach_reset: bool = False, width: float = 1.0
) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes and inputs [T, N, *input_shape].

    The models themselves accept any number of steps; ``T`` (the configured number of
    timesteps) is checked and kept as ``model.T``, ``input_shape`` as ``model.input_shape``
    (`aoi.anytime.predict` checks inputs against both). ``detach_reset`` sets the reset gradient of
    every LIF (`aoi.lif_scan`); ``width`` scales every channel count (models in ``WIDENABLE``).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    if int(num_classes) < 1 or int(T) < 1:
        raise ValueError(f"num_classes and T must be >= 1, got num_classes={num_classes}, T={T}")
    options = {}
    if width != 1.0:
        if name not in WIDENABLE:
            raise ValueError(f"model {name!r} has a fixed width; width={width} works for {', '.join(WIDENABLE)}")
        options["width"] = float(width)
    model = MODELS[name](int(num_classes), tuple(input_shape), **options)
    for lif in lif_layers(model):
        lif.detach_reset = bool(detach_reset)
    model.T = int(T)
    model.input_shape = tuple(int(s) for s in input_shape)
    return model


__all__ = ["DEFAULT_MODEL", "MODELS", "VGGSNN", "ConvSNN", "ResNet19", "SEWResNet34", "get_model"]
