"""The LIF's time scan, forward and backward, as one autograd node: `lif_multistep`.

Per element and step t = 1..T (x: input currents, m: post-reset membrane, m_0 given):

    u_t = x_t + tau * m_{t-1}        pre-reset potential
    s_t = H(u_t - theta)             spike (strictly above theta)
    m_t = u_t * (1 - s_t)            hard reset
    r_t = s_t + ReLU(m_t / theta)    soft spike, STR's input (only when recording)

Backward, with the triangle surrogate ds/du = max(0, g - |u - theta|) / g^2 and dL/dm_t the
gradient arriving from step t+1 (tau * dL/du_{t+1}) plus, where the soft spikes are used,
dL/dr_t * [m_t > 0] / theta:

    dL/du_t = (dL/ds_t + dL/dr_t - u_t * dL/dm_t) * ds/du + (1 - s_t) * dL/dm_t

The term -u_t * dL/dm_t is the gradient through the reset factor (1 - s_t), as in TET's and
the authors' toolkit's LIF (``detach_reset=False``). snnTorch detaches the reset factor
(``detach_reset=True``) and drops it; docs/method.md says what each profile uses.

Backends: compiled numba kernels for float32 CPU tensors (one pass over memory per direction,
the state of a block of elements in cache; serial on one torch thread or small tensors, else on
numba's workqueue threads), the Triton kernels of `aoi.lif_triton` on CUDA, a PyTorch loop over t
elsewhere. All save only u [T, ...] for the backward pass. `lif_inference` is the forward alone,
without autograd, updating a carried membrane in place (inference, one step at a time), on the CPU
by a kernel of its own that keeps no potentials and copies no state (3-4x faster at T = 1).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from aoi import lif_triton

_ZERO, _ONE = np.float32(0.0), np.float32(1.0)  # the CPU kernels compute in float32, as PyTorch does
_BLOCK = 4096  # elements per kernel task: the state of a block stays in cache and the inner loop vectorises
_PARALLEL_MIN = 16 * _BLOCK  # fewer elements x steps than this run serially: a parallel launch costs ~20 us


@numba.njit(cache=True)
def _forward_block(x, m0, tau, theta, store_u, record, u_out, s_out, r_out, m_last, b):
    """All T steps of elements [b * _BLOCK, (b + 1) * _BLOCK) of the forward scan (see `_forward`)."""
    lo, hi = b * _BLOCK, min((b + 1) * _BLOCK, x.shape[1])
    m = m0[lo:hi].copy()  # read before m_last is written: m_last may be m0 (state updated in place)
    for t in range(x.shape[0]):
        x_t, u_t, s_t, r_t = x[t, lo:hi], u_out[t, lo:hi], s_out[t, lo:hi], r_out[t, lo:hi]
        for j in range(hi - lo):
            u = x_t[j] + tau * m[j]
            if store_u:
                u_t[j] = u
            fired = u > theta
            s_t[j] = _ONE if fired else _ZERO
            m[j] = _ZERO if fired else u
            if record:
                r_t[j] = _ONE if fired else max(u, _ZERO) / theta
    m_last[lo:hi] = m


@numba.njit(parallel=True, cache=True)
def _forward_parallel(x, m0, tau, theta, store_u, record, u_out, s_out, r_out, m_last):
    for b in numba.prange((x.shape[1] + _BLOCK - 1) // _BLOCK):
        _forward_block(x, m0, tau, theta, store_u, record, u_out, s_out, r_out, m_last, b)


@numba.njit(cache=True)
def _forward_serial(x, m0, tau, theta, store_u, record, u_out, s_out, r_out, m_last):
    for b in range((x.shape[1] + _BLOCK - 1) // _BLOCK):
        _forward_block(x, m0, tau, theta, store_u, record, u_out, s_out, r_out, m_last, b)


@numba.njit(cache=True)
def _inference_block(x, m, tau, theta, s_out, b):
    """All T steps of elements [b * _BLOCK, (b + 1) * _BLOCK) of the forward scan for inference: the
    membrane ``m`` updated in place, no potentials kept (3-4x faster than `_forward_block` at T = 1)."""
    lo, hi = b * _BLOCK, min((b + 1) * _BLOCK, x.shape[1])
    m_b = m[lo:hi]
    for t in range(x.shape[0]):
        x_t, s_t = x[t, lo:hi], s_out[t, lo:hi]
        for j in range(hi - lo):
            u = x_t[j] + tau * m_b[j]
            fired = u > theta
            s_t[j] = _ONE if fired else _ZERO
            m_b[j] = _ZERO if fired else u


@numba.njit(parallel=True, cache=True)
def _inference_parallel(x, m, tau, theta, s_out):
    for b in numba.prange((x.shape[1] + _BLOCK - 1) // _BLOCK):
        _inference_block(x, m, tau, theta, s_out, b)


@numba.njit(cache=True)
def _inference_serial(x, m, tau, theta, s_out):
    for b in range((x.shape[1] + _BLOCK - 1) // _BLOCK):
        _inference_block(x, m, tau, theta, s_out, b)


@numba.njit(cache=True)
def _backward_block(u, grad_s, grad_r, has_grad_r, tau, theta, width, detach_reset, grad_x, grad_m0, b):
    """Elements [b * _BLOCK, (b + 1) * _BLOCK) of the backward scan, from t = T down to 1 (see `_backward`)."""
    lo, hi = b * _BLOCK, min((b + 1) * _BLOCK, u.shape[1])
    scale = _ONE / (width * width)
    carried = np.zeros(hi - lo, dtype=np.float32)  # tau * dL/du_{t+1}, flowing back through m_t
    for t in range(u.shape[0] - 1, -1, -1):
        u_t, gs_t, gr_t, gx_t = u[t, lo:hi], grad_s[t, lo:hi], grad_r[t, lo:hi], grad_x[t, lo:hi]
        for j in range(hi - lo):
            silent = u_t[j] <= theta
            surrogate = max(width - abs(u_t[j] - theta), _ZERO) * scale
            if detach_reset:
                g = gs_t[j] * surrogate
                if has_grad_r:  # r = s + ReLU(m / theta)
                    g += gr_t[j] * surrogate
                if silent:  # m_t = u_t
                    g += carried[j]
                    if has_grad_r and u_t[j] > _ZERO:
                        g += gr_t[j] / theta
            else:
                grad_m = carried[j]  # dL/dm_t
                grad_spike = gs_t[j]  # dL/ds_t, direct and through r and the reset
                if has_grad_r:
                    grad_spike += gr_t[j]
                    if silent and u_t[j] > _ZERO:
                        grad_m += gr_t[j] / theta
                g = (grad_spike - u_t[j] * grad_m) * surrogate
                if silent:
                    g += grad_m
            gx_t[j] = g
            carried[j] = tau * g
    grad_m0[lo:hi] = carried


@numba.njit(parallel=True, cache=True)
def _backward_parallel(u, grad_s, grad_r, has_grad_r, tau, theta, width, detach_reset, grad_x, grad_m0):
    for b in numba.prange((u.shape[1] + _BLOCK - 1) // _BLOCK):
        _backward_block(u, grad_s, grad_r, has_grad_r, tau, theta, width, detach_reset, grad_x, grad_m0, b)


@numba.njit(cache=True)
def _backward_serial(u, grad_s, grad_r, has_grad_r, tau, theta, width, detach_reset, grad_x, grad_m0):
    for b in range((u.shape[1] + _BLOCK - 1) // _BLOCK):
        _backward_block(u, grad_s, grad_r, has_grad_r, tau, theta, width, detach_reset, grad_x, grad_m0, b)


def _use_cpu_kernel(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32


def _kernel(serial, parallel, size: int):
    """``parallel`` on as many threads as torch uses, or ``serial`` (one thread, or under ``_PARALLEL_MIN``
    elements x steps). The parallel kernels run on numba's workqueue threads unless NUMBA_THREADING_LAYER
    chooses: its OpenMP layer would take over torch's OpenMP threads (torch.get_num_threads() becomes
    numba's thread count) and spin beside them. Bitwise results depend on neither choice."""
    if size < _PARALLEL_MIN:
        return serial
    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if threads == 1:
        return serial
    if numba.config.THREADING_LAYER == "default":  # NUMBA_THREADING_LAYER unset
        numba.config.THREADING_LAYER = "workqueue"  # read when numba first starts its threads
    numba.set_num_threads(threads)
    return parallel


