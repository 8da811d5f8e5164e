"""Every failure of training, runs, checkpoints and evaluation is loud, named and recoverable (issue #15)."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import aoi.checkpoint as checkpoints
import aoi.train as training
from aoi.__main__ import main
from aoi.checkpoint import CheckpointError
from aoi.config import ConfigError, TrainConfig
from aoi.errors import UserError
from aoi.evaluate import load_logits
from aoi.files import UnreadableFile
from aoi.train import TrainingDiverged, train

torch.set_num_threads(1)  # the CI box has 2 shared cores

TINY = dict(dataset="digits", batch_size=16, limit_train=32, limit_test=16, device="cpu")


def train_args(run_dir, **values) -> list[str]:
    """The command line ``aoi train`` of TINY and ``values`` into ``run_dir``."""
    args = ["train", "--run-dir", str(run_dir), "--no-progress"]
    for name, value in {**TINY, **values}.items():
        args += ["--" + name.replace("_", "-"), str(value)]
    return args


def read_log(run_dir) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


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


def copy_run(source, tmp_path):
    return Path(shutil.copytree(source, tmp_path / "run"))


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
    torch.save(checkpoint, path)
    saved = path.read_bytes()
    with pytest.raises(CheckpointError) as error:
        train(config, run_dir, progress=False)
    assert str(error.value) == f"{path} {problem}: delete it to restart the run"
    assert path.read_bytes() == saved

    path.unlink()  # the advice
    final = train(config, run_dir, progress=False)
    assert final["metrics"]["epoch"] == 2 and (run_dir / "final.json").exists()


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


# ---- a finished run: lost weights, stale or broken logits


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 1-epoch run with its logits, trained and evaluated through the command line."""
    run_dir = tmp_path_factory.mktemp("finished")
    assert main(train_args(run_dir, epochs=1)) == 0
    assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
    return run_dir


def test_a_corrupt_checkpoint_of_a_finished_run_says_what_to_delete_and_that_works(finished, tmp_path, capsys):
    run_dir = copy_run(finished, tmp_path)
    checkpoint, final = run_dir / "checkpoint.pt", run_dir / "final.json"
    weights = json.loads(final.read_text())["weights_sha256"]
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    error = cli_error("evaluate", str(run_dir), "--no-progress")
    assert error.startswith(f"aoi evaluate: {checkpoint} is not an aoi checkpoint (")
    assert error.endswith(
        f"): delete {checkpoint} and {final}, then train the run again (same config and run directory)"
    )

    checkpoint.unlink()  # the advice
    final.unlink()
    assert main(train_args(run_dir, epochs=1)) == 0
    assert json.loads(final.read_text())["weights_sha256"] == weights  # the same run again, bit for bit
    logits = (run_dir / "logits_test.npz").read_bytes()
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
    assert (run_dir / "logits_test.npz").read_bytes() == logits  # from the same weights: kept
    assert capsys.readouterr().err == ""


def test_a_finished_run_without_its_checkpoint_says_to_delete_final_json(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / "checkpoint.pt").unlink()
    expected = (
        f"{run_dir / 'checkpoint.pt'}, the final weights of a finished run, is missing: "
        f"delete {run_dir / 'final.json'}, then train the run again (same config and run directory)"
    )
    assert cli_error(*train_args(run_dir, epochs=1)) == f"aoi train: {expected}"
    assert cli_error("evaluate", str(run_dir), "--no-progress") == f"aoi evaluate: {expected}"
    assert (run_dir / "final.json").exists()


def other_weights(path):
    with np.load(path) as data:
        np.savez(path, outputs=np.zeros_like(data["outputs"]), targets=data["targets"], weights_sha256="0" * 64)


def no_record(path):
    with np.load(path) as data:
        np.savez(path, outputs=np.zeros_like(data["outputs"]), targets=data["targets"])


def garbage(path):
    path.write_bytes(b"not an npz")


@pytest.mark.parametrize(
    "spoil, problem",
    [
        (garbage, "is unreadable ("),
        (other_weights, "comes from other weights than the run's final ones"),
        (no_record, "does not record the weights it comes from"),
    ],
    ids=["garbage", "other-weights", "no-record"],
)
def test_evaluate_recomputes_logits_not_from_the_final_weights_and_says_so(finished, tmp_path, capsys, spoil, problem):
    run_dir = copy_run(finished, tmp_path)
    path = run_dir / "logits_test.npz"
    spoil(path)
    os.utime(path, (4e9, 4e9))  # newer than the checkpoint
    with pytest.raises(UserError) as error:
        load_logits(run_dir)
    assert str(error.value).startswith(f"{path} {problem}")
    assert str(error.value).endswith(f": run `python -m aoi evaluate {run_dir}` to recompute it")
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
    said = capsys.readouterr().err
    assert said.startswith(f"aoi evaluate: {path} {problem}") and said.endswith(": recomputing it\n")
    assert said.count("\n") == 1  # the train split's logits were kept
    for recomputed, original in zip(load_logits(run_dir), load_logits(finished), strict=True):
        assert torch.equal(recomputed, original)


def test_unreadable_logits_are_named_by_load_logits(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    (run_dir / "final.json").unlink()  # no final weights to compare with: the file itself is read
    garbage(run_dir / "logits_test.npz")
    with pytest.raises(UnreadableFile) as error:
        load_logits(run_dir)
    assert str(error.value).startswith(f"{run_dir / 'logits_test.npz'} is unreadable (")
    assert str(error.value).endswith(f"): run `python -m aoi evaluate {run_dir}` to recompute it")


def test_a_finished_run_with_nan_weights_is_not_evaluated(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)  # as a run finished before aoi checked its weights
    path = run_dir / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"]["features.0.conv_bn.module.1.running_mean"][:] = float("nan")
    torch.save(checkpoint, path)
    logits = (run_dir / "logits_test.npz").read_bytes()
    assert cli_error("evaluate", str(run_dir), "--no-progress") == (
        f"aoi evaluate: {path} holds NaN or infinite values (features.0.conv_bn.module.1.running_mean): "
        "the run diverged; train it with other settings (e.g. a lower lr) in a new run directory"
    )
    assert (run_dir / "logits_test.npz").read_bytes() == logits
