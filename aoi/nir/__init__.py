"""NIR export and import of aoi models: `to_nir` (export.py), `from_nir` (load.py).

An optional extra: pip install -e ".[nir]".

NIR, the Neuromorphic Intermediate Representation, is a graph of continuous-time nodes that
simulators and neuromorphic toolchains discretise with their own timestep dt. The mapping here
is exact for forward-Euler discretisation with the dt stored in the graph's metadata.

The neuron. NIR's LIF is tau dv/dt = (v_leak - v) + r I, a spike when v > v_threshold, then
v = v_reset. Forward Euler over one step dt, with the input I_t of that step:

    v_t = v_{t-1} + dt/tau (v_leak - v_{t-1} + r I_t)
        = (1 - dt/tau) v_{t-1} + (dt/tau) v_leak + (r dt/tau) I_t.

aoi's LIF (`aoi.neurons`) is u_t = d m_{t-1} + x_t, s_t = H(u_t - theta), m_t = (1 - s_t) u_t, with
decay d (the LIF's ``tau`` attribute) and m the post-reset membrane. Term by term, with
v_{t-1} = m_{t-1} and I_t = x_t, the two agree when

    1 - dt/tau = d    ->  tau = dt / (1 - d)        (d = 0.5: tau = 2 dt)
    r dt/tau = 1      ->  r = tau / dt = 1 / (1 - d)
    v_leak = 0,  v_reset = 0,  v_threshold = theta;

both spike when the potential is strictly above the threshold. `from_nir` inverts this,
d = 1 - dt/tau, and refuses LIFs that break it (r != tau/dt, v_leak or v_reset != 0) or whose
parameters differ between neurons (aoi's LIF has one decay and threshold per layer).

The layers. Every timestep applies the same per-sample computation, so the nodes describe one
step of one sample (shapes without T and N):
- Conv2d + BatchNorm2d -> Conv2d, BN folded (eval mode: running statistics):
  W' = g W, b' = g (b - mean) + beta, g = gamma / sqrt(var + eps) per output channel;
- AvgPool2d -> AvgPool2d, or with ``pool="sum"`` SumPool2d and 1/(kh kw) folded into the
  weights of the next conv or linear layer (for toolchains that only sum);
- flatten of [T, N, C, H, W] -> Flatten over (C, H, W); a global spatial mean (ResNet-19's head)
  -> AvgPool2d over the whole map + Flatten; Linear -> Affine (Linear without bias);
- a residual addition -> no node: NIR sums every edge into a node, so the terms of the sum
  become edges into its consumer (ResNet-19's shortcuts).
Max pooling (SEW-ResNet-34's stem) and anything else raise ValueError naming the layer.

In floating point: folding BN is exact in real arithmetic, but the folded conv rounds differently
from conv-then-BN (about 1e-7 relative in float32), so a neuron whose potential lies within that
of its threshold can spike differently. Models without BN round-trip bitwise; with BN, the round
trip agrees to about 1e-12 in float64 (``from_nir(..., dtype=torch.float64)``), and in float32 up
to such rare flipped spikes. Importing a graph is exact: `from_nir` computes what the graph says.

NIR graphs carry no dt: it goes into the graph's metadata with T and the cutoff (rule and
epsilon): ``{"dt", "T", "cutoff_rule", "cutoff_epsilon", "source": "aoi"}``. Other NIR
importers need that dt too; which of them reproduce aoi's outputs exactly, and with which
options, is written in docs/own_network.md.
"""

try:
    import nir  # noqa: F401  (the optional extra)
except ModuleNotFoundError as error:
    raise ModuleNotFoundError('aoi.nir needs the nir package: pip install -e ".[nir]"') from error

from aoi.nir.export import DEFAULT_DT, POOLS, to_nir
from aoi.nir.load import NIRNetwork, from_nir

__all__ = ["DEFAULT_DT", "POOLS", "NIRNetwork", "from_nir", "to_nir"]