def soft_spikes(u: torch.Tensor, theta: float) -> torch.Tensor:
    """r = s + ReLU(m / theta) from the pre-reset potential u: 1 where fired, else ReLU(u) / theta."""
    return torch.where(u > theta, torch.ones_like(u), u.clamp(min=0) / theta)


def _scan_forward(x, m0, tau, theta, record):
    """u [T, ...] (pre-reset potentials), spikes, soft spikes (empty unless ``record``), last m [...]."""
    if _use_cpu_kernel(x):
        x2, m2 = x.detach().contiguous().view(x.shape[0], -1), m0.detach().contiguous().view(-1)
        u, spikes, last = torch.empty_like(x2), torch.empty_like(x2), torch.empty_like(m2)
        soft = torch.empty_like(x2) if record else spikes
        kernel = _kernel(_forward_serial, _forward_parallel, x2.numel())
        arrays = (u.numpy(), spikes.numpy(), soft.numpy(), last.numpy())
        kernel(x2.numpy(), m2.numpy(), np.float32(tau), np.float32(theta), True, record, *arrays)
        soft = soft.view(x.shape) if record else x.new_empty(0)
        return u.view(x.shape), spikes.view(x.shape), soft, last.view(m0.shape)
    if lif_triton.available(x):
        return lif_triton.scan_forward(x, m0, tau, theta, record)
    u = torch.empty_like(x)
    m = m0
    for t in range(x.shape[0]):
        torch.add(x[t], m, alpha=tau, out=u[t])
        m = u[t].masked_fill(u[t] > theta, 0.0)
    soft = soft_spikes(u, theta) if record else x.new_empty(0)
    return u, (u > theta).to(x.dtype), soft, m


