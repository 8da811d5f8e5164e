"""TET loss against values worked out by hand."""

import math

import torch

from aoi.losses import tet_loss


def test_tet_by_hand():
    # T=2, N=1, K=2, y=0: O_1 = [0, 0], O_2 = [ln 3, 0]
    outputs = torch.tensor([[[0.0, 0.0]], [[math.log(3), 0.0]]])
    targets = torch.tensor([0])
    ce = (math.log(2) + math.log(4 / 3)) / 2  # softmax(O_2)[0] = 3/4
    mse = (1 + 1 + (math.log(3) - 1) ** 2 + 1) / 4  # every logit against phi = 1
    lamb = 1e-3
    assert math.isclose(tet_loss(outputs, targets).item(), (1 - lamb) * ce + lamb * mse, rel_tol=1e-6)
    assert math.isclose(
        tet_loss(outputs, targets, lamb=0.5, means=0.0).item(), 0.5 * ce + 0.5 * (math.log(3) ** 2 / 4), rel_tol=1e-6
    )


def test_tet_is_mean_over_steps_and_samples():
    torch.manual_seed(0)
    outputs, targets = torch.randn(3, 4, 5), torch.randint(0, 5, (4,))
    per_step = [torch.nn.functional.cross_entropy(outputs[t], targets) for t in range(3)]
    expected = sum(per_step) / 3
    assert torch.allclose(tet_loss(outputs, targets, lamb=0.0), expected)


def test_tet_gradient_reaches_weights():
    layer = torch.nn.Linear(3, 2)
    outputs = layer(torch.randn(4, 5, 3))
    tet_loss(outputs, torch.zeros(5, dtype=torch.long)).backward()
    assert layer.weight.grad.abs().sum() > 0
