"""VGGSNN, TET's network for event data (Deng et al. 2022, ``models/VGG_models.py``)."""

from __future__ import annotations

import torch
from torch import nn

from aoi.models.layers import (
    ConvBNLIF,
    RowwiseLinear,
    avg_pool,
    check_input_shape,
    folded_inference,
    kaiming_init_convs,
    run_folded,
)

VGGSNN_CHANNELS = (64, 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P")


class VGGSNN(nn.Module):
    """VGGSNN: 64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-AP2-FC(K).

    | part     | layers                                | channels | 2x48x48 input |
    |----------|---------------------------------------|----------|---------------|
    | block1   | conv3x3-BN-LIF x2, avgpool 2          | 64, 128  | 24x24         |
    | block2   | conv3x3-BN-LIF x2, avgpool 2          | 256, 256 | 12x12         |
    | block3   | conv3x3-BN-LIF x2, avgpool 2          | 512, 512 | 6x6           |
    | block4   | conv3x3-BN-LIF x2, avgpool 2          | 512, 512 | 3x3           |
    | readout  | flatten, one Linear 512*(H/16)*(W/16) -> K, no neuron | | K logits/step |

    As in TET's code: 8 convs with bias, each followed by BN and a LIF; the pooled (non-binary)
    features of the last block feed a single Linear layer (TET: 512*3*3 -> 10 for 48x48);
    Kaiming-normal (fan_out) conv init. ``width`` scales every channel count (1.0 = the paper's
    network; the CPU benchmark uses a narrower one).
    """

    def __init__(self, num_classes: int, input_shape=(2, 48, 48), width: float = 1.0):
        super().__init__()
        channels, height, width_px = check_input_shape(input_shape, "vggsnn", min_size=16)
        layers, previous = [], channels
        for spec in VGGSNN_CHANNELS:
            if spec == "P":
                layers.append(avg_pool(2))
            else:
                out = max(1, round(spec * width))
                layers.append(ConvBNLIF(previous, out, bias=True))
                previous = out
        self.features = nn.Sequential(*layers)
        self.classifier = RowwiseLinear(previous * (height // 16) * (width_px // 16), num_classes)
        kaiming_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[T, N, C, H, W] -> logits [T, N, K] (in inference, `run_folded`: the same bits, faster)."""
        if folded_inference(self, x):
            return run_folded(self.features, self.classifier, x)
        return self.classifier(self.features(x).flatten(2))
