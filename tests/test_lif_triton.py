"""Triton LIF scan, run in triton's interpreter on CPU tensors, against a float64 autograd loop and by hand."""

import inspect

import pytest
import torch

pytest.importorskip("triton")

from lif_reference import lif_loop

from aoi import lif_triton

TAU, THETA, WIDTH = 0.7, 0.9, 0.8  # not the defaults, so that none of them can be silently assumed
SHAPE = (2, 550)  # M = 1100: one full block of 1024 and a partial one


def reference(x, m0, tau, theta, width, detach_reset, w_s, w_r=None):
    """Plain float64 loop: u, s, r, m_T and, for loss = sum(w_s s) + sum(w_r r), dL/dx and dL/dm0.
    (The loss leaves out m_T: the scan's contract has no gradient for it; `lif_multistep` returns it without.)"""
    x = x.double().requires_grad_()
    m0 = m0.double().requires_grad_()
    u, s, r, m = lif_loop(x, m0, tau, theta, width, detach_reset)
    loss = (w_s.double() * s).sum() + (0 if w_r is None else (w_r.double() * r).sum())
    grad_x, grad_m0 = torch.autograd.grad(loss, (x, m0))
    return u.detach(), s.detach(), r.detach(), m.detach(), grad_x, grad_m0


def inputs(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, *SHAPE, generator=g) * 0.6 + 0.4
    m0 = torch.randn(*SHAPE, generator=g) * 0.5
    return x, m0, torch.randn(T, *SHAPE, generator=g), torch.randn(T, *SHAPE, generator=g)


def far_from_threshold(u):
    """Neurons [*SHAPE] whose potentials stay 1e-4 away from theta: float32 and float64 agree on their spikes."""
    far = ((u - THETA).abs() > 1e-4).all(dim=0)
    assert far.float().mean() > 0.9
    return far


