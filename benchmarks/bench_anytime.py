"""Wall-clock cost of streaming early exit (`aoi.anytime.predict`) against full-T inference.

On the default event model and test set (ndigits, digits_snn, T=10), trained here on the fly
(``--epochs``, about a minute on a laptop CPU) or loaded from a finished run (``--run-dir``),
prints for several batch sizes: full-T time (the plain ``model(inputs)`` forward), streaming
time with no exit (all T steps one at a time: the cost of streaming itself), streaming time at
the tables' epsilon, the step speed-up T / mean exit step, the speed-up of exiting over
streaming all T steps (exit_speedup), the measured wall-clock speed-up over full-T inference,
and the fraction of the step speed-up that it realises (target: >= 0.8). With batch size B,
full-T runs batches of B samples and streaming keeps B samples in flight (continuous batching).
Times are the best of ``--repeats`` runs, full-T and streaming interleaved.

    python benchmarks/bench_anytime.py [--run-dir RUN] [--epsilon E] [--epochs 6] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import torch

from aoi.anytime import time_inference
from aoi.config import TrainConfig
from aoi.evaluate import load_model, split_dataset
from aoi.profiles import load_profile
from aoi.train import train

FALLBACK_EPSILON = 0.1


def default_epsilon() -> float:
    """The tables' epsilon from aoi/profiles/default.yaml, else FALLBACK_EPSILON (said on stdout)."""
    try:
        return float(load_profile("default")["epsilon"])
    except (ValueError, KeyError, OSError) as error:
        print(f"no epsilon in the default profile ({error}); using {FALLBACK_EPSILON}")
        return FALLBACK_EPSILON


def trained_run(run_dir: Path, epochs: int) -> Path:
    """``run_dir`` if it holds a finished run, else a fresh ndigits run trained into it."""
    if (run_dir / "final.json").exists():
        return run_dir
    config = TrainConfig(
        dataset="ndigits",
        model="digits_snn",
        T=10,
        method="str",
        alpha=0.5,
        epochs=epochs,
        batch_size=64,
        lr=0.1,
        device="cpu",
    )
    final = train(config, run_dir, progress=True)
    print(f"trained {config.run_name()} for {epochs} epochs: test accuracy {final['metrics']['test_acc']:.3f}")
    return run_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run-dir",
        help="a finished aoi run to load; if it holds none, the ndigits "
        "model is trained into it (default: trained on the fly in a temporary folder)",
    )
    parser.add_argument("--epsilon", type=float, help="confidence threshold (default: the default profile's)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs when training on the fly")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (best is kept)")
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[1, 16, 64, 0],
        help="batch sizes to time (0: the whole test set at once)",
    )
    parser.add_argument(
        "--single-samples", type=int, default=64, help="test samples used for batch size 1 (it is slow in Python)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    epsilon = default_epsilon() if args.epsilon is None else args.epsilon

    with tempfile.TemporaryDirectory() as workdir:
        run = trained_run(Path(args.run_dir or workdir), args.epochs)
        model, config = load_model(run)
        dataset = split_dataset(config, "test")
    frames = torch.stack([dataset[i][0] for i in range(len(dataset))]).transpose(0, 1).contiguous()  # [T, N, ...]
    T, N = frames.shape[:2]
    print(
        f"{config.dataset} test set: {N} samples, T={T}, model {config.model}, epsilon {epsilon}, "
        f"{torch.get_num_threads()} thread(s), best of {args.repeats}"
    )

    rows = []
    for batch_size in args.batch_sizes:
        inputs = frames[:, : args.single_samples] if batch_size == 1 else frames
        batch = batch_size or None
        timing = time_inference(model, inputs, epsilon, repeats=args.repeats, batch_size=batch)
        all_steps = time_inference(model, inputs, rule="fixed", steps=T, repeats=args.repeats, batch_size=batch)
        rows.append(
            {
                "batch": batch_size or inputs.shape[1],
                "samples": inputs.shape[1],
                "full_ms": 1e3 * timing["full_s"],
                "stream_T_ms": 1e3 * all_steps["streaming_s"],
                "streaming_ms": 1e3 * timing["streaming_s"],
                "mean_exit_step": timing["mean_exit_step"],
                "step_speedup": timing["step_speedup"],
                "exit_speedup": all_steps["streaming_s"] / timing["streaming_s"],
                "wallclock_speedup": timing["wallclock_speedup"],
                "wallclock/step": timing["wallclock_speedup"] / timing["step_speedup"],
            }
        )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
