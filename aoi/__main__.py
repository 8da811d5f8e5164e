"""Command line: ``python -m aoi {train,evaluate,reproduce,place-nmnist-small} ...`` (also the ``aoi``
console script).

python -m aoi train --dataset digits --method str --alpha 0.5 --seed 0 --epochs 30 --run-dir runs/x
python -m aoi evaluate runs/x
python -m aoi reproduce --profile default --jobs 2
python -m aoi place-nmnist-small slayerPytorch/test/test_files/NMNISTsmall   # see aoi.data.nmnist_small
torchrun --nproc_per_node 4 -m aoi train --dataset cifar10 ...   # multi-GPU (see aoi.distributed)

A user's mistake (`aoi.errors.UserError`) prints one line and exits with status 1 (reproduce: 2,
nothing could start); ``--debug`` shows its traceback. Any other exception is a bug in aoi and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing

from aoi.errors import DEBUG_HELP, UserError

REPRODUCE = "reproduce"
PLACE = "place-nmnist-small"
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _boolean(text: str) -> bool:
    """A command-line boolean: true/1/yes or false/0/no (any case)."""
    if text.lower() in TRUE + FALSE:
        return text.lower() in TRUE
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _train_config_fields():
    """(name, type, default, help) of every TrainConfig field, types as plain Python callables."""
    from aoi.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        base = next((t for t in typing.get_args(hints[field.name]) if t is not type(None)), hints[field.name])
        default = None if field.default is dataclasses.MISSING else field.default
        yield field.name, _boolean if base is bool else base, default, field.metadata["help"]


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
    for name, kind, default, help_text in _train_config_fields():
        flag = "--" + name.replace("_", "-")
        if name == "dataset":
            train.add_argument(flag, required=True, help=help_text)
        else:
            shown = "" if default is None else f" (default: {default})"
            train.add_argument(flag, type=kind, default=default, help=help_text + shown)
    train.add_argument("--run-dir", help="output folder (default: runs/<run name>)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    evaluate = commands.add_parser(
        "evaluate",
        help="save the per-step logits of a finished run",
        description="Write RUN_DIR/logits_<split>.npz from the run's final model.",
    )
    evaluate.add_argument("run_dir")
    evaluate.add_argument(
        "--splits", nargs="+", choices=["test", "train", "val"], help="default: test, train, and val if held out"
    )
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    place = commands.add_parser(
        PLACE,
        help="check slayerPytorch's 1,100 N-MNIST recordings and place them for the nmnist-small dataset",
        description="Check every label and recording of slayerPytorch's test/test_files/NMNISTsmall and copy "
        "them to <data root>/NMNISTsmall/{Train,Test}/<digit>/<number>.bin (never overwriting anything).",
    )
    place.add_argument("folder", help="slayerPytorch's test/test_files/NMNISTsmall (git clone of its repository)")
    place.add_argument("--root", help="data root (default: $AOI_DATA, else ./data)")
    place.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    commands.add_parser(REPRODUCE, add_help=False, help="run a whole profile (see `aoi reproduce --help`)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == REPRODUCE:
        from aoi import reproduce

        return reproduce.main(argv[1:]) or 0
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (FileNotFoundError, UserError) as exc:
        if args.debug:
            raise
        raise SystemExit(f"aoi {args.command}: {exc}") from None
    return 0


def _run(args: argparse.Namespace) -> None:
    if args.command == "train":
        from aoi.config import TrainConfig
        from aoi.train import train

        config = TrainConfig(**{name: getattr(args, name) for name, *_ in _train_config_fields()})
        run_dir = args.run_dir or f"runs/{config.run_name()}"
        final = train(config, run_dir, progress=not args.no_progress)
        if os.environ.get("RANK", "0") == "0":  # once under torchrun
            print(json.dumps({"run_dir": str(run_dir), **final["metrics"]}, indent=2))
    elif args.command == "evaluate":
        from aoi.evaluate import evaluate

        evaluate(args.run_dir, splits=args.splits, progress=not args.no_progress, device=args.device)
    elif args.command == PLACE:
        from aoi.data.nmnist_small import place

        folder, copied = place(args.folder, args.root)
        done = "checked and placed in" if copied else "checked; already in place in"
        print(f"1,100 N-MNIST recordings (1,000 of its training set, 100 of its test set) {done} {folder}")


if __name__ == "__main__":
    sys.exit(main())
