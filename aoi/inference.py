"""Full-T inference, the fastest way aoi runs all T steps of a model: `full_forward`.

A plain ``model(inputs)`` folds time into the batch: every layer sees [T*N, ...] rows at once.
At the paper's sizes one activation takes hundreds of MB (VGGSNN's first layer: 590 KB per row,
377 MB at T=10, batch 64), allocated afresh at every forward: glibc hands blocks that big back
to the operating system when they are freed, so each forward page-faults them in again (4 KB at
a time, zeroed by the kernel), and they stream through memory instead of cache. On our 2-core
machines a batch-64 forward of fashion_snn at 2x48x48 took 2.5x the time of the same forward in
4 MB chunks, most of the difference in page faults; training steps pay the same (see
benchmarks/README.md). `full_forward` runs the forward on groups of samples (all T steps
each; or, when one sample's T steps alone are too big, groups of steps with the neurons' state
carried, `aoi.neurons.streaming`), sized so that no activation exceeds ``chunk_bytes``: memory
is reused from the allocator and stays in cache, and the per-call overhead stays amortised
over many rows.

Exactness: the logits equal ``model(inputs)`` bit for bit on CPU for every aoi model (tested),
for the same reason as `aoi.anytime.predict`'s exits: each sample's logits do not depend on the
other samples in its batch, nor on whether its steps ran in one call or several.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from aoi.neurons import streaming

CHUNK_BYTES = 4 * 2**20  # largest activation per chunk: a few L2 caches, far under glibc's 32 MB reuse limit
_ROW_BYTES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {row shape and dtype: bytes}


def row_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of the largest activation of ``model`` per time-folded row (one sample at one step).

    Measured once per model and input row shape with a one-step forward of one sample (its
    modules' outputs, seen through forward hooks), then remembered.
    """
    key = (tuple(inputs.shape[2:]), inputs.dtype, inputs.device)
    known = _ROW_BYTES.setdefault(model, {})
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


def full_forward(model: nn.Module, inputs: torch.Tensor, chunk_bytes: int | None = CHUNK_BYTES) -> torch.Tensor:
    """All T steps of ``model`` on inputs [T, N, ...] under no_grad: per-step logits [T, N, K], equal to
    ``model(inputs)``, computed in chunks whose largest activation stays under ``chunk_bytes``
    (None: one chunk, the plain folded forward). The model must be in eval mode (batch norm's
    batch statistics would mix the samples of a chunk)."""
    if model.training:
        raise ValueError("full_forward needs the model in eval mode (batch norm running statistics): call model.eval()")
    T, N = inputs.shape[:2]
    rows = T * N if chunk_bytes is None else chunk_bytes // row_bytes(model, inputs)
    samples, steps = chunk_shape(T, N, rows)
    with torch.no_grad():
        if samples * steps == T * N:
            return model(inputs)
        if steps == T:
            return torch.cat([model(group) for group in inputs.split(samples, dim=1)], dim=1)
        outputs = []
        for group in inputs.split(samples, dim=1):
            with streaming(model):
                outputs.append(torch.cat([model(part) for part in group.split(steps)]))
        return torch.cat(outputs, dim=1)
