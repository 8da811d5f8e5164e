"""Training-step cost: aoi's fused LIF against a plain PyTorch LIF loop and SpikingJelly, and STR on top.

Mode ``lif`` (default; a couple of minutes on 2 CPU cores): one training step (forward, TET
loss, backward, SGD step) of VGGSNN at ``--width`` (default 0.25: channels 16-32-64-64-128-128-
128-128; the layout of the paper's network, 1/16 of its conv FLOPs) on T=10, 2x48x48 inputs,
batch 8, for variants of the SAME network (same weights):

- ``plain loop``: plain PyTorch layers (``nn.AvgPool2d`` for aoi's `AvgPool2`) and every LIF
  replaced by the per-step Python loop most SNN code uses (u = tau*m + x_t; s = spike(u - theta)
  with a triangle-surrogate autograd function; m = u * (1 - s.detach())), so autograd records ~5
  nodes per step per layer;
- ``spikingjelly``: plain PyTorch layers and every LIF replaced by SpikingJelly's multi-step ``LIFNode(tau=2.0,
  decay_input=False, v_threshold=1.0, v_reset=0.0, surrogate PiecewiseQuadratic(alpha=1),
  detach_reset=True, step_mode="m")``: H = V - V/2 + X = 0.5 V + X, spike H >= 1, hard reset to
  0, surrogate max(0, 1 - |H - 1|), the same neuron and gradient as aoi's (its CPU backend is a
  PyTorch loop in one autograd node; only when SpikingJelly is installed: ``pip install .[bench]``);
- ``aoi LIF, TET``: `aoi.neurons.LIF` (all steps in one autograd node);
- ``aoi LIF, TET+STR``: the same plus STR (recording on, `collect_factors` + `str_loss`, alpha 0.5).

The reset gradient is detached in every variant (snnTorch's and the plain loop's convention).
Repetitions are interleaved (variant A, B, C, A, B, C, ...) and the median is reported.
Memory: on CUDA, peak ``torch.cuda.max_memory_allocated`` during a step above what was allocated
before it; on CPU, the bytes autograd saves for the backward pass during a step (every tensor
passed to a ``saved_tensors_hooks`` pack hook, counted once per storage), measured in a separate
untimed step: that is the activation memory a training step holds at its peak.

Mode ``paper`` (for a GPU): s/step and peak memory of ``resnet19`` (3x32x32, T=4, batch 128) and
``vggsnn`` (2x48x48, T=10, batch 64), TET and TET+STR. On CPU, dry-check it with e.g.
``--mode paper --steps 2 --batch 4``.

Both write a CSV under results/benchmarks/ (``$OUT`` if set): training.csv, training_paper.csv.

    python benchmarks/bench_training.py                       # lif mode, CPU
    python benchmarks/bench_training.py --mode paper --device cuda
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import pandas as pd
import torch
from common import TriangleSpike, write
from torch import nn

from aoi.losses import tet_loss
from aoi.models import VGGSNN, get_model
from aoi.models.layers import AvgPool2
from aoi.neurons import LIF, lif_layers, reset_state, set_recording
from aoi.regularisers import collect_factors, str_loss

ALPHA = 0.5


class PlainLoopLIF(nn.Module):
    """Hard-reset LIF as most SNN code writes it: a Python loop over t, autograd per step."""

    def __init__(self, tau: float = 0.5, threshold: float = 1.0):
        super().__init__()
        self.tau, self.threshold = tau, threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        membrane = torch.zeros_like(x[0])
        spikes = []
        for t in range(x.shape[0]):
            potential = self.tau * membrane + x[t]
            spike = TriangleSpike.apply(potential - self.threshold)
            membrane = potential * (1 - spike.detach())
            spikes.append(spike)
        return torch.stack(spikes)


class SpikingJellyLIF(nn.Module):
    """SpikingJelly's multi-step LIFNode set to aoi's neuron (see the module docstring), from rest at every call."""

    def __init__(self, lif: LIF):
        super().__init__()
        from spikingjelly.activation_based import neuron, surrogate

        self.node = neuron.LIFNode(
            tau=1 / (1 - lif.tau),  # H = V - V / tau + X: the decay factor 1 - 1 / tau is aoi's tau
            decay_input=False,
            v_threshold=lif.threshold,
            v_reset=0.0,
            surrogate_function=surrogate.PiecewiseQuadratic(alpha=1 / lif.width),
            detach_reset=True,
            step_mode="m",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.node.reset()
        return self.node(x)


def with_lifs(model: nn.Module, replace) -> nn.Module:
    """A copy of ``model`` (same weights) in plain PyTorch layers, as other SNN code has it: every
    `LIF` is ``replace(lif)``, every `AvgPool2` is ``nn.AvgPool2d(2)`` (aoi's conv and linear layers
    are PyTorch's when training)."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, LIF):
                setattr(parent, name, replace(child))
            elif isinstance(child, AvgPool2):
                setattr(parent, name, nn.AvgPool2d(2))
    return model


def spikingjelly_installed() -> bool:
    try:
        import spikingjelly  # noqa: F401
    except ImportError:
        return False
    return True


def training_step(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, use_str: bool):
    """A closure doing one SGD step of TET (+ STR) on ``model``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    set_recording(model, use_str)

    def step():
        outputs = model(inputs)
        loss = tet_loss(outputs, targets)
        if use_str:
            loss = loss + ALPHA * str_loss(outputs, targets, collect_factors(model, 0.3), 0.3)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reset_state(model)

    return step


def timed(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def step_memory_bytes(step, device: torch.device) -> int:
    """Peak CUDA memory of one step above the memory in use before it; on CPU, bytes saved for backward."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(storages.values())


def measure(variants: dict, device: torch.device, warmup: int, repeats: int) -> dict:
    """{name: (median seconds per step, memory bytes)} with interleaved repetitions."""
    for step in variants.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, step in variants.items():
            times[name].append(timed(step, device))
    return {name: (statistics.median(times[name]), step_memory_bytes(step, device)) for name, step in variants.items()}


def memory_label(device: torch.device) -> str:
    return "peak CUDA MiB" if device.type == "cuda" else "saved-for-backward MiB"


def lif_mode(args, device: torch.device) -> pd.DataFrame:
    torch.manual_seed(0)
    T, batch = 10, args.batch or 8
    model = VGGSNN(10, (2, 48, 48), width=args.width).to(device)
    for lif in lif_layers(model):
        lif.detach_reset = True  # as the plain loop and snnTorch: the same gradient in every variant
    others = {"plain loop, TET": with_lifs(model, lambda lif: PlainLoopLIF(lif.tau, lif.threshold))}
    if spikingjelly_installed():
        others["spikingjelly, TET"] = with_lifs(model, SpikingJellyLIF)
    else:
        print("spikingjelly is not installed (pip install .[bench]): its variant is left out")
    inputs = (torch.rand(T, batch, 2, 48, 48, device=device) < 0.3).float() * 2  # event-count-like frames
    targets = torch.randint(0, 10, (batch,), device=device)
    same = {name: forward_matches(model, other, inputs) for name, other in others.items()}
    variants = {name: training_step(other, inputs, targets, use_str=False) for name, other in others.items()}
    variants["aoi LIF, TET"] = training_step(copy.deepcopy(model), inputs, targets, use_str=False)
    variants["aoi LIF, TET+STR"] = training_step(copy.deepcopy(model), inputs, targets, use_str=True)
    results = measure(variants, device, args.warmup, args.repeats)
    base = results["plain loop, TET"][0]
    print(
        f"VGGSNN width {args.width} ({sum(p.numel() for p in model.parameters()):,} parameters), "
        f"T={T}, 2x48x48, batch {batch}, {device}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} interleaved steps; forward outputs equal aoi's: {same}"
    )
    rows = [
        {
            "variant": name,
            "ms_per_step": 1e3 * seconds,
            "ratio_to_plain_loop": seconds / base,
            "memory_mib": memory / 2**20,
        }
        for name, (seconds, memory) in results.items()
    ]
    table = pd.DataFrame(rows).assign(
        model="vggsnn",
        width=args.width,
        T=T,
        input="2x48x48",
        batch=batch,
        memory=memory_label(device),
        repeats=args.repeats,
    )
    print(table[["variant", "ms_per_step", "ratio_to_plain_loop", "memory_mib"]].to_string(index=False))
    tet, with_str = results["aoi LIF, TET"][0], results["aoi LIF, TET+STR"][0]
    print(f"aoi / plain loop: {tet / base:.2f} (target <= 0.5); STR adds {100 * (with_str / tet - 1):.1f}%")
    return table


def forward_matches(model: nn.Module, other: nn.Module, inputs: torch.Tensor) -> bool:
    """Whether ``other`` gives ``model``'s eval-mode outputs on ``inputs`` (to 1e-5)."""
    model.eval(), other.eval()
    with torch.no_grad():
        same = torch.allclose(model(inputs), other(inputs), atol=1e-5)
    model.train(), other.train()
    return same


def paper_mode(args, device: torch.device) -> pd.DataFrame:
    cases = [("resnet19", (3, 32, 32), 4, 128), ("vggsnn", (2, 48, 48), 10, 64)]
    print(f"{device}, {args.steps} timed steps after {args.warmup} warm-up steps (medians)")
    rows = []
    for name, shape, T, batch in cases:
        batch = args.batch or batch
        torch.manual_seed(0)
        model = get_model(name, 10, shape, T).to(device)
        inputs = torch.rand(T, batch, *shape, device=device)
        targets = torch.randint(0, 10, (batch,), device=device)
        variants = {
            method: training_step(copy.deepcopy(model), inputs, targets, use_str=method == "TET+STR")
            for method in ("TET", "TET+STR")
        }
        for method, (seconds, memory) in measure(variants, device, args.warmup, args.steps).items():
            rows.append(
                {"model": name, "input": "x".join(map(str, shape)), "T": T, "batch": batch, "method": method}
                | {"s_per_step": seconds, "memory_mib": memory / 2**20, "memory": memory_label(device)}
            )
            del variants[method]
        del model, inputs
        if device.type == "cuda":
            torch.cuda.empty_cache()
    table = pd.DataFrame(rows).assign(steps=args.steps)
    print(table.to_string(index=False))
    return table


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["lif", "paper"], default="lif")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=float, default=0.25, help="VGGSNN channel multiplier (lif mode)")
    parser.add_argument("--batch", type=int, help="override the batch size (lif: 8; paper: 128 / 64)")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per variant (lif mode)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant (paper mode)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--name", help="CSV name under results/benchmarks/ (default: training / training_paper)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    table = (lif_mode if args.mode == "lif" else paper_mode)(args, device)
    write(args.name or ("training" if args.mode == "lif" else "training_paper"), table, device)
    return table


if __name__ == "__main__":
    main()
