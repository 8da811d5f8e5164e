"""Check and time the Triton LIF scan (`aoi.lif_triton`) on a GPU, at the paper's layer sizes.

    python benchmarks/check_triton_cuda.py                  # GPU: about a minute on an H100/H200
    python benchmarks/check_triton_cuda.py --interpret-tiny # CPU: the same logic on tiny shapes, interpreted

Layers: VGGSNN's first LIF (T=10, batch 64, 64x48x48) and a ResNet-19 stage-1 LIF (T=4, batch
128, 128x32x32); tau = 0.5, theta = 1, width = 1, x ~ N(0, 1), m0 ~ N(0, 0.25).

Checks, against a float32 PyTorch autograd loop on the same device (u = tau*m + x_t; s = spike(u -
theta) with the triangle surrogate; m = u (1 - s), the factor (1 - s) detached or not; r = s +
ReLU(m / theta)): spike mismatches, max |error| of u, r, m_T, and, for loss = sum(w_s s) +
sum(w_r r), of dL/dx and dL/dm0 for both reset-gradient variants. Both sides round every product
and sum in float32 without FMA, so u and the spikes should agree exactly.

Timing (CUDA events after warm-up, median of ``--repeats``; ms): forward without and with the
soft spikes, and forward + backward (gradients of spikes and soft spikes, reset detached), for the
Triton kernels, that plain per-step loop, and `aoi.lif_scan.lif_multistep` as dispatched (Triton on CUDA).

Prints one table and writes it to ``--out`` (default results/benchmarks/triton_cuda.csv on a GPU;
with --interpret-tiny only when --out is given). Without a CUDA device (and without
--interpret-tiny) it prints "no CUDA device: skipped" and exits 0.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from common import TriangleSpike

from aoi import lif_triton
from aoi.files import write_csv
from aoi.layout import REPO_ROOT
from aoi.lif_scan import lif_multistep
from aoi.provenance import git_commit, package_version

TAU, THETA, WIDTH = 0.5, 1.0, 1.0
LAYERS = {"vggsnn conv1": (10, 64, 64, 48, 48), "resnet19 stage1": (4, 128, 128, 32, 32)}
TINY = {"tiny A": (3, 2, 4, 5, 5), "tiny B": (1, 3, 700)}
SHOWN = ["layer", "shape", "quantity", "implementation", "value", "unit", "speedup vs loop"]
DEFAULT_OUT = REPO_ROOT / "results" / "benchmarks" / "triton_cuda.csv"


def loop_lif(x, m0, record=True, detach_reset=True):
    """The plain per-step loop: u, s, r (or None), m_T [T, ...], with autograd through every step."""
    m, us, ss, rs = m0, [], [], []
    for t in range(x.shape[0]):
        u = TAU * m + x[t]
        s = TriangleSpike.apply(u - THETA)
        m = u * (1 - s.detach()) if detach_reset else u * (1 - s)
        us.append(u)
        ss.append(s)
        if record:
            rs.append(s + torch.relu(m / THETA))
    return torch.stack(us), torch.stack(ss), torch.stack(rs) if record else None, m


def inputs(shape, device):
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, generator=g, device=device)
    m0 = 0.5 * torch.randn(shape[1:], generator=g, device=device)
    w_s, w_r = torch.randn(shape, generator=g, device=device), torch.randn(shape, generator=g, device=device)
    return x, m0, w_s, w_r


def max_error(a, b) -> float:
    return (a - b).abs().max().item() if a.numel() else 0.0


def check(x, m0, w_s, w_r) -> list[tuple[str, str, float]]:
    """(quantity, unit, value) rows: the Triton kernels against the float32 loop."""
    u, s, r, m_last = lif_triton.scan_forward(x, m0, TAU, THETA, True)
    with torch.no_grad():
        u_ref, s_ref, r_ref, m_ref = loop_lif(x, m0)
    rows = [
        ("spike mismatches", "count", (s != s_ref).sum().item()),
        ("max |u - u_ref|", "input units", max_error(u, u_ref)),
        ("max |r - r_ref|", "spikes", max_error(r, r_ref)),
        ("max |m_T - m_T_ref|", "input units", max_error(m_last, m_ref)),
    ]
    for detach_reset in (True, False):
        xr, m0r = x.clone().requires_grad_(), m0.clone().requires_grad_()
        _, s_ref, r_ref, _ = loop_lif(xr, m0r, detach_reset=detach_reset)
        torch.autograd.backward((s_ref, r_ref), (w_s, w_r))
        grad_x, grad_m0 = lif_triton.scan_backward(u, w_s, w_r, TAU, THETA, WIDTH, detach_reset)
        rows.append((f"max |dL/dx - ref|, detach_reset={detach_reset}", "loss units", max_error(grad_x, xr.grad)))
        rows.append((f"max |dL/dm0 - ref|, detach_reset={detach_reset}", "loss units", max_error(grad_m0, m0r.grad)))
    return rows


def median_ms(fn, device, repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in ms: CUDA events on a GPU, the host clock otherwise."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def timings(x, m0, w_s, w_r, repeats: int) -> list[tuple[str, str, float]]:
    """(quantity, implementation, ms) rows for the three implementations."""
    xg = x.clone().requires_grad_()

    def triton_train():
        u, _, _, _ = lif_triton.scan_forward(xg, m0, TAU, THETA, True)
        lif_triton.scan_backward(u, w_s, w_r, TAU, THETA, WIDTH, True)

    def loop_train():
        _, s, r, _ = loop_lif(xg, m0)
        torch.autograd.backward((s, r), (w_s, w_r))

    def aoi_train():
        s, r, _, _ = lif_multistep(xg, m0, TAU, THETA, WIDTH, True)
        torch.autograd.backward((s, r), (w_s, w_r))

    cases = {
        "forward": {
            "triton": lambda: lif_triton.scan_forward(x, m0, TAU, THETA, False),
            "torch loop": lambda: loop_lif(x, m0, record=False),
            "aoi lif_multistep": lambda: lif_multistep(x, m0, TAU, THETA, WIDTH, False),
        },
        "forward, soft spikes": {
            "triton": lambda: lif_triton.scan_forward(x, m0, TAU, THETA, True),
            "torch loop": lambda: loop_lif(x, m0),
            "aoi lif_multistep": lambda: lif_multistep(x, m0, TAU, THETA, WIDTH, True),
        },
        "forward+backward": {"triton": triton_train, "torch loop": loop_train, "aoi lif_multistep": aoi_train},
    }
    return [
        (f"{quantity} time", name, median_ms(fn, x.device, repeats))
        for quantity, implementations in cases.items()
        for name, fn in implementations.items()
    ]


def with_speedup(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a column "speedup vs loop": the torch loop's time over each time (timing rows only)."""
    loop = table[table.implementation == "torch loop"][["layer", "quantity", "value"]]
    table = table.merge(loop.rename(columns={"value": "loop"}), on=["layer", "quantity"], how="left")
    table["speedup vs loop"] = table.pop("loop") / table.value
    return table