def lif_inference(x: torch.Tensor, m: torch.Tensor, tau: float = 0.5, theta: float = 1.0) -> torch.Tensor:
    """The forward scan without autograd, for inference: input currents x [T, N, ...] -> spikes [T, N, ...],
    and the membrane m [N, ...] (post-reset, before step 1) updated IN PLACE to the one after step T.

    Same spikes and membrane as `lif_multistep`, bit for bit; on the CPU one compiled call
    (`_inference_serial`) given numpy arrays: this is the per-step path of `aoi.anytime`, where
    every microsecond is paid once per layer and step. ``m`` must be contiguous.
    """
    if x.shape[1:] != m.shape:  # the kernel would write past the membrane
        raise ValueError(f"lif_inference: inputs {tuple(x.shape)} do not match the membrane {tuple(m.shape)}")
    if _use_cpu_kernel(x) and m.is_contiguous():
        x_np = x.detach().contiguous().numpy().reshape(x.shape[0], -1)
        m_np, s_np = m.numpy().reshape(-1), np.empty_like(x_np)
        kernel = _kernel(_inference_serial, _inference_parallel, x_np.size)
        kernel(x_np, m_np, np.float32(tau), np.float32(theta), s_np)
        return torch.from_numpy(s_np.reshape(x.shape))
    _, spikes, _, last = _scan_forward(x, m, tau, theta, False)
    m.copy_(last)
    return spikes


