"""The fused LIF scan against a plain float64 autograd loop, for both reset gradients."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from lif_reference import lif_loop

from aoi import lif_scan


def reference(x, m0, tau, theta, width, detach_reset):
    """Spikes, soft spikes and the last membrane of `lif_loop`."""
    _, spikes, soft, last = lif_loop(x, m0, tau, theta, width, detach_reset)
    return spikes, soft, last


def inputs(seed, shape=(7, 3, 4, 5)):
    """Currents and a start membrane whose potentials stay clear of the threshold (no ties)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator, dtype=torch.float64) * 1.5
    m0 = torch.rand(shape[1:], generator=generator, dtype=torch.float64)
    return x, m0


@pytest.mark.parametrize("use_kernel", [True, False], ids=["cpu-kernel", "pytorch-loop"])
@pytest.mark.parametrize("detach_reset", [True, False], ids=["detached", "through-reset"])
@pytest.mark.parametrize("record", [True, False], ids=["soft-spikes", "spikes-only"])
def test_scan_equals_float64_autograd_loop(monkeypatch, use_kernel, detach_reset, record):
    monkeypatch.setattr(lif_scan, "_use_cpu_kernel", lambda x, use=use_kernel: use and x.dtype == torch.float32)
    tau, theta, width = 0.3, 0.8, 0.7
    x, m0 = inputs(int(detach_reset) + 2 * int(record))
    w_s, w_r = torch.randn_like(x), torch.randn_like(x)
    expected_x, expected_m0 = x.clone().requires_grad_(), m0.clone().requires_grad_()
    spikes, soft, last = reference(expected_x, expected_m0, tau, theta, width, detach_reset)
    ((spikes * w_s).sum() + record * (soft * w_r).sum()).backward()  # the last membrane carries no gradient

    got_x, got_m0 = x.float().requires_grad_(), m0.float().requires_grad_()
    out_spikes, out_soft, _, out_last = lif_scan.lif_multistep(got_x, got_m0, tau, theta, width, record, detach_reset)
    loss = (out_spikes * w_s.float()).sum()
    if record:
        loss = loss + (out_soft * w_r.float()).sum()
        assert torch.allclose(out_soft.double(), soft, atol=1e-6)
    loss.backward()
    assert torch.equal(out_spikes.double(), spikes)
    assert torch.allclose(out_last.double(), last, atol=1e-6)
    assert torch.allclose(got_x.grad.double(), expected_x.grad, atol=1e-5)
    assert torch.allclose(got_m0.grad.double(), expected_m0.grad, atol=1e-5)


def test_the_two_gradients_differ_only_through_the_reset():
    """Sanity of the reference itself: with no spike ever, (1 - s) is constant 1 and its
    surrogate term is u * ds/du * dL/dm, nonzero where u is within the surrogate's width."""
    x = torch.full((3, 1), 0.3, dtype=torch.float64)
    grads = []
    for detach_reset in (True, False):
        xi = x.clone().requires_grad_()
        spikes, _, last = reference(xi, torch.zeros(1, dtype=torch.float64), 0.5, 1.0, 1.0, detach_reset)
        assert spikes.sum() == 0
        last.sum().backward()
        grads.append(xi.grad)
    # detached: dL/dx_t = tau^(T - t); through the reset, each u_t > 0 adds -u_t * ds/du * dL/dm_t
    assert torch.allclose(grads[0][:, 0], torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64))
    assert (grads[1] < grads[0]).all()


@pytest.mark.parametrize("use_kernel", [True, False], ids=["cpu-kernel", "pytorch-loop"])
def test_inference_scan_equals_the_autograd_scan_and_carries_the_membrane_in_place(monkeypatch, use_kernel):
    monkeypatch.setattr(lif_scan, "_use_cpu_kernel", lambda x, use=use_kernel: use and x.dtype == torch.float32)
    x, m0 = (value.float() for value in inputs(5, shape=(6, 3, 4, 5)))
    spikes, _, _, last = lif_scan.lif_multistep(x, m0, 0.3, 0.8)
    membrane = m0.clone()
    storage = membrane.data_ptr()
    head = lif_scan.lif_inference(x[:2], membrane, 0.3, 0.8)  # two steps, then the other four from the state
    tail = lif_scan.lif_inference(x[2:], membrane, 0.3, 0.8)
    assert torch.equal(torch.cat([head, tail]), spikes)
    assert torch.equal(membrane, last) and membrane.data_ptr() == storage
    with pytest.raises(ValueError, match=r"inputs \(6, 3, 4, 5\) do not match the membrane \(1, 4, 5\)"):
        lif_scan.lif_inference(x, membrane[:1], 0.3, 0.8)  # the kernel would write past it


def test_serial_and_parallel_kernels_agree_bit_for_bit():
    """Elements are independent: how the blocks are spread over threads cannot change a bit."""
    generator = torch.Generator().manual_seed(0)
    T, M = 4, 3 * lif_scan._BLOCK + 17  # a ragged last block
    x = torch.randn(T, M, generator=generator) * 1.5
    m0 = torch.rand(M, generator=generator)
    grads = torch.randn(2, T, M, generator=generator)
    constants = (np.float32(0.5), np.float32(1.0))
    outputs = []
    for forward, backward in [
        (lif_scan._forward_serial, lif_scan._backward_serial),
        (lif_scan._forward_parallel, lif_scan._backward_parallel),
    ]:
        u, s, r, last = (torch.empty(T, M), torch.empty(T, M), torch.empty(T, M), torch.empty(M))
        forward(x.numpy(), m0.numpy(), *constants, True, True, u.numpy(), s.numpy(), r.numpy(), last.numpy())
        grad_x, grad_m0 = torch.empty(T, M), torch.empty(M)
        arrays = (u.numpy(), grads[0].numpy(), grads[1].numpy(), True, *constants, np.float32(1.0), False)
        backward(*arrays, grad_x.numpy(), grad_m0.numpy())
        outputs.append((u, s, r, last, grad_x, grad_m0))
    for serial, parallel in zip(*outputs):
        assert torch.equal(serial, parallel)
    _, spikes, _, last = outputs[0][:4]
    for inference in (lif_scan._inference_serial, lif_scan._inference_parallel):  # in place, no potentials
        membrane, s = m0.clone(), torch.empty(T, M)
        inference(x.numpy(), membrane.numpy(), *constants, s.numpy())
        assert torch.equal(s, spikes) and torch.equal(membrane, last)


def test_kernels_leave_torch_threads_alone():
    """numba's OpenMP layer would make torch.get_num_threads() numba's count once its threads start
    (and spin beside torch's): the kernels run serially on one thread, else on the workqueue layer."""
    script = (
        "import torch\n"
        "from aoi.lif_scan import lif_multistep\n"
        "counts = []\n"
        "for threads in (1, 2):\n"
        "    torch.set_num_threads(threads)\n"
        "    lif_multistep(torch.randn(4, 1 << 18))\n"
        "    counts.append(torch.get_num_threads())\n"
        "print(counts)\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "NUMBA_THREADING_LAYER"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    assert run.stdout.strip() == "[1, 2]"