def machine(device) -> dict:
    import triton

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU (interpreter)"
    return {
        "device": name,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "aoi": package_version("aoi"),
        "git_commit": git_commit()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interpret-tiny", action="store_true", help="tiny shapes on the CPU in triton's interpreter")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help=f"CSV path (default {DEFAULT_OUT} on a GPU)")
    args = parser.parse_args()
    if not args.interpret_tiny and not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return
    device = torch.device("cpu" if args.interpret_tiny else "cuda")
    layers, repeats = (TINY, 2) if args.interpret_tiny else (LAYERS, args.repeats)
    rows = []
    for layer, shape in layers.items():
        data = inputs(shape, device)
        base = {"layer": layer, "shape": "x".join(map(str, shape))}
        rows += [{**base, "quantity": q, "implementation": "triton", "value": v, "unit": u} for q, u, v in check(*data)]
        rows += [
            {**base, "quantity": q, "implementation": i, "value": v, "unit": "ms"}
            for q, i, v in timings(*data, repeats)
        ]
        del data
        if device.type == "cuda":
            torch.cuda.empty_cache()
    info = machine(device)
    table = with_speedup(pd.DataFrame(rows)).assign(**info)
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print(table[SHOWN].to_string(index=False))
    out = args.out or (None if args.interpret_tiny else DEFAULT_OUT)
    if out is not None:
        write_csv(out, table)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
