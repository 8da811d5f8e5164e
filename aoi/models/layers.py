"""Building blocks shared by the spiking models.

Every stateless layer (convolution, batch norm, pooling) runs ONCE over the time-folded batch
[T*N, ...]; only the `aoi.neurons.LIF` layers loop over time. A model built from these pieces
therefore depends on time only through its LIFs, which is what lets `aoi.neurons.streaming`
run it one step at a time with the same result as a full [T, N, ...] forward. Bit for bit, on
CPU: `OneDNNConv2d` and `RowwiseLinear` give a row the same result in a batch of any size.

Inference of a chain of these blocks (`run_folded`, used by `ConvSNN` and `VGGSNN` in eval mode
without autograd) keeps the rows folded from the input to the head and calls the same kernels
without the module calls, reshapes and checks between them: half the time of a step of digits_snn
at batch 1 went there. The same kernels in the same order: the same bits.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numba
import numpy as np
import torch
from torch import nn

from aoi.neurons import LIF

_ONEDNN = torch.backends.mkldnn.is_available()
_MODULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its modules, for `folded_inference`


def _forget_modules(module: nn.Module, name: str, submodule) -> None:
    """A submodule was set somewhere (torch's global registration hook): cached module lists may be stale."""
    _MODULES.clear()


torch.nn.modules.module.register_module_module_registration_hook(_forget_modules)


class TimeFolded(nn.Module):
    """Apply a stateless ``module`` to every timestep at once: [T, N, ...] -> [T, N, ...']."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x.flatten(0, 1))
        return y.view(x.shape[:2] + y.shape[1:])

    def fold(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """The module on rows already folded, [steps * N, ...] -> [steps * N, ...'] (`run_folded`)."""
        return getattr(self.module, "fold", self.module.forward)(x)


class OneDNNConv2d(nn.Conv2d):
    """``nn.Conv2d`` that, in eval mode on CPU, runs oneDNN's kernel (``torch.mkldnn_convolution``) for
    every batch size. PyTorch picks its own im2col kernel for a single small image (and for 1x1
    kernels under 16 rows on one thread), which rounds differently from oneDNN's; oneDNN gives each
    image the same result in a batch of any size (observed), so a streamed or chunked forward
    equals the folded one bit for bit. In training mode, or off the CPU, it is ``nn.Conv2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = self.training or not _ONEDNN or x.device.type != "cpu" or x.dtype != torch.float32
        if plain or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        geometry = (self.padding, self.stride, self.dilation, self.groups)
        return torch.mkldnn_convolution(x, self.weight, self.bias, *geometry)


def conv_bn(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, bias: bool = False
) -> TimeFolded:
    """Conv2d (padding kernel_size // 2) followed by BatchNorm2d, time-folded: [T, N, C, H, W] -> [T, N, C', H', W']."""
    return TimeFolded(
        nn.Sequential(
            OneDNNConv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias),
            nn.BatchNorm2d(out_channels),
        )
    )


_FOUR = np.float32(4.0)


@numba.njit(cache=True)
def _pool2_forward(x, out):
    """out [R, H // 2, W // 2] = 2x2 means of x [R, H, W] (an odd last row or column is dropped), summed
    in the order of PyTorch's kernel, ((x00 + x01) + x10) + x11, then / 4."""
    for r in range(out.shape[0]):
        for i in range(out.shape[1]):
            top, bottom, row = x[r, 2 * i], x[r, 2 * i + 1], out[r, i]
            for j in range(out.shape[2]):
                row[j] = (((top[2 * j] + top[2 * j + 1]) + bottom[2 * j]) + bottom[2 * j + 1]) / _FOUR


@numba.njit(cache=True)
def _pool2_backward(grad, grad_x):
    """grad_x [R, H, W] = grad [R, H // 2, W // 2] / 4 in each of its 2x2 inputs (one contribution per
    input, as in ``avg_pool2d_backward``); entries outside the windows are left as they are."""
    for r in range(grad.shape[0]):
        for i in range(grad.shape[1]):
            for j in range(grad.shape[2]):
                quarter = grad[r, i, j] / _FOUR
                grad_x[r, 2 * i, 2 * j] = quarter
                grad_x[r, 2 * i, 2 * j + 1] = quarter
                grad_x[r, 2 * i + 1, 2 * j] = quarter
                grad_x[r, 2 * i + 1, 2 * j + 1] = quarter


def _as_maps(x: torch.Tensor) -> np.ndarray:
    """x [..., H, W] as a contiguous float32 numpy array [R, H, W]."""
    return x.detach().contiguous().numpy().reshape(-1, *x.shape[-2:])


def _pool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pool of a float32 CPU tensor x [..., H, W] by `_pool2_forward`, without autograd."""
    maps = _as_maps(x)
    out = np.empty((maps.shape[0], maps.shape[1] // 2, maps.shape[2] // 2), np.float32)
    _pool2_forward(maps, out)
    return torch.from_numpy(out).view(*x.shape[:-2], *out.shape[1:])


class _Pool2(torch.autograd.Function):
    """2x2 average pool of a float32 CPU tensor x [..., H, W] by the compiled kernels above: the bits of
    ``nn.AvgPool2d(2)``, forward and backward, 5-10x faster (PyTorch's kernels for contiguous NCHW
    maps are scalar)."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return _pool2(x)

    @staticmethod
    def backward(ctx, grad):
        H, W = ctx.shape[-2:]
        maps = _as_maps(grad)
        grad_x = (np.empty if H % 2 == 0 and W % 2 == 0 else np.zeros)((maps.shape[0], H, W), np.float32)
        _pool2_backward(maps, grad_x)
        return torch.from_numpy(grad_x).view(ctx.shape)


class AvgPool2(nn.AvgPool2d):
    """``nn.AvgPool2d(2)``, bit for bit, forward and backward; on CPU for float32 maps of at least 2x2
    it runs `_Pool2`. [..., H, W] -> [..., H/2, W/2]."""

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32 or min(x.shape[-2:]) < 2:
            return super().forward(x)
        return _Pool2.apply(x)

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` in inference (`run_folded`: float32 on the CPU), the kernel called without autograd."""
        return super().forward(x) if min(x.shape[-2:]) < 2 else _pool2(x)


class RowwiseLinear(nn.Linear):
    """``nn.Linear`` whose result for a row never depends on the other rows of the call, in eval
    mode: MKL's sgemm rounds a row differently when called with 1 or 3 rows than with 64 (observed
    on CPU), which would make streamed (`aoi.anytime`) and chunked (`aoi.inference`) logits differ
    in the last bit from the folded forward's. In eval mode it computes a batch of one-row products
    (``torch.baddbmm``: the same small product for every row, about as fast); in training mode it is
    ``nn.Linear``. [..., F] -> [..., K]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        rows = x.reshape(-1, 1, self.in_features)
        weight = self.weight.t().expand(rows.shape[0], -1, -1)
        if self.bias is None:
            out = torch.bmm(rows, weight)
        else:
            out = torch.baddbmm(self.bias.expand(rows.shape[0], 1, -1), rows, weight)
        return out.view(*x.shape[:-1], self.out_features)


def avg_pool(kernel_size: int = 2) -> TimeFolded:
    """Time-folded AvgPool2d: [T, N, C, H, W] -> [T, N, C, H/k, W/k] (`AvgPool2` for k = 2)."""
    return TimeFolded(AvgPool2() if kernel_size == 2 else nn.AvgPool2d(kernel_size))


class ConvBNLIF(nn.Module):
    """conv-BN-LIF: [T, N, C, H, W] currents in, [T, N, C', H', W'] spikes out."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, bias: bool = False):
        super().__init__()
        self.conv_bn = conv_bn(in_channels, out_channels, kernel_size, stride, bias)
        self.lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.conv_bn(x))

    def fold(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Inference on folded rows [steps * N, C, H, W] -> spikes [steps * N, C', H', W'] (`run_folded`)."""
        conv, bn = self.conv_bn.module
        y = conv.forward(x)
        y = torch.batch_norm(y, bn.weight, bn.bias, bn.running_mean, bn.running_var, False, 0.0, bn.eps, False)
        return self.lif.fold(y, steps)


def folded_inference(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``model`` may run `run_folded` on x: no autograd, float32 on a CPU with oneDNN, every
    module in eval mode and without hooks (operation counting and activation probes must see every
    module call), every `LIF` fused and not recording, every `ConvBNLIF` with an aoi `LIF` (not one
    swapped for another neuron). The model's modules are listed once and listed again after any
    submodule is set anywhere."""
    if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32 or not _ONEDNN:
        return False
    hooks = torch.nn.modules.module  # the global hooks that every module call would run
    if hooks._global_forward_hooks or hooks._global_forward_pre_hooks:
        return False
    modules = _MODULES.get(model)
    if modules is None:
        modules = _MODULES[model] = tuple(model.modules())
    for module in modules:
        if module.training or module._forward_hooks or module._forward_pre_hooks:
            return False
        if isinstance(module, LIF) and (module.record or not module.fused):
            return False
        if isinstance(module, ConvBNLIF) and not isinstance(module.lif, LIF):
            return False
    return True


def run_folded(blocks: Sequence[nn.Module], head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``head(blocks(x).flatten(2))`` in inference (`folded_inference`): x [T, N, ...] folded once into rows
    [T * N, ...], each block's ``fold`` on them, the head's forward on the flattened rows; logits [T, N, K]."""
    steps, samples = x.shape[:2]
    rows = x.flatten(0, 1)
    for block in blocks:
        rows = block.fold(rows, steps)
    return head.forward(rows.flatten(1)).view(steps, samples, -1)


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
