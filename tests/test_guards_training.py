"""Every failure of training, runs, checkpoints and evaluation is loud, named and recoverable (issue #15)."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch
from runs import TINY, cli_error, copy_run, flip_bits_inside, read_log, signed, train_args

import aoi.checkpoint as checkpoints
import aoi.train as training
from aoi.__main__ import main
from aoi.checkpoint import CheckpointError
from aoi.config import ConfigError, TrainConfig
from aoi.errors import UserError
from aoi.train import TrainingDiverged, train

torch.set_num_threads(1)  # the CI box has 2 shared cores


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


# ---- runs that cannot start: run directory, device, empty split


def test_a_run_directory_that_is_a_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    assert cli_error("train", "--dataset", "digits", "--run-dir", str(path)) == (
        f"aoi train: run directory {path} is a file: choose another --run-dir or move the file away"
    )
    assert path.read_text() == "mine"
    run_dir = path / "run"
    assert cli_error("train", "--dataset", "digits", "--run-dir", str(run_dir)) == (
        f"aoi train: cannot write to run directory {run_dir} (Not a directory): "
        "make it writable or choose another --run-dir"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_directory_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o500)
    assert cli_error("train", "--dataset", "digits", "--run-dir", str(run_dir)) == (
        f"aoi train: cannot write to run directory {run_dir} (Permission denied): "
        "make it writable or choose another --run-dir"
    )


@pytest.mark.parametrize(
    "device, message",
    [
        ("cuda", "device 'cuda' requested but CUDA is not available: use --device cpu"),
        ("cuda:1", "device 'cuda:1' requested but CUDA is not available: use --device cpu"),
        ("gpu", "device 'gpu' is not a torch device: use auto, cpu, cuda or cuda:N"),
    ],
)
def test_a_device_this_machine_lacks_is_one_line(tmp_path, monkeypatch, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli_error("train", "--dataset", "digits", "--device", device, "--run-dir", str(tmp_path)) == (
        f"aoi train: {message}"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_empty_training_split_is_refused(tmp_path):
    error = cli_error("train", "--dataset", "digits", "--validation", "0.999", "--run-dir", str(tmp_path))
    assert error == (
        "aoi train: the train split of 'digits' is empty (validation=0.999): "
        "lower --validation or check the dataset's files"
    )
    assert list(tmp_path.iterdir()) == []


# ---- NaN and infinity: in the data, in the weights, in a checkpoint


class WithNaN(torch.utils.data.Dataset):
    """``dataset`` with NaN images at the positions ``bad``."""

    def __init__(self, dataset, bad):
        self.dataset, self.bad, self.provenance = dataset, bad, dataset.provenance

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        frames, label = self.dataset[index]
        return (torch.full_like(frames, float("nan")) if index in self.bad else frames), label


@pytest.mark.parametrize("split, where", [("train", "epoch 1, batch 1"), ("test", "epoch 1")], ids=["train", "test"])
def test_nan_images_stop_training_naming_the_dataset(tmp_path, monkeypatch, split, where):
    real = training.get_dataset

    def three_nan_images(name, part, **options):
        dataset = real(name, part, **options)
        return WithNaN(dataset, {3, 7, 11}) if part == split else dataset

    monkeypatch.setattr(training, "get_dataset", three_nan_images)
    with pytest.raises(TrainingDiverged) as error:
        train(TrainConfig(**{**TINY, "batch_size": 32, "epochs": 1}), tmp_path, progress=False)
    assert str(error.value) == (
        f"the {split} data of 'digits' hold NaN or infinite values ({where}); no checkpoint was written; "
        "check the dataset's files"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


@pytest.fixture(scope="module")
def half_run(tmp_path_factory):
    """A 2-epoch run killed right after its epoch-1 checkpoint: (config, run_dir)."""
    config = TrainConfig(**TINY, epochs=2)
    run_dir = tmp_path_factory.mktemp("half")
    save = checkpoints.save_torch

    def save_then_die(obj, path):
        save(obj, path)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(checkpoints, "save_torch", save_then_die)
        train(config, run_dir, progress=False)
    return config, run_dir


@pytest.mark.parametrize(
    "name",
    ["features.0.conv_bn.module.0.weight", "features.2.conv_bn.module.1.running_var"],
    ids=["parameter", "batchnorm-buffer"],
)
def test_weights_that_turn_nan_stop_the_run_and_keep_the_last_finite_checkpoint(half_run, tmp_path, monkeypatch, name):
    config, source = half_run
    run_dir = copy_run(source, tmp_path)
    saved = (run_dir / "checkpoint.pt").read_bytes()
    train_epoch = training._Session._train_epoch

    def epoch_leaving_a_nan(session, epoch, progress):  # like SGD with NaN momentum: the loss stays finite
        row = train_epoch(session, epoch, progress)
        session.core.state_dict()[name].view(-1)[0] = float("nan")
        return row

    monkeypatch.setattr(training._Session, "_train_epoch", epoch_leaving_a_nan)
    with pytest.raises(TrainingDiverged) as error:
        train(config, run_dir, progress=False)
    assert str(error.value) == (
        f"training diverged in epoch 2: {name} of the model became NaN or infinite; "
        f"{run_dir / 'checkpoint.pt'} keeps epoch 1; lower the learning rate (in a new run directory) or check the data"
    )
    assert (run_dir / "checkpoint.pt").read_bytes() == saved
    assert [row["epoch"] for row in read_log(run_dir)] == ["1"]
    assert not (run_dir / "final.json").exists()


def without(key):
    def tamper(checkpoint):
        del checkpoint[key]

    return tamper


def nan_weight(checkpoint):
    checkpoint["model"]["readout.weight"][0, 0] = float("inf")


@pytest.mark.parametrize(
    "tamper, problem",
    [
        (without("rng"), "is an incomplete aoi checkpoint (it lacks rng)"),
        (nan_weight, "holds NaN or infinite values (readout.weight)"),
    ],
    ids=["missing-key", "nan-weight"],
)
def test_a_bad_checkpoint_is_named_and_the_advice_restarts_the_run(half_run, tmp_path, tamper, problem):
    config, source = half_run
    run_dir = copy_run(source, tmp_path)
    path = run_dir / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=True)
    tamper(checkpoint)
    torch.save(signed(checkpoint), path)  # as an aoi that did not check its weights wrote it
    saved = path.read_bytes()
    with pytest.raises(CheckpointError) as error:
        train(config, run_dir, progress=False)
    assert str(error.value) == f"{path} {problem}: delete it to restart the run"
    assert path.read_bytes() == saved

    path.unlink()  # the advice
    final = train(config, run_dir, progress=False)
    assert final["metrics"]["epoch"] == 2 and (run_dir / "final.json").exists()


def flipped_momentum(path):
    momentum = torch.load(path, weights_only=True)["optimizer"]["state"][0]["momentum_buffer"]
    flip_bits_inside(path, momentum)


def flipped_weights(path):
    flip_bits_inside(path, torch.load(path, weights_only=True)["model"]["features.2.conv_bn.module.0.weight"])


def unchecked(path):  # as an aoi before issue #22 wrote it
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["sha256"]
    torch.save(checkpoint, path)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (flipped_weights, "is corrupt (its content does not match the checksum saved with it)"),
        (flipped_momentum, "is corrupt (its content does not match the checksum saved with it)"),
        (unchecked, "carries no checksum (an older aoi wrote it), so it cannot be verified"),
    ],
    ids=["flipped-weights", "flipped-momentum", "no-checksum"],
)
def test_a_damaged_checkpoint_of_an_unfinished_run_is_not_resumed(half_run, tmp_path, damage, problem):
    _, source = half_run
    run_dir = copy_run(source, tmp_path)
    path = run_dir / "checkpoint.pt"
    damage(path)
    saved = path.read_bytes()
    assert torch.load(path, weights_only=True)["epoch"] == 1  # torch itself loads it without a word
    assert cli_error(*train_args(run_dir, epochs=2)) == f"aoi train: {path} {problem}: delete it to restart the run"
    assert path.read_bytes() == saved and not (run_dir / "final.json").exists()

    path.unlink()  # the advice
    assert main(train_args(run_dir, epochs=2)) == 0
    assert json.loads((run_dir / "final.json").read_text())["metrics"]["epoch"] == 2


def test_a_full_disk_keeps_the_last_checkpoint_and_the_run_resumes(half_run, tmp_path, monkeypatch):
    _, source = half_run
    run_dir = copy_run(source, tmp_path)
    saved = (run_dir / "checkpoint.pt").read_bytes()

    def disk_fills_up(obj, file):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", disk_fills_up)
        error = cli_error(*train_args(run_dir, epochs=2))
    assert error == (
        f"aoi train: cannot write {run_dir / 'checkpoint.pt'} (No space left on device): "
        "free some disk space, then run again"
    )
    assert (run_dir / "checkpoint.pt").read_bytes() == saved
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "config.json", "log.csv"]

    assert main(train_args(run_dir, epochs=2)) == 0  # space freed: the run resumes and finishes
    assert json.loads((run_dir / "final.json").read_text())["metrics"]["epoch"] == 2
