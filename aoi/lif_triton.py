"""Triton kernels for the LIF scan: all T steps of the hard-reset LIF, forward and backward.

Same contract as ``aoi.lif_scan._scan_forward`` / ``_scan_backward`` (which call these on CUDA) (per element, t = 1..T):

    u_t = x_t + tau * m_{t-1}              pre-reset potential (input units)
    s_t = 1 if u_t > theta else 0          spike
    m_t = 0 if s_t else u_t                hard reset
    r_t = 1 if s_t else max(u_t, 0)/theta  soft spike r = s + ReLU(m / theta), only when recording

and the backward from the saved u, with the triangle surrogate ds/du = max(width - |u - theta|, 0)
/ width^2, ``silent = u <= theta`` and ``carried`` = tau * dL/du_{t+1} (zero after step T):

    gm = carried + [grad_r and silent and u > 0] grad_r / theta      dL/dm_t
    gs = grad_s + grad_r                                             dL/ds_t, direct
    gs -= u * gm                    unless detach_reset (the gradient through m_t = u_t (1 - s_t))
    dL/dx_t = dL/du_t = gs * surrogate(u) + [silent] gm

Each program owns BLOCK elements and loops over t with the state in registers: one read of the
inputs and one write of the outputs, per direction. Arithmetic is float32 without FMA contraction
(``enable_fp_fusion=False``) and with IEEE division, so u and the spikes equal those of the CPU
(numba) kernel bit for bit.

Interpreter mode: triton reads TRITON_INTERPRET when a kernel is *created* (``triton.jit``). Here
the kernels are plain functions, made into triton kernels on first use, once per mode, with the
mode set in a ``triton.knobs.runtime.scope()`` (which restores the knob and the environment after):
CPU tensors always run in triton's interpreter (the only way triton runs on a CPU; slow, for
tests), CUDA tensors compiled (or interpreted when TRITON_INTERPRET=1). So tests run the kernels
on CPU tensors in the same process as everything else, with no environment to set. `available`
is True on CPU only when TRITON_INTERPRET=1, so a dispatch never picks the interpreter by chance.
The kernels call only triton builtins (``tl.full``, not ``tl.zeros``): triton's own @jit helpers
(triton.language.standard) are made when triton is imported, so without TRITON_INTERPRET=1 at that
time they cannot be interpreted (calling one fails loudly, in the tests).

Triton is optional: without it this module imports (the kernels' ``tl.constexpr`` annotations are
never evaluated) and `available` is False.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs
    triton = tl = None

BLOCK = 1024  # elements per program: 8 per thread with 4 warps (two 16-byte loads per tensor and step)
OPTIONS = {"num_warps": 4, "enable_fp_fusion": False}  # compiler options: no FMA contraction (IEEE mul, add)


def _forward_kernel(
    x_ptr, m0_ptr, u_ptr, s_ptr, r_ptr, last_ptr, T, M, tau, theta, RECORD: tl.constexpr, BLOCK: tl.constexpr
):
    """x [T, M], m0 [M] -> u, s (and r when RECORD) [T, M], m_T [M]; all contiguous float32."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    m = tl.load(m0_ptr + offs, mask=mask, other=0.0)
    for _ in range(T):
        u = tl.load(x_ptr + offs, mask=mask, other=0.0) + tau * m
        fired = u > theta
        tl.store(u_ptr + offs, u, mask=mask)
        tl.store(s_ptr + offs, fired.to(tl.float32), mask=mask)
        if RECORD:
            tl.store(r_ptr + offs, tl.where(fired, 1.0, tl.math.div_rn(tl.maximum(u, 0.0), theta)), mask=mask)
        m = tl.where(fired, 0.0, u)
        x_ptr += M  # pointer steps: 64-bit, no int32 overflow of t * M
        u_ptr += M
        s_ptr += M
        r_ptr += M
    tl.store(last_ptr + offs, m, mask=mask)


