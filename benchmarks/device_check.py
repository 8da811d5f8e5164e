"""One call for a GPU machine: check the Triton LIF kernels, time training and streaming at the paper's sizes.

    python benchmarks/device_check.py            # on a CUDA device: under ~8 minutes on one H100/H200
    python benchmarks/device_check.py --tiny     # CPU dry run of the same steps on tiny sizes (~2 minutes)

Steps, each writing its CSV under ``$OUT`` when set (a device machine's output folder), else
results/benchmarks/ (with --tiny: a temporary folder unless $OUT is set):

1. ``check_triton_cuda.py``: the Triton LIF scan against a PyTorch autograd loop (exactness and
   timing) at VGGSNN's and ResNet-19's layer sizes -> triton_cuda.csv;
2. ``bench_training.py --mode paper``: s/step and peak memory of TET and TET+STR training steps of
   resnet19 (3x32x32, T=4, batch 128) and vggsnn (2x48x48, T=10, batch 64) -> training_paper.csv;
3. ``bench_anytime.py --models resnet19-paper vggsnn-paper``: streaming early exit against full-T
   inference at batch sizes 1, 16 and 64, with the streamed exits checked against the post-hoc
   rule -> anytime_cuda.csv.

A step that fails is reported and the next one runs; the exit code is that of the first failure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import RESULTS

HERE = Path(__file__).resolve().parent


def steps(tiny: bool, out: Path) -> dict:
    """name -> (script, argv) of the three steps."""
    device = "cpu" if tiny else "cuda"
    triton = ["--interpret-tiny"] if tiny else []
    training = ["--batch", "2", "--steps", "1", "--warmup", "1"] if tiny else ["--steps", "10", "--warmup", "3"]
    anytime = ["--samples", "4", "--single-samples", "2", "--batch-sizes", "1", "2", "--repeats", "1"]
    if not tiny:
        anytime = ["--samples", "256", "--single-samples", "32", "--batch-sizes", "1", "16", "64", "--repeats", "3"]
    return {
        "triton": ("check_triton_cuda.py", [*triton, "--out", str(out / "triton_cuda.csv")]),
        "training": ("bench_training.py", ["--mode", "paper", "--device", device, *training]),
        "anytime": (
            "bench_anytime.py",
            ["--models", "resnet19-paper", "vggsnn-paper", "--device", device, "--name", "anytime_cuda", *anytime],
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU dry run on tiny sizes")
    args = parser.parse_args()
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA device: run with --tiny for a CPU dry run")
        return 1
    if args.tiny and not os.environ.get("OUT"):
        os.environ["OUT"] = tempfile.mkdtemp(prefix="aoi-device-check-")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else RESULTS
    status = 0
    for name, (script, argv) in steps(args.tiny, out).items():
        start = time.perf_counter()
        print(f"=== {name}: {script} {' '.join(argv)}", flush=True)
        code = subprocess.run([sys.executable, str(HERE / script), *argv], check=False).returncode
        status = status or code  # a failed step is reported and the next one runs
        print(f"=== {name}: exit {code}, {time.perf_counter() - start:.0f} s", flush=True)
    print(f"results in {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
