"""Full-T inference, the fastest way aoi runs all T steps of a model: `full_forward`.

A plain ``model(inputs)`` folds time into the batch: every layer sees [T*N, ...] rows at once.
At the paper's sizes one activation takes hundreds of MB (VGGSNN's first layer: 590 KB per row,
377 MB at T=10, batch 64) and streams through memory instead of cache; with glibc's defaults it
was also handed back to the operating system when freed and faulted in again at every forward
(2.5x the time of the same forward in chunks, fashion_snn at 2x48x48, batch 64), which
`aoi.allocator` now prevents in every process that imports aoi. Which chunk is fastest is not a
simple function of its size: oneDNN picks other convolution kernels for other batch sizes
(digits_snn at 2x16x16 ran 44 us per row in chunks of 8 samples, 77 us in chunks of 12). So on the
CPU `full_forward` measures it: the first call for a model and input shape times a forward of 1,
2, 4, ... samples (all T steps each, largest activation under ``MAX_CHUNK_BYTES``) and keeps the
fastest per sample (`fastest_samples`); when one sample's T steps alone exceed that size, it runs
groups of steps with the neurons' state carried (`aoi.neurons.streaming`). On CUDA it runs the
largest chunks under ``MAX_CHUNK_BYTES``, unmeasured.

Exactness: the logits equal ``model(inputs)`` bit for bit on CPU for every aoi model (tested),
whatever the chunks, for the same reason as `aoi.anytime.predict`'s exits: each sample's logits
do not depend on the other samples in its batch, nor on whether its steps ran in one call or
several.
"""

from __future__ import annotations

import time
import weakref

import torch
from torch import nn

from aoi.neurons import streaming

MAX_CHUNK_BYTES = 256 * 2**20  # largest activation per chunk: bounds the memory of a forward
_ROW_BYTES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {row key: bytes}
_SAMPLE_SECONDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: {samples: s/sample}}


def row_key(inputs: torch.Tensor) -> tuple:
    return tuple(inputs.shape[2:]), inputs.dtype, inputs.device


def row_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of the largest activation of ``model`` per time-folded row (one sample at one step).

    Measured once per model and input row shape with a one-step forward of one sample (its
    modules' outputs, seen through forward hooks), then remembered.
    """
    known = _ROW_BYTES.setdefault(model, {})
    key = row_key(inputs)
    if key not in known:
        sizes = [inputs[:1, :1].nbytes]

        def hook(module, args, output):
            if isinstance(output, torch.Tensor):
                sizes.append(output.nbytes)

        handles = [module.register_forward_hook(hook) for module in model.modules()]
        try:
            with torch.no_grad():
                model(inputs[:1, :1])
        finally:
            for handle in handles:
                handle.remove()
        known[key] = max(sizes)
    return known[key]


def chunk_shape(T: int, N: int, rows: int) -> tuple[int, int]:
    """(samples, steps) per chunk for at most ``rows`` time-folded rows (>= 1 each): all T steps of as
    many samples as fit, else single samples in groups of steps."""
    rows = max(1, rows)
    if rows >= T:
        return min(N, rows // T), T
    return 1, rows


def fastest_samples(model: nn.Module, inputs: torch.Tensor, most: int, clock=time.perf_counter) -> int:
    """The number of samples per forward, 1, 2, 4, ... up to ``most``, whose forward of all T steps of
    ``inputs`` [T, N, ...] takes the least time per sample (the best of two forwards each), the sizes
    tried in turn until two in a row are slower than the best. The times are kept per model, T,
    input row shape and thread count; each size is measured once."""
    key = (inputs.shape[0], *row_key(inputs), torch.get_num_threads())
    seconds = _SAMPLE_SECONDS.setdefault(model, {}).setdefault(key, {})
    best, slower = None, 0
    for samples in (2**k for k in range(min(most, inputs.shape[1]).bit_length())):
        if samples not in seconds:
            times = []
            for _ in range(2):
                start = clock()
                model(inputs[:, :samples])
                times.append(clock() - start)
            seconds[samples] = min(times) / samples
        if best is None or seconds[samples] < seconds[best]:
            best, slower = samples, 0
        else:
            slower += 1
            if slower == 2:
                break
    return best


def full_forward(model: nn.Module, inputs: torch.Tensor, chunk_bytes: int | None = None) -> torch.Tensor:
    """All T steps of ``model`` on inputs [T, N, ...] under no_grad: per-step logits [T, N, K], equal to
    ``model(inputs)``, computed in chunks. ``chunk_bytes``: the largest activation of a chunk, fixed;
    None: the fastest chunk measured (CPU, `fastest_samples`) or the largest (CUDA) under
    ``MAX_CHUNK_BYTES``. The model must be in eval mode (batch norm's batch statistics would mix the
    samples of a chunk)."""
    if model.training:
        raise ValueError("full_forward needs the model in eval mode (batch norm running statistics): call model.eval()")
    T, N = inputs.shape[:2]
    with torch.no_grad():
        rows = (chunk_bytes or MAX_CHUNK_BYTES) // row_bytes(model, inputs)
        samples, steps = chunk_shape(T, N, rows)
        if chunk_bytes is None and steps == T and inputs.device.type == "cpu":
            samples = fastest_samples(model, inputs, samples)
        if samples * steps == T * N:
            return model(inputs)
        if steps == T:
            return torch.cat([model(group) for group in inputs.split(samples, dim=1)], dim=1)
        outputs = []
        for group in inputs.split(samples, dim=1):
            with streaming(model):
                outputs.append(torch.cat([model(part) for part in group.split(steps)]))
        return torch.cat(outputs, dim=1)
