"""LIF neuron: trajectories and gradients worked out by hand, and snnTorch as the reference."""

import pytest
import snntorch as snn
import torch

from aoi.neurons import (
    LIF,
    append_samples,
    forward_in_pieces,
    keep_samples,
    lif_layers,
    reset_state,
    restart_samples,
    set_recording,
    streaming,
)


def column(values):
    """A [T, 1] input for one neuron."""
    return torch.tensor(values, dtype=torch.float32)[:, None]


def test_trajectory_by_hand():
    # tau = 0.5, theta = 1: u = 0.6, 0.9, 1.05 (fire), 1.2 (fire), 0.3
    lif = LIF()
    lif.record = True
    spikes = lif(column([0.6, 0.6, 0.6, 1.2, 0.3]))
    assert spikes[:, 0].tolist() == [0, 0, 1, 1, 0]
    assert torch.allclose(lif.membrane[:, 0], torch.tensor([0.6, 0.9, 0.0, 0.0, 0.3]))


def test_spike_needs_potential_strictly_above_threshold():
    assert LIF()(column([1.0, 0.0]))[:, 0].tolist() == [0, 0]
    assert LIF(threshold=0.5)(column([0.5, 0.5]))[:, 0].tolist() == [0, 1]  # 0.5, then 0.25+0.5


def test_triangle_surrogate_by_hand():
    x = torch.tensor([[1.5, 0.2, 2.5, 1.0]], requires_grad=True)
    LIF()(x).sum().backward()
    # ds/du = max(0, 1 - |u - 1|): 0.5, 0.2, 0, 1
    assert torch.allclose(x.grad, torch.tensor([[0.5, 0.2, 0.0, 1.0]]))


def test_gradient_through_time_and_detached_reset():
    # no spike at t=1: u2 = 0.5*0.8 + 0.8 = 1.2, ds2/du2 = 0.8, ds2/dx1 = 0.8 * tau
    x = column([0.8, 0.8]).requires_grad_()
    LIF(detach_reset=True)(x)[1].sum().backward()
    assert torch.allclose(x.grad[:, 0], torch.tensor([0.4, 0.8]))
    # spike at t=1: m1 = 0, u2 = 0.8, ds2/du2 = 0.8; the reset (1 - s1) is detached,
    # so nothing flows from s2 back to x1
    x = column([1.5, 0.8]).requires_grad_()
    LIF(detach_reset=True)(x)[1].sum().backward()
    assert torch.allclose(x.grad[:, 0], torch.tensor([0.0, 0.8]))


def test_gradient_through_the_reset():
    # spike at t=1 (u1 = 1.5): m1 = u1 (1 - s1), u2 = tau m1 + x2 = 0.8, ds2/du2 = 0.8.
    # dL/dm1 = tau * 0.8 = 0.4 flows into s1 with factor -u1 = -1.5: dL/ds1 = -0.6,
    # times ds1/du1 = max(0, 1 - |1.5 - 1|) = 0.5: dL/dx1 = -0.3 (the factor (1 - s1) is 0)
    x = column([1.5, 0.8]).requires_grad_()
    LIF(detach_reset=False)(x)[1].sum().backward()
    assert torch.allclose(x.grad[:, 0], torch.tensor([-0.3, 0.8]))
    # no spike at t=1 (u1 = 0.8): dL/dm1 = 0.4 reaches u1 directly (1 - s1 = 1) and through s1:
    # 0.4 - 0.8 * 0.4 * ds1/du1 (= 0.8) = 0.4 - 0.256 = 0.144
    x = column([0.8, 0.8]).requires_grad_()
    LIF(detach_reset=False)(x)[1].sum().backward()
    assert torch.allclose(x.grad[:, 0], torch.tensor([0.144, 0.8]))


def test_width_scales_surrogate():
    x = torch.tensor([[1.5]], requires_grad=True)
    LIF(width=2.0)(x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([[(2.0 - 0.5) / 4.0]]))


def test_fused_equals_snntorch_leaky_forward_and_backward():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 3, 5, 5) * 1.5
    w_s, w_r = torch.randn_like(x), torch.randn_like(x)
    grads, outs = [], []
    for fused in (True, False):
        lif = LIF(tau=0.5, threshold=1.0, fused=fused, detach_reset=True)
        lif.record = True
        xi = x.clone().requires_grad_()
        s = lif(xi)
        ((s * w_s).sum() + (lif.soft_spikes * w_r).sum()).backward()
        outs.append((s, lif.membrane, lif.soft_spikes))
        grads.append(xi.grad)
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-6)
    assert torch.allclose(outs[0][2], outs[1][2], atol=1e-6)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_snntorch_path_needs_the_detached_reset():
    with pytest.raises(ValueError, match="detach_reset=True"):
        LIF(fused=False)


def test_soft_spikes_by_hand():
    # theta = 2: u = 1, 2.5 (fire), -0.5 -> r = s + ReLU(m / theta) = 0.5, 1, 0
    lif = LIF(threshold=2.0)
    lif.record = True
    x = column([1.0, 2.0, -0.5]).requires_grad_()
    lif(x)
    assert torch.allclose(lif.soft_spikes[:, 0], torch.tensor([0.5, 1.0, 0.0]))
    assert torch.allclose(lif.membrane[:, 0], torch.tensor([1.0, 0.0, -0.5]))
    # d r_1/d u_1 = surrogate(1 - 2) + 1/theta = 0 + 0.5 (silent, u_1 > 0);
    # d r_2/d u_2 = surrogate(2.5 - 2) = 0.5 (fired: no membrane term);
    # u_2 = tau * m_1 + x_2 with m_1 = u_1, so d r_2/d x_1 = 0.5 * tau = 0.25
    lif.soft_spikes[:2].sum().backward()
    assert torch.allclose(x.grad[:, 0], torch.tensor([0.5 + 0.25, 0.5, 0.0]))


