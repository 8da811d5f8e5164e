"""STR: spatial-temporal factor and loss on cases worked out by hand."""

import math

import pytest
import torch

from aoi.neurons import LIF, set_recording
from aoi.regularisers import collect_factors, last_steps, soft_spike_similarity, spatial_temporal_factor, str_loss


def hand_stf():
    """T=2, N=1, two features: s = [1,0],[0,1]; post-reset m / theta = [0,0.5],[0,0], so the soft
    spikes are r_1 = [1, 0.5], r_2 = [0, 1], r_d = mean over all steps (int(0.3*2) = 0) = [0.5, 0.75]."""
    soft = torch.tensor([[[1.0, 0.5]], [[0.0, 1.0]]])
    norm_d = math.sqrt(0.25 + 0.5625 + 1e-5)
    cs1 = (0.5 + 0.375) / (math.sqrt(1.25 + 1e-5) * norm_d)
    cs2 = 0.75 / (math.sqrt(1.0 + 1e-5) * norm_d)
    return soft, (cs1, cs2), 1 / ((cs1 + cs2) / 2 + 1e-5)


def test_cosine_and_factor_by_hand():
    soft, cs, stf = hand_stf()
    assert torch.allclose(soft_spike_similarity(soft)[:, 0], torch.tensor(cs))
    assert math.isclose(spatial_temporal_factor(soft).item(), stf, rel_tol=1e-6)


def test_reference_window_uses_last_steps():
    # T=4, beta=0.5: r_d = mean of steps 3, 4 = [1, 0]; steps 1, 2 are orthogonal to it
    spikes = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])[:, None]
    cs = soft_spike_similarity(spikes, beta=0.5)[:, 0]
    same = 1 / (1 + 1e-5)  # r_t = r_d = [1, 0]: 1 / (sqrt(1 + e) * sqrt(1 + e))
    assert torch.allclose(cs, torch.tensor([0.0, 0.0, same, same]), atol=1e-7)
    assert last_steps(4, 0.5) == 2 and last_steps(4, 0.2) == 4 and last_steps(10, 0.3) == 3


def test_reference_is_detached():
    soft, _, _ = hand_stf()
    soft = soft.clone().requires_grad_()
    cs = soft_spike_similarity(soft)
    # d cs_2 / d r_1 would be nonzero only through r_d; r_2 does not depend on r_1
    cs[1].sum().backward()
    assert torch.count_nonzero(soft.grad[0]) == 0


def per_step_logits(correct_pattern):
    """[T, N, 2] logits whose per-step argmax is class 0 where the pattern is True, else 1."""
    pattern = torch.tensor(correct_pattern, dtype=torch.bool)
    return torch.stack([pattern.float(), (~pattern).float()], dim=-1)


def test_str_loss_by_hand():
    # T=3; sample 1 is wrong at step 1 only; targets all 0
    outputs = per_step_logits([[True, False, True], [True, True, True], [True, True, True]])
    targets = torch.zeros(3, dtype=torch.long)
    factors = torch.tensor([[2.0, 5.0], [9.0, 9.0], [3.0, 1.0]])
    # window 0.3 -> int(0.9) = 0 -> all steps: sample 1 masked; max per layer [3, 5]; mean 4
    assert str_loss(outputs, targets, factors, window=0.3).item() == pytest.approx(4.0)
    # window 0.7 -> int(2.1) = 2 -> last two steps: every sample qualifies; max [9, 9]
    assert str_loss(outputs, targets, factors, window=0.7).item() == pytest.approx(9.0)


def test_str_loss_by_hand_with_more_steps_than_samples():
    # T=4, N=2 (T != N). Sample 0 is right at steps 3, 4 only, sample 1 at steps 1-3 only.
    outputs = per_step_logits([[False, True], [False, True], [True, True], [True, False]])
    targets = torch.zeros(2, dtype=torch.long)
    factors = torch.tensor([[2.0, 7.0, 1.0], [9.0, 9.0, 9.0]])  # [N, L]: sample 1 has the larger factors
    # window 0.5 -> int(2.0) = 2 -> steps 3, 4: sample 0 qualifies, sample 1 not; mean of [2, 7, 1]
    assert str_loss(outputs, targets, factors, window=0.5).item() == pytest.approx(10 / 3)
    # window 0.75 -> int(3.0) = 3 -> steps 2-4: neither qualifies
    assert str_loss(outputs, targets, factors, window=0.75).item() == 0.0


