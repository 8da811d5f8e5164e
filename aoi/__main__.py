"""Command line: ``python -m aoi {train,evaluate,reproduce} ...`` (also the ``aoi`` console script).

python -m aoi train --dataset digits --method str --alpha 0.5 --seed 0 --epochs 30 --run-dir runs/x
python -m aoi evaluate runs/x
python -m aoi reproduce --profile default --jobs 2
torchrun --nproc_per_node 4 -m aoi train --dataset cifar10 ...   # multi-GPU (see aoi.distributed)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing

REPRODUCE = "reproduce"
FIELD_HELP = {
    "model": "model name (default: the dataset's, aoi.models.DEFAULT_MODEL)",
    "T": "timesteps (default: the dataset's)",
    "method": "tet or str (TET + alpha * STR)",
    "alpha": "STR weight: 0 for tet, > 0 for str",
    "beta": "STR reference: fraction of the final steps averaged",
    "window": "STR mask: fraction of the final steps that must be predicted right",
    "lamb": "TET: weight of the MSE term",
    "means": "TET: target of the MSE term",
    "epochs": "epochs (cosine annealing to 0 over them)",
    "batch_size": "global batch size (split across torchrun processes)",
    "lr": "SGD learning rate",
    "momentum": "SGD momentum",
    "weight_decay": "SGD weight decay",
    "seed": "seed of initialisation, shuffling and augmentation",
    "limit_train": "use only this many training samples",
    "limit_test": "use only this many test samples",
    "num_workers": "DataLoader worker processes",
    "device": "auto (CUDA if available), cpu, cuda, cuda:1, ...",
}


def _train_config_fields():
    """(name, type, default) of every TrainConfig field, types as plain Python callables."""
    from aoi.train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        base = next((t for t in typing.get_args(hints[field.name]) if t is not type(None)), hints[field.name])
        default = None if field.default is dataclasses.MISSING else field.default
        yield field.name, base, default


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aoi", description="Anytime Optimal Inference SNNs: TET + STR training, per-step logits, cutoff analyses."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train one run (resumes from its checkpoint)",
        description="Train one TET or TET+STR run; every TrainConfig field is a flag.",
    )
    for name, kind, default in _train_config_fields():
        flag = "--" + name.replace("_", "-")
        if name == "dataset":
            train.add_argument(flag, required=True, help="dataset name, e.g. digits, ndigits, cifar10")
        else:
            help_text = FIELD_HELP[name] + ("" if name in ("model", "T") else f" (default: {default})")
            train.add_argument(flag, type=kind, default=default, help=help_text)
    train.add_argument("--run-dir", help="output folder (default: runs/<run name>)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")

    evaluate = commands.add_parser(
        "evaluate",
        help="save the per-step logits of a finished run",
        description="Write RUN_DIR/logits_<split>.npz from the run's final model.",
    )
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--splits", nargs="+", default=["test", "train"], choices=["test", "train"])
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--no-progress", action="store_true")

    commands.add_parser(REPRODUCE, add_help=False, help="run a whole profile (see `aoi reproduce --help`)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == REPRODUCE:
        from aoi import reproduce

        return reproduce.main(argv[1:]) or 0
    args = _parser().parse_args(argv)
    from aoi.train import CheckpointError, RunMismatch, TrainingDiverged

    try:
        _run(args)
    except (FileNotFoundError, RunMismatch, CheckpointError, TrainingDiverged) as exc:
        raise SystemExit(f"aoi {args.command}: {exc}") from None
    return 0


def _run(args: argparse.Namespace) -> None:
    if args.command == "train":
        from aoi.train import TrainConfig, train

        try:
            config = TrainConfig(**{name: getattr(args, name) for name, _, _ in _train_config_fields()})
        except ValueError as exc:
            raise SystemExit(f"aoi train: {exc}") from None
        run_dir = args.run_dir or f"runs/{config.run_name()}"
        final = train(config, run_dir, progress=not args.no_progress)
        if os.environ.get("RANK", "0") == "0":  # once under torchrun
            print(json.dumps({"run_dir": str(run_dir), **final["metrics"]}, indent=2))
    elif args.command == "evaluate":
        from aoi.evaluate import evaluate

        evaluate(args.run_dir, splits=tuple(args.splits), progress=not args.no_progress, device=args.device)


if __name__ == "__main__":
    sys.exit(main())