def _scan_backward(u, grad_spikes, grad_soft, tau, theta, width, detach_reset):
    """dL/dx [T, ...] and dL/dm0 [...] from the gradients of the spikes and the soft spikes."""
    has_grad_soft = grad_soft is not None and grad_soft.numel() > 0
    if _use_cpu_kernel(u):
        u2 = u.view(u.shape[0], -1)
        gs = grad_spikes.contiguous().view_as(u2)
        gr = grad_soft.contiguous().view_as(u2) if has_grad_soft else gs
        grad_x, grad_m0 = torch.empty_like(u2), torch.empty_like(u2[0])
        kernel = _kernel(_backward_serial, _backward_parallel, u2.numel())
        constants = (np.float32(tau), np.float32(theta), np.float32(width), detach_reset)
        kernel(u2.numpy(), gs.numpy(), gr.numpy(), has_grad_soft, *constants, grad_x.numpy(), grad_m0.numpy())
        return grad_x.view(u.shape), grad_m0.view(u.shape[1:])
    if lif_triton.available(u):
        return lif_triton.scan_backward(u, grad_spikes, grad_soft, tau, theta, width, detach_reset)
    return _scan_backward_loop(u, grad_spikes, grad_soft if has_grad_soft else None, tau, theta, width, detach_reset)


def _scan_backward_loop(u, grad_spikes, grad_soft, tau, theta, width, detach_reset):
    """`_scan_backward` as a PyTorch loop over t (any device and dtype)."""
    silent = (u <= theta).to(u.dtype)
    surrogate = (width - (u - theta).abs()).clamp(min=0) / width**2
    grad_x = torch.empty_like(u)
    carried = torch.zeros_like(u[0])
    if detach_reset:
        grad_u = grad_spikes * surrogate
        if grad_soft is not None:
            grad_u = grad_u + grad_soft * (surrogate + silent * (u > 0) / theta)
        for t in range(u.shape[0] - 1, -1, -1):
            torch.addcmul(grad_u[t], carried, silent[t], out=grad_x[t])
            carried = grad_x[t] * tau
        return grad_x, carried
    grad_spike = grad_spikes if grad_soft is None else grad_spikes + grad_soft
    grad_m_soft = None if grad_soft is None else grad_soft * silent * (u > 0) / theta
    for t in range(u.shape[0] - 1, -1, -1):
        grad_m = carried if grad_m_soft is None else carried + grad_m_soft[t]
        grad_x[t] = (grad_spike[t] - u[t] * grad_m) * surrogate[t] + silent[t] * grad_m
        carried = grad_x[t] * tau
    return grad_x, carried


class _LIFMultistep(torch.autograd.Function):
    """All T steps of the LIF in one autograd node; saves only u [T, ...] for the backward."""

    @staticmethod
    def forward(ctx, x, m0, tau, theta, width, record, detach_reset):
        u, spikes, soft, last = _scan_forward(x, m0, tau, theta, record)
        ctx.save_for_backward(u)
        ctx.constants = (tau, theta, width, detach_reset)
        ctx.mark_non_differentiable(u, last)
        return spikes, soft, u, last

    @staticmethod
    def backward(ctx, grad_spikes, grad_soft, _grad_u, _grad_last):
        (u,) = ctx.saved_tensors
        grad_x, grad_m0 = _scan_backward(u, grad_spikes, grad_soft, *ctx.constants)
        return grad_x, grad_m0, None, None, None, None, None


def lif_multistep(
    x: torch.Tensor,
    m0: torch.Tensor | None = None,
    tau: float = 0.5,
    theta: float = 1.0,
    width: float = 1.0,
    record: bool = False,
    detach_reset: bool = False,
):
    """Run the LIF over all steps of ``x``.

    Args:
        x: input currents [T, N, ...].
        m0: membrane after reset before step 1, [N, ...] (zeros when None).
        record: also return the soft spikes r = s + ReLU(m / theta) (STR's input), with their gradient.
        detach_reset: drop the gradient through the reset factor (1 - s_t), as snnTorch does;
            False (the default) keeps it, as TET and the authors' toolkit do.
    Returns:
        spikes [T, N, ...] (0/1, dtype of x); soft spikes [T, N, ...] (empty tensor unless
        ``record``); pre-reset potentials u [T, N, ...] (no gradient); post-reset membrane after
        the last step [N, ...] (no gradient).
    """
    if m0 is None:
        m0 = torch.zeros_like(x[0])
    return _LIFMultistep.apply(x, m0, float(tau), float(theta), float(width), bool(record), bool(detach_reset))