def test_factor_matches_a_float64_loop_with_more_steps_than_samples():
    """STF of random soft spikes [T=5, N=3, 2, 2] against the formula looped in plain float64."""
    r = torch.rand(5, 3, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    beta = 0.4  # reference: the last int(0.4 * 5) = 2 steps
    expected = []
    for n in range(3):
        rows = [r[t, n].flatten().tolist() for t in range(5)]
        reference = [sum(row[f] for row in rows[3:]) / 2 for f in range(4)]
        norm_ref = math.sqrt(sum(v * v for v in reference) + 1e-5)
        cosines = [
            sum(a * b for a, b in zip(row, reference)) / (math.sqrt(sum(v * v for v in row) + 1e-5) * norm_ref)
            for row in rows
        ]
        expected.append(1 / (sum(cosines) / 5 + 1e-5))
    assert spatial_temporal_factor(r, beta).tolist() == pytest.approx(expected, rel=1e-12)


def test_str_loss_is_zero_when_no_sample_is_right():
    outputs = per_step_logits([[False, False]] * 2)
    assert str_loss(outputs, torch.zeros(2, dtype=torch.long), torch.ones(2, 3)).item() == 0.0


def test_collect_factors_scales_membrane_by_threshold_and_needs_recording():
    model = torch.nn.Sequential(LIF(threshold=2.0), LIF())
    x = torch.tensor([[[1.0, 0.0]], [[1.6, 3.0]]])  # layer 1: u = [1, 0], [2.1, 3]
    with pytest.raises(RuntimeError, match="set_recording"):
        model(x)
        collect_factors(model)
    set_recording(model, True)
    model(x)
    factors = collect_factors(model)
    assert factors.shape == (1, 2)
    # layer 1 in threshold units: s = [0,0],[1,1]; m/theta = [0.5,0],[0,0] -> r = [0.5,0],[1,1]
    # r_d = [0.75, 0.5]; cs1 = 0.375/(sqrt(.25+e) sqrt(.8125+e)); cs2 = 1.25/(sqrt(2+e) sqrt(.8125+e))
    e = 1e-5
    cs1 = 0.375 / (math.sqrt(0.25 + e) * math.sqrt(0.8125 + e))
    cs2 = 1.25 / (math.sqrt(2 + e) * math.sqrt(0.8125 + e))
    assert factors[0, 0].item() == pytest.approx(1 / ((cs1 + cs2) / 2 + e), rel=1e-5)


def test_str_gradient_reaches_weights():
    torch.manual_seed(0)
    conv = torch.nn.Linear(4, 6)
    readout = torch.nn.Linear(6, 2)
    lif = LIF()
    lif.record = True
    x = torch.rand(4, 8, 4) * 2
    outputs = readout(lif(conv(x)))
    targets = outputs.detach().mean(0).argmax(-1)  # every sample right at every step is not needed
    factors = collect_factors(torch.nn.Sequential(lif))
    loss = str_loss(outputs, targets, factors, window=1.0)
    assert loss.item() > 0
    loss.backward()
    assert conv.weight.grad.abs().sum() > 0


def test_similarity_gradient_matches_autograd_of_the_formula():
    """The hand-written backward of the cosine against autograd of the plain expression (float64)."""
    from aoi.regularisers import soft_spike_similarity

    torch.manual_seed(3)
    r = torch.rand(5, 3, 4, 2, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(5, 3, dtype=torch.float64)
    (soft_spike_similarity(r, beta=0.4) * weights).sum().backward()
    fused = r.grad.clone()
    r.grad = None
    flat = r.flatten(2)
    ref = flat[3:].mean(0).detach()
    plain = (flat * ref).sum(-1) / (((flat * flat).sum(-1) + 1e-5).sqrt() * ((ref * ref).sum(-1) + 1e-5).sqrt())
    (plain * weights).sum().backward()
    assert torch.allclose(fused, r.grad, atol=1e-12)
