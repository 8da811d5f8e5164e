"""Building blocks shared by the spiking models.

Every stateless layer (convolution, batch norm, pooling) runs ONCE over the time-folded batch
[T*N, ...]; only the `aoi.neurons.LIF` layers loop over time. A model built from these pieces
therefore depends on time only through its LIFs, which is what lets `aoi.neurons.streaming`
run it one step at a time with the same result as a full [T, N, ...] forward.
"""

from __future__ import annotations

import torch
from torch import nn

from aoi.neurons import LIF


class TimeFolded(nn.Module):
    """Apply a stateless ``module`` to every timestep at once: [T, N, ...] -> [T, N, ...']."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, N = x.shape[:2]
        return self.module(x.flatten(0, 1)).unflatten(0, (T, N))


def conv_bn(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, bias: bool = False
) -> TimeFolded:
    """Conv2d (padding kernel_size // 2) followed by BatchNorm2d, time-folded: [T, N, C, H, W] -> [T, N, C', H', W']."""
    return TimeFolded(
        nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias),
            nn.BatchNorm2d(out_channels),
        )
    )


def avg_pool(kernel_size: int = 2) -> TimeFolded:
    """Time-folded AvgPool2d: [T, N, C, H, W] -> [T, N, C, H/k, W/k]."""
    return TimeFolded(nn.AvgPool2d(kernel_size))


class ConvBNLIF(nn.Module):
    """conv-BN-LIF: [T, N, C, H, W] currents in, [T, N, C', H', W'] spikes out."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, bias: bool = False):
        super().__init__()
        self.conv_bn = conv_bn(in_channels, out_channels, kernel_size, stride, bias)
        self.lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.conv_bn(x))


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """Mean over the spatial dims: [T, N, C, H, W] -> [T, N, C]."""
    return x.mean(dim=(-2, -1))


def kaiming_init_convs(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU gain) weights for every Conv2d, as in TET's VGGSNN and SEW-ResNet."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


def check_input_shape(input_shape, name: str, min_size: int = 1) -> tuple[int, int, int]:
    """Validate ``(C, H, W)`` and return it as a tuple of ints."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} needs input_shape (C, H, W), got {tuple(input_shape)}")
    if min(shape[1:]) < min_size:
        raise ValueError(f"{name} needs inputs of at least {min_size}x{min_size} pixels, got {shape}")
    return shape