def test_snntorch_leaky_is_the_paper_neuron():
    """Independent check of the reference itself: snnTorch's Leaky reproduces the hand trajectory."""
    leaky = snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero")
    snn.SpikingNeuron.instances.remove(leaky)
    mem = torch.zeros(1)
    out = []
    for v in [0.6, 0.6, 0.6, 1.2, 0.3]:
        spk, mem = leaky(torch.tensor([v]), mem)
        out.append(spk.item())
    assert out == [0, 0, 1, 1, 0]


def test_reference_path_leaves_snntorch_registry_alone():
    before = len(snn.SpikingNeuron.instances)
    for _ in range(3):
        LIF(fused=False, detach_reset=True)(torch.ones(2, 1, 3))
    assert len(snn.SpikingNeuron.instances) == before


def test_every_forward_starts_from_rest():
    lif = LIF()
    x = column([0.9, 0.9])
    assert torch.equal(lif(x), lif(x))  # second call does not inherit 0.9 membrane


def test_streaming_equals_full_forward_and_drops_samples():
    torch.manual_seed(1)
    model = torch.nn.Sequential(LIF(), torch.nn.Identity(), LIF(tau=0.25))
    x = torch.rand(6, 5, 7) * 2
    full = model(x)
    with streaming(model):
        steps = [model(x[t : t + 1]) for t in range(6)]
    assert torch.equal(torch.cat(steps), full)
    with streaming(model):
        head = model(x[:3])
        keep_samples(model, torch.tensor([1, 3]))
        tail = model(x[3:, [1, 3]])
    assert torch.equal(head, full[:3])
    assert torch.equal(tail, full[3:, [1, 3]])
    assert all(lif.state is None and not lif.carry_state for lif in lif_layers(model))


def test_a_forward_in_pieces_equals_one_forward_and_carries_every_state():
    torch.manual_seed(2)
    model = torch.nn.Sequential(LIF(), torch.nn.Identity(), LIF(tau=0.25))
    x = torch.rand(4, 5, 7) * 2
    full = model(x)
    layers = lif_layers(model)
    with streaming(model):
        steps = [forward_in_pieces(model, x[t : t + 1], 2, layers) for t in range(4)]  # pieces of 2, 2, 1
        assert all(lif.state.shape == (5, 7) for lif in layers)  # made from the pieces at step 1
        storage = [lif.state.data_ptr() for lif in layers]
        forward_in_pieces(model, x[:1], 2, layers)
        assert [lif.state.data_ptr() for lif in layers] == storage  # later steps update them in place
    assert torch.equal(torch.cat(steps), full)


def test_step_carries_state():
    lif = LIF()
    out = [lif.step(torch.tensor([0.6])).item() for _ in range(3)]
    assert out == [0, 0, 1]
    lif.reset()
    assert lif.step(torch.tensor([0.6])).item() == 0


def test_recording_toggle_and_reset():
    model = torch.nn.Sequential(LIF(), LIF())
    model(torch.ones(2, 1, 2))
    assert all(lif.spikes is None for lif in lif_layers(model))
    set_recording(model, True)
    model(torch.ones(2, 1, 2))
    assert all(lif.membrane.shape == lif.soft_spikes.shape == (2, 1, 2) for lif in lif_layers(model))
    reset_state(model)
    assert all(lif.spikes is None and lif.membrane is None and lif.soft_spikes is None for lif in lif_layers(model))


def test_appended_samples_start_at_rest():
    lif = LIF()
    with streaming(lif):
        lif(torch.full((1, 1, 1), 0.8))  # one sample, membrane 0.8 carried
        append_samples(lif, 1)
        out = lif(torch.full((1, 2, 1), 0.6))  # 0.4 + 0.6 = 1.0 (no spike), 0 + 0.6
    assert lif.state is None
    assert out.flatten().tolist() == [0.0, 0.0]
    with streaming(lif):
        lif(torch.full((1, 1, 1), 0.8))
        append_samples(lif, 2)
        assert torch.allclose(lif.state.flatten(), torch.tensor([0.8, 0.0, 0.0]))


def test_inference_forward_equals_the_training_forward_and_carries_state_in_place():
    torch.manual_seed(2)
    x = torch.rand(6, 4, 3) * 2
    lif = LIF()
    expected = lif(x.clone().requires_grad_())  # the autograd path
    with torch.no_grad(), streaming(lif):
        first = lif(x[:1])
        state = lif.state
        rest = [lif(x[t : t + 1]) for t in range(1, 6)]
        assert lif.state is state  # one membrane tensor, updated in place
    assert torch.equal(torch.cat([first, *rest]), expected.detach())


def test_restarted_samples_start_at_rest_in_place():
    model = torch.nn.Sequential(LIF(), LIF())
    with torch.no_grad(), streaming(model):
        model(torch.full((1, 3, 2), 0.8))  # membranes 0.8 (first LIF; the second saw no spike: 0)
        states = [lif.state for lif in lif_layers(model)]
        restart_samples(lif_layers(model), torch.tensor([False, True, False]))
        assert [lif.state for lif in lif_layers(model)] == states  # the same tensors
        assert states[0][:, 0].tolist() == [pytest.approx(0.8), 0.0, pytest.approx(0.8)]
        out = model(torch.full((1, 3, 2), 0.6))  # 0.4 + 0.6 = 1.0 (no spike) where carried; 0.6 where restarted
    assert out.sum() == 0
