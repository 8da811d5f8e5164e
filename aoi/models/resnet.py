"""Residual spiking networks of the paper: ResNet-19 (TET) and SEW-ResNet-34 (ImageNet).

Both take [T, N, C, H, W] inputs and return per-step logits [T, N, K]. Every LIF is its own
module (TET's code reuses one stateless ``LIFSpike`` at several places; ours carry state and
record for STR, so each site gets its own), hence they work with `aoi.neurons.streaming`.
"""

from __future__ import annotations

import torch
from torch import nn

from aoi.models.layers import (
    ConvBNLIF,
    RowwiseLinear,
    TimeFolded,
    check_input_shape,
    conv_bn,
    global_avg_pool,
    kaiming_init_convs,
)
from aoi.neurons import LIF


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut, [T, N, C_in, H, W] -> [T, N, C_out, H/s, W/s].

    ``sew=False`` (TET/TDBN "spiking ResNet"): out = LIF(BN(conv(LIF(BN(conv x)))) + shortcut(x)),
    shortcut = identity or 1x1 conv-BN (no neuron).
    ``sew=True`` (SEW-ResNet, ADD connect): out = LIF(BN(conv(LIF(BN(conv x))))) + shortcut(x),
    shortcut = identity or 1x1 conv-BN-LIF, so the block outputs integers in {0, 1, 2, ...}.
    The 1x1 shortcut is used when the stride is not 1 or the channel count changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, sew: bool = False):
        super().__init__()
        self.sew = sew
        self.conv_bn1 = conv_bn(in_channels, out_channels, 3, stride)
        self.lif1 = LIF()
        self.conv_bn2 = conv_bn(out_channels, out_channels, 3, 1)
        self.lif2 = LIF()
        if stride != 1 or in_channels != out_channels:
            projection = conv_bn(in_channels, out_channels, 1, stride)
            self.shortcut = nn.Sequential(projection, LIF()) if sew else projection
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv_bn2(self.lif1(self.conv_bn1(x)))
        if self.sew:
            return self.lif2(residual) + self.shortcut(x)
        return self.lif2(residual + self.shortcut(x))


def residual_stage(in_channels: int, out_channels: int, blocks: int, stride: int, sew: bool) -> nn.Sequential:
    """``blocks`` BasicBlocks; the first one changes channels and applies ``stride``."""
    return nn.Sequential(
        *[
            BasicBlock(in_channels if i == 0 else out_channels, out_channels, stride if i == 0 else 1, sew)
            for i in range(blocks)
        ]
    )


class ResNet19(nn.Module):
    """ResNet-19 exactly as in TET's code (Deng et al. 2022, ``models/resnet_models.py``).

    | part   | layers                                            | channels | stride | 3x32x32 input |
    |--------|---------------------------------------------------|----------|--------|---------------|
    | stem   | conv3x3-BN-LIF                                    | 64       | 1      | 32x32         |
    | stage1 | 3 BasicBlocks (first: 1x1 conv-BN shortcut)       | 128      | 1      | 32x32         |
    | stage2 | 3 BasicBlocks (first: 1x1 conv-BN shortcut)       | 256      | 2      | 16x16         |
    | stage3 | 2 BasicBlocks (first: 1x1 conv-BN shortcut)       | 512      | 2      | 8x8           |
    | head   | global avg pool, FC 512->256, LIF, FC 256->K      |          |        | K logits/step |

    17 conv3x3 + 2 FC = 19 weight layers on the main path, plus 3 1x1 shortcut convs. Convs
    have no bias. TET's code has a 64-channel stem (the TDBN paper's table says 128; we follow
    the code that produced TET's and the authors' numbers). Default PyTorch init (as in TET).
    """

    def __init__(self, num_classes: int, input_shape=(3, 32, 32)):
        super().__init__()
        channels = check_input_shape(input_shape, "resnet19", min_size=4)[0]
        self.stem = ConvBNLIF(channels, 64)
        self.stages = nn.Sequential(
            residual_stage(64, 128, 3, 1, sew=False),
            residual_stage(128, 256, 3, 2, sew=False),
            residual_stage(256, 512, 2, 2, sew=False),
        )
        self.fc1 = RowwiseLinear(512, 256)
        self.lif_fc = LIF()
        self.fc2 = RowwiseLinear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[T, N, C, H, W] -> logits [T, N, K]."""
        features = global_avg_pool(self.stages(self.stem(x)))
        return self.fc2(self.lif_fc(self.fc1(features)))


class SEWResNet34(nn.Module):
    """SEW-ResNet-34 with ADD connect (Fang et al. 2021), LIF neurons instead of IF.

    | part   | layers                                          | channels | stride | 3x224x224 input |
    |--------|-------------------------------------------------|----------|--------|-----------------|
    | stem   | conv7x7-BN-LIF, maxpool 3x3 stride 2            | 64       | 2, 2   | 56x56           |
    | stage1 | 3 SEW BasicBlocks                               | 64       | 1      | 56x56           |
    | stage2 | 4 SEW BasicBlocks (first: 1x1 conv-BN-LIF sc.)  | 128      | 2      | 28x28           |
    | stage3 | 6 SEW BasicBlocks (first: 1x1 conv-BN-LIF sc.)  | 256      | 2      | 14x14           |
    | stage4 | 3 SEW BasicBlocks (first: 1x1 conv-BN-LIF sc.)  | 512      | 2      | 7x7             |
    | head   | global avg pool, FC 512->K                      |          |        | K logits/step   |

    1 conv7x7 + 32 conv3x3 + 1 FC = 34 weight layers, plus 3 1x1 shortcut convs; convs have
    no bias and Kaiming-normal (fan_out) init, BN weight 1 and bias 0, as in SEW's code.
    """

    def __init__(self, num_classes: int, input_shape=(3, 224, 224)):
        super().__init__()
        channels = check_input_shape(input_shape, "sew_resnet34", min_size=32)[0]
        self.stem = ConvBNLIF(channels, 64, kernel_size=7, stride=2)
        self.max_pool = TimeFolded(nn.MaxPool2d(3, stride=2, padding=1))
        self.stages = nn.Sequential(
            residual_stage(64, 64, 3, 1, sew=True),
            residual_stage(64, 128, 4, 2, sew=True),
            residual_stage(128, 256, 6, 2, sew=True),
            residual_stage(256, 512, 3, 2, sew=True),
        )
        self.fc = RowwiseLinear(512, num_classes)
        kaiming_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[T, N, C, H, W] -> logits [T, N, K]."""
        return self.fc(global_avg_pool(self.stages(self.max_pool(self.stem(x)))))
