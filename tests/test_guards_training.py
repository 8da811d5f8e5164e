"""Every failure of training, runs, checkpoints and evaluation is loud, named and recoverable (issue #15)."""

from __future__ import annotations

import pytest
import torch

from aoi.__main__ import main
from aoi.config import ConfigError, TrainConfig
from aoi.errors import UserError

torch.set_num_threads(1)  # the CI box has 2 shared cores

TINY = dict(dataset="digits", batch_size=16, limit_train=32, limit_test=16, device="cpu")


def cli_train(run_dir, **values) -> int:
    """``python -m aoi train`` with the flags of TINY and ``values``."""
    args = ["train", "--run-dir", str(run_dir), "--no-progress"]
    for name, value in {**TINY, **values}.items():
        args += ["--" + name.replace("_", "-"), str(value)]
    return main(args)


def cli_error(*args) -> str:
    """The one line the command line exits with."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code


def test_every_bad_config_value_is_named_at_once():
    bad = dict(
        momentum=float("nan"),
        weight_decay=float("inf"),
        means=float("nan"),
        lr=float("inf"),
        lamb=-1.0,
        beta=0.0,
        window=float("nan"),
        T=4.5,
        epochs="1",
        batch_size=True,
        seed=-1,
        limit_test=2.0,
        num_workers=-1,
        validation=float("nan"),
    )
    with pytest.raises(ConfigError) as error:
        TrainConfig(dataset="digits", **bad)
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)
    assert str(error.value) == (
        "invalid TrainConfig: T must be an integer >= 1, got 4.5; epochs must be an integer >= 1, got '1'; "
        "batch_size must be an integer >= 1, got True; seed must be an integer in [0, 4294967295], got -1; "
        "limit_test must be None or an integer >= 1, got 2.0; num_workers must be an integer >= 0, got -1; "
        "beta must be a finite number in (0, 1], got 0.0; window must be a finite number in (0, 1], got nan; "
        "lamb must be a finite number in [0, 1], got -1.0; means must be a finite number, got nan; "
        "lr must be a finite number > 0, got inf; momentum must be a finite number in [0, 1), got nan; "
        "weight_decay must be a finite number >= 0, got inf; validation must be a finite number in [0, 1), got nan"
    )


@pytest.mark.parametrize(
    "values, message",
    [
        ({"T": 4.5}, "T must be an integer >= 1, got 4.5"),  # a profile's `T: 4.5` is not T = 4
        ({"T": "4"}, "T must be an integer >= 1, got '4'"),
        ({"limit_train": 1.0}, "limit_train must be None or an integer >= 1, got 1.0"),
        ({"seed": 2**32}, "seed must be an integer in [0, 4294967295], got 4294967296"),
        ({"lr": "0.1"}, "lr must be a finite number > 0, got '0.1'"),
        ({"device": 0}, "device must be a string (auto, cpu, cuda, cuda:1, ...), got 0"),
        ({"dataset": "mnist"}, "unknown dataset 'mnist' (known: digits, ndigits, fashion-mnist, nfashion, cifar10,"),
    ],
)
def test_stored_values_of_the_wrong_type_are_refused(values, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict({"dataset": "digits", **values})
    assert str(error.value).startswith(f"invalid TrainConfig: {message}")


def test_integral_numbers_still_work_as_floats():
    config = TrainConfig(dataset="digits", width=2, lr=1, momentum=0, weight_decay=0)
    assert (config.width, config.lr, config.T) == (2, 1, 4)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--momentum", "nan"], "momentum must be a finite number in [0, 1), got nan"),
        (["--seed", "-1"], "seed must be an integer in [0, 4294967295], got -1"),
    ],
)
def test_bad_flags_stop_before_anything_is_written(tmp_path, flags, message):
    run_dir = tmp_path / "run"
    error = cli_error("train", "--dataset", "digits", "--run-dir", str(run_dir), *flags)
    assert error == f"aoi train: invalid TrainConfig: {message}"
    assert not run_dir.exists()
