"""Small paper-like spiking CNNs that train in minutes on a laptop CPU.

Same recipe as VGGSNN, scaled down: stages of conv3x3-BN-LIF + avgpool 2, then a plain Linear
readout applied to the spikes at every step (no neuron on the output: the logits O_t).
Frame inputs (1 channel, direct encoding) and event inputs (2 polarities) alike: the first
convolution takes ``input_shape[0]`` channels.
"""

from __future__ import annotations

import torch
from torch import nn

from aoi.models.layers import (
    ConvBNLIF,
    RowwiseLinear,
    avg_pool,
    check_input_shape,
    folded_inference,
    run_folded,
)


class ConvSNN(nn.Module):
    """[T, N, C, H, W] -> logits [T, N, K] with one conv3x3-BN-LIF + avgpool 2 stage per entry of ``channels``.

    Parameters (convs have no bias, BN follows):
        sum over stages of 9 * C_in * C_out + 2 * C_out, plus the readout
        (C_last * (H // 2^S) * (W // 2^S) + 1) * K for S stages.
    """

    def __init__(self, num_classes: int, input_shape, channels=(32, 64), width: float = 1.0):
        super().__init__()
        in_channels, height, width_px = check_input_shape(input_shape, "ConvSNN", min_size=2 ** len(channels))
        layers, previous = [], in_channels
        for out in (max(1, round(c * width)) for c in channels):
            layers += [ConvBNLIF(previous, out), avg_pool(2)]
            previous = out
        self.features = nn.Sequential(*layers)
        shrink = 2 ** len(channels)
        self.readout = RowwiseLinear(previous * (height // shrink) * (width_px // shrink), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[T, N, C, H, W] -> logits [T, N, K] (in inference, `run_folded`: the same bits, faster)."""
        if folded_inference(self, x):
            return run_folded(self.features, self.readout, x)
        return self.readout(self.features(x).flatten(2))


def digits_snn(num_classes: int, input_shape=(1, 8, 8), width: float = 1.0) -> ConvSNN:
    """For digits (1x8x8 frames) and ndigits (2xHxW events):

    | layer   | 1x8x8 input            | output    |
    |---------|------------------------|-----------|
    | stage1  | 32C3-BN-LIF, AP2       | 32x4x4    |
    | stage2  | 64C3-BN-LIF, AP2       | 64x2x2    |
    | readout | Linear 256 -> K        | K / step  |

    digits, K = 10: 288 + 64 + 18432 + 128 + 2570 = 21,482 parameters.
    """
    return ConvSNN(num_classes, input_shape, channels=(32, 64), width=width)


def fashion_snn(num_classes: int, input_shape=(1, 28, 28), width: float = 1.0) -> ConvSNN:
    """For fashion-mnist (1x28x28 frames) and nfashion (2x34x34 events):

    | layer   | 1x28x28 input          | output    |
    |---------|------------------------|-----------|
    | stage1  | 32C3-BN-LIF, AP2       | 32x14x14  |
    | stage2  | 64C3-BN-LIF, AP2       | 64x7x7    |
    | stage3  | 128C3-BN-LIF, AP2      | 128x3x3   |
    | readout | Linear 1152 -> K       | K / step  |

    fashion-mnist, K = 10: 288 + 64 + 18432 + 128 + 73728 + 256 + 11530 = 104,426 parameters.
    """
    return ConvSNN(num_classes, input_shape, channels=(32, 64, 128), width=width)
