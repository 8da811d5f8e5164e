"""The LIF written out step by step with plain autograd: the independent reference of the scan tests."""

import torch


class Spike(torch.autograd.Function):
    """H(v), v = u - theta, with the triangle surrogate max(width - |v|, 0) / width^2."""

    @staticmethod
    def forward(ctx, v, width):
        ctx.save_for_backward(v)
        ctx.width = width
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad * (ctx.width - v.abs()).clamp(min=0) / ctx.width**2, None


def lif_loop(x, m0, tau, theta, width, detach_reset):
    """u, s, r = s + ReLU(m / theta) [T, ...] and the last post-reset membrane m_T [...], with their graph."""
    m, us, ss, rs = m0, [], [], []
    for t in range(x.shape[0]):
        u = tau * m + x[t]
        s = Spike.apply(u - theta, width)
        m = u * (1 - (s.detach() if detach_reset else s))
        us.append(u)
        ss.append(s)
        rs.append(s + torch.relu(m / theta))
    return torch.stack(us), torch.stack(ss), torch.stack(rs), m