def close(a, b, where):
    return torch.allclose(a.double()[..., where], b[..., where], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("T", [1, 2, 6])
@pytest.mark.parametrize("record", [True, False])
def test_forward_matches_float64_loop(T, record):
    x, m0, w_s, _ = inputs(T)
    u_ref, s_ref, r_ref, m_ref, *_ = reference(x, m0, TAU, THETA, WIDTH, True, w_s)
    u, s, r, m_last = lif_triton.scan_forward(x, m0, TAU, THETA, record)
    far = far_from_threshold(u_ref)
    assert u.shape == s.shape == x.shape and m_last.shape == m0.shape and u.dtype == torch.float32
    assert torch.equal(s[:, far], s_ref[:, far].float())
    assert close(u, u_ref, far) and close(m_last, m_ref, far)
    if record:
        assert close(r, r_ref, far)
    else:
        assert r.numel() == 0


@pytest.mark.parametrize("T", [1, 3, 6])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("soft", [True, False])
def test_backward_matches_float64_loop(T, detach_reset, soft):
    x, m0, w_s, w_r = inputs(T, seed=T)
    w_r = w_r if soft else None
    u_ref, _, _, _, gx_ref, gm0_ref = reference(x, m0, TAU, THETA, WIDTH, detach_reset, w_s, w_r)
    u = lif_triton.scan_forward(x, m0, TAU, THETA, soft)[0]
    grad_x, grad_m0 = lif_triton.scan_backward(u, w_s, w_r, TAU, THETA, WIDTH, detach_reset)
    far = far_from_threshold(u_ref)
    assert grad_x.shape == x.shape and grad_m0.shape == m0.shape
    assert close(grad_x, gx_ref, far) and close(grad_m0, gm0_ref, far)


@pytest.mark.parametrize("detach_reset", [True, False])
def test_exact_on_dyadic_inputs_including_potentials_at_threshold(detach_reset):
    # tau = 1/2, theta = 1 and inputs in steps of 1/8: every u is exact in float32, and some equal theta (no spike)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-4, 14, (5, 300), generator=g) / 8.0
    m0 = torch.randint(0, 8, (300,), generator=g) / 8.0
    w_s, w_r = torch.randn(5, 300, generator=g), torch.randn(5, 300, generator=g)
    u_ref, s_ref, r_ref, m_ref, gx_ref, gm0_ref = reference(x, m0, 0.5, 1.0, 1.0, detach_reset, w_s, w_r)
    assert (u_ref == 1.0).sum() > 10
    u, s, r, m_last = lif_triton.scan_forward(x, m0, 0.5, 1.0, True)
    assert torch.equal(u.double(), u_ref) and torch.equal(s.double(), s_ref) and torch.equal(m_last.double(), m_ref)
    assert torch.equal(r.double(), r_ref)
    grad_x, grad_m0 = lif_triton.scan_backward(u, w_s, w_r, 0.5, 1.0, 1.0, detach_reset)
    assert torch.allclose(grad_x.double(), gx_ref, rtol=1e-5, atol=1e-5)
    assert torch.allclose(grad_m0.double(), gm0_ref, rtol=1e-5, atol=1e-5)


# By hand: tau = 0.5, theta = 1, width = 1, one neuron, m0 = 0.2, x = 0.8, 0.8, 0.4:
#   u1 = 0.8 + 0.1 = 0.9 (silent, m1 = 0.9), u2 = 0.8 + 0.45 = 1.25 (spike, m2 = 0), u3 = 0.4 (silent, m3 = 0.4);
#   r = 0.9, 1, 0.4; surrogate 1 - |u - 1| = 0.9, 0.75, 0.4. Backward from t = 3, gm = carried (+ grad_r / theta
#   where silent and u > 0), gs = grad_s (+ grad_r) (- u * gm unless detached), g = gs * surrogate + [silent] gm.
HAND_BACKWARD = [
    # loss = sum(s), reset detached: g3 = 0.4; g2 = 0.75 (fired: carried 0.2 stops); g1 = 0.9 + 0.375 = 1.275
    (True, False, [1.275, 0.75, 0.4], 0.6375),
    # loss = sum(s), reset differentiated: g3 = 0.4; gs2 = 1 - 1.25 * 0.2 = 0.75, g2 = 0.75 * 0.75 = 0.5625;
    #   gm1 = 0.28125, gs1 = 1 - 0.9 * 0.28125 = 0.746875, g1 = 0.746875 * 0.9 + 0.28125 = 0.9534375
    (False, False, [0.9534375, 0.5625, 0.4], 0.47671875),
    # loss = sum(s) + sum(r), detached: gm3 = 1, g3 = 2 * 0.4 + 1 = 1.8; g2 = 2 * 0.75 = 1.5;
    #   gm1 = 0.75 + 1, g1 = 2 * 0.9 + 1.75 = 3.55
    (True, True, [3.55, 1.5, 1.8], 1.775),
    # loss = sum(s) + sum(r), differentiated: gm3 = 1, gs3 = 2 - 0.4 = 1.6, g3 = 1.6 * 0.4 + 1 = 1.64;
    #   gm2 = 0.82, gs2 = 2 - 1.25 * 0.82 = 0.975, g2 = 0.975 * 0.75 = 0.73125;
    #   gm1 = 0.365625 + 1 = 1.365625, gs1 = 2 - 0.9 * 1.365625 = 0.7709375,
    #   g1 = 0.7709375 * 0.9 + 1.365625 = 2.05946875
    (False, True, [2.05946875, 0.73125, 1.64], 1.029734375),
]


def test_forward_by_hand():
    x, m0 = torch.tensor([[0.8], [0.8], [0.4]]), torch.tensor([0.2])
    u, s, r, m_last = lif_triton.scan_forward(x, m0, 0.5, 1.0, True)
    assert torch.allclose(u[:, 0], torch.tensor([0.9, 1.25, 0.4]))
    assert s[:, 0].tolist() == [0.0, 1.0, 0.0]
    assert torch.allclose(r[:, 0], torch.tensor([0.9, 1.0, 0.4])) and torch.allclose(m_last, torch.tensor([0.4]))


@pytest.mark.parametrize(("detach_reset", "soft", "grad_x", "grad_m0"), HAND_BACKWARD)
def test_backward_by_hand(detach_reset, soft, grad_x, grad_m0):
    u = torch.tensor([[0.9], [1.25], [0.4]])
    ones = torch.ones_like(u)
    gx, gm0 = lif_triton.scan_backward(u, ones, ones if soft else None, 0.5, 1.0, 1.0, detach_reset)
    assert torch.allclose(gx[:, 0], torch.tensor(grad_x)) and torch.allclose(gm0, torch.tensor([grad_m0]))


def test_layouts_and_empty_soft_gradient():
    x, m0, _, _ = inputs(3)
    strided = x.transpose(1, 2).contiguous().transpose(1, 2)  # same values, not contiguous
    assert not strided.is_contiguous()
    for a, b in zip(
        lif_triton.scan_forward(strided, m0, TAU, THETA, True), lif_triton.scan_forward(x, m0, TAU, THETA, True)
    ):
        assert torch.equal(a, b)
    u = lif_triton.scan_forward(x, m0, TAU, THETA, False)[0]
    expanded = torch.ones(1, 1, 1).expand_as(u)  # the gradient of a sum: stride 0
    by_none = lif_triton.scan_backward(u, expanded, None, TAU, THETA, WIDTH, True)
    by_empty = lif_triton.scan_backward(u, torch.ones_like(u), u.new_empty(0), TAU, THETA, WIDTH, True)
    assert all(torch.equal(a, b) for a, b in zip(by_none, by_empty))


def test_available(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not lif_triton.available(torch.zeros(1))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert lif_triton.available(torch.zeros(1)) and not lif_triton.available(torch.zeros(1, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kernel", "flags"),
    [("_forward_kernel", {"RECORD": True}), ("_forward_kernel", {"RECORD": False})]
    + [("_backward_kernel", {"HAS_GRAD_R": r, "DETACH_RESET": d}) for r in (True, False) for d in (True, False)],
)
def test_kernels_compile_for_a_gpu_without_fma(kernel, flags):
    """The interpreter does not type-check like the compiler: compile each variant to PTX for sm_90 (no GPU
    needed), with the alignment triton infers for aligned tensors and M % 16 == 0."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if "nvidia" not in triton.backends.backends:
        pytest.skip("triton without its NVIDIA backend")
    names = list(inspect.signature(getattr(lif_triton, kernel)).parameters)
    types = {n: "*fp32" if n.endswith("_ptr") else "i32" if n in ("T", "M") else "fp32" for n in names}
    types |= dict.fromkeys([*flags, "BLOCK"], "constexpr")
    aligned = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(names) if n.endswith("_ptr") or n == "M"}
    source = ASTSource(
        lif_triton._jit(getattr(lif_triton, kernel), False), types, {**flags, "BLOCK": lif_triton.BLOCK}, attrs=aligned
    )
    ptx = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=lif_triton.OPTIONS).asm["ptx"]
    assert "ld.global.v4.b32" in ptx and "fma" not in ptx