def _backward_kernel(
    u_ptr, gs_ptr, gr_ptr, gx_ptr, gm0_ptr, T, M, tau, theta, width,
    HAS_GRAD_R: tl.constexpr, DETACH_RESET: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """u, grad_s (grad_r) [T, M] -> grad_x [T, M], grad_m0 [M]. The [T, M] pointers point at row T - 1."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    carried = tl.full([BLOCK], 0.0, tl.float32)  # tau * dL/du_{t+1}
    scale = tl.math.div_rn(1.0, width * width)  # as the CPU kernel: one division, not one per element
    for _ in range(T):
        u = tl.load(u_ptr + offs, mask=mask, other=0.0)
        gs = tl.load(gs_ptr + offs, mask=mask, other=0.0)
        silent = u <= theta
        gm = carried
        if HAS_GRAD_R:
            gr = tl.load(gr_ptr + offs, mask=mask, other=0.0)
            gm = gm + tl.where(silent & (u > 0.0), tl.math.div_rn(gr, theta), 0.0)
            gs = gs + gr
        if not DETACH_RESET:
            gs = gs - u * gm
        surrogate = tl.maximum(width - tl.abs(u - theta), 0.0) * scale
        g = gs * surrogate + tl.where(silent, gm, 0.0)
        tl.store(gx_ptr + offs, g, mask=mask)
        carried = tau * g
        u_ptr -= M
        gs_ptr -= M
        gr_ptr -= M
        gx_ptr -= M
    tl.store(gm0_ptr + offs, carried, mask=mask)


@functools.cache
def _jit(fn, interpret: bool):
    """``fn`` as a triton kernel, interpreted or compiled (triton decides when the kernel is made)."""
    with triton.knobs.runtime.scope():
        triton.knobs.runtime.interpret = interpret
        return triton.jit(fn)


def _launch(fn, tensor: torch.Tensor, M: int, *args, **constexprs) -> None:
    """Run kernel ``fn`` over M elements in programs of BLOCK, in the mode ``tensor``'s device needs."""
    interpret = tensor.device.type == "cpu" or triton.knobs.runtime.interpret
    kernel = _jit(fn, interpret)
    with torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext():  # triton's device
        kernel[(triton.cdiv(M, BLOCK),)](*args, **constexprs, BLOCK=BLOCK, **OPTIONS)


def available(x: torch.Tensor) -> bool:
    """Whether the kernels can run on ``x``: float32, triton installed, and on a CUDA device
    (or on the CPU in triton's interpreter when TRITON_INTERPRET=1)."""
    if triton is None or x.dtype != torch.float32:
        return False
    return x.is_cuda or (x.device.type == "cpu" and triton.knobs.runtime.interpret)


def scan_forward(x: torch.Tensor, m0: torch.Tensor, tau: float, theta: float, record: bool):
    """Forward scan of x [T, ...] (float32) from m0 [...] (post-reset membrane before step 1).

    Returns u [T, ...] (pre-reset potentials), spikes [T, ...], soft spikes [T, ...] (an empty
    tensor unless ``record``), and m_T [...] (post-reset membrane after the last step).
    """
    T, M = x.shape[0], math.prod(x.shape[1:])
    x2 = x.detach().contiguous().view(T, M)
    u, spikes = torch.empty_like(x2), torch.empty_like(x2)
    soft = torch.empty_like(x2) if record else spikes  # r_ptr unused without RECORD
    last = torch.empty(M, dtype=x.dtype, device=x.device)
    if M > 0:
        m = m0.detach().contiguous().view(M)
        _launch(
            _forward_kernel, x2, M, x2, m, u, spikes, soft, last, T, M, float(tau), float(theta), RECORD=bool(record)
        )
    soft = soft.view(x.shape) if record else x.new_empty(0)
    return u.view(x.shape), spikes.view(x.shape), soft, last.view(x.shape[1:])


def scan_backward(
    u: torch.Tensor,
    grad_spikes: torch.Tensor,
    grad_soft: torch.Tensor | None,
    tau: float,
    theta: float,
    width: float,
    detach_reset: bool,
):
    """Backward scan from the saved u [T, ...] and dL/dspikes [T, ...] (dL/dsoft [T, ...], or None
    or an empty tensor when not recording): returns dL/dx [T, ...] and dL/dm0 [...]. With
    ``detach_reset`` the reset factor (1 - s_t) is detached (snnTorch), else differentiated (TET)."""
    has_grad_soft = grad_soft is not None and grad_soft.numel() > 0
    T, M = u.shape[0], math.prod(u.shape[1:])
    u2 = u.detach().contiguous().view(T, M)
    grad_x = torch.empty_like(u2)
    grad_m0 = torch.zeros(M, dtype=u.dtype, device=u.device)
    if M > 0 and T > 0:
        gs = grad_spikes.contiguous().view(T, M)
        gr = grad_soft.contiguous().view(T, M) if has_grad_soft else gs
        rows = (u2[-1], gs[-1], gr[-1], grad_x[-1])  # the kernel walks back from t = T
        flags = {"HAS_GRAD_R": has_grad_soft, "DETACH_RESET": bool(detach_reset)}
        _launch(_backward_kernel, u2, M, *rows, grad_m0, T, M, float(tau), float(theta), float(width), **flags)
    return grad_x.view(u.shape), grad_m0.view(u.shape[1:])
