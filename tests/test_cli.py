"""Command line and evaluation: --help, a tiny train + evaluate through main(), reproduce forwarding."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import types

import numpy as np
import pytest
import torch

import aoi.evaluate as evaluation
from aoi.__main__ import main
from aoi.config import TrainConfig
from aoi.metrics import accuracy_per_step

torch.set_num_threads(1)  # the CI box has 2 shared cores; threads spinning against each other cost 10x


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("train", "evaluate", "reproduce"))


def test_train_help_has_a_flag_per_config_field(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in out
    assert "--run-dir" in out


def test_bad_flag_value_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit, match="method 'str' needs alpha > 0"):
        main(["train", "--dataset", "digits", "--method", "str"])
    with pytest.raises(SystemExit, match="alpha must be a finite number >= 0, got nan"):
        main(["train", "--dataset", "digits", "--method", "str", "--alpha", "nan"])
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "digits", "--detach-reset", "maybe"])
    assert "--detach-reset: expected true or false, got 'maybe'" in capsys.readouterr().err


def test_tiny_train_then_evaluate(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits",
                "--method",
                "str",
                "--alpha",
                "0.5",
                "--seed",
                "3",
                "--epochs",
                "2",
                "--batch-size",
                "32",
                "--limit-train",
                "256",
                "--limit-test",
                "80",
                "--device",
                "cpu",
                "--run-dir",
                str(run_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert (config["method"], config["alpha"], config["seed"], config["epochs"], config["T"]) == ("str", 0.5, 3, 2, 4)

    assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
    outputs, targets = evaluation.load_logits(run_dir, "test")
    assert outputs.dtype == torch.float32 and targets.dtype == torch.long
    assert outputs.shape == (4, 80, 10) and targets.shape == (80,)
    with np.load(run_dir / "logits_test.npz") as saved:
        assert saved["outputs"].dtype == np.float32 and saved["targets"].dtype == np.int64
    # the saved logits reproduce the last epoch's test accuracies
    with open(run_dir / "log.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    per_step = accuracy_per_step(outputs, targets).tolist()
    assert per_step == pytest.approx([float(last[f"test_acc_t{t}"]) for t in range(1, 5)], abs=1e-6)
    assert printed["test_acc"] == pytest.approx(per_step[-1])
    # train split without augmentation, the run's limit_train samples
    train_outputs, train_targets = evaluation.load_logits(run_dir, "train")
    assert train_outputs.shape == (4, 256, 10)
    assert torch.equal(
        train_targets,
        torch.tensor(
            [label for _, label in evaluation.get_dataset("digits", "train", T=4, limit=256, seed=3, augment=False)]
        ),
    )

    model, loaded_config = evaluation.load_model(run_dir)
    assert not model.training and loaded_config == TrainConfig(**config)
    dataset = evaluation.split_dataset(
        TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())["config"]), "test"
    )
    assert len(dataset) == 80
    inputs = torch.stack([dataset[i][0] for i in range(5)], dim=1)  # [T, 5, C, H, W]
    with torch.no_grad():
        torch.testing.assert_close(model(inputs), outputs[:, :5])

    # idempotent: a second evaluate leaves the files alone
    stamp = (run_dir / "logits_test.npz").stat().st_mtime_ns
    evaluation.evaluate(run_dir, progress=False)
    assert (run_dir / "logits_test.npz").stat().st_mtime_ns == stamp


def test_evaluate_an_unfinished_run_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="aoi evaluate: .* holds no finished run"):
        main(["evaluate", str(tmp_path), "--no-progress"])
    with pytest.raises(FileNotFoundError, match="python -m aoi evaluate"):
        evaluation.load_logits(tmp_path)


def test_a_user_error_is_one_line_its_traceback_comes_with_debug_and_a_bug_keeps_its_own(tmp_path, monkeypatch, capsys):
    from aoi import reproduce
    from aoi.profiles import ProfileError

    with pytest.raises(FileNotFoundError, match="holds no finished run"):
        main(["evaluate", str(tmp_path), "--no-progress", "--debug"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("epsilon: 0.01\n")
    assert main(["reproduce", "--profile", str(bad), "--dry-run"]) == 2
    assert capsys.readouterr().err == (
        f"error: profile {bad}: missing key datasets; missing key seeds; missing key epsilons\n"
    )
    with pytest.raises(ProfileError, match="missing key datasets"):
        main(["reproduce", "--profile", str(bad), "--dry-run", "--debug"])
    monkeypatch.setattr(reproduce, "plan", lambda *args: {}["a bug"])
    with pytest.raises(KeyError, match="a bug"):
        main(["reproduce", "--profile", "smoke", "--dry-run"])


def test_reproduce_forwards_the_rest_of_the_command_line(monkeypatch):
    received = []
    fake = types.ModuleType("aoi.reproduce")
    fake.main = lambda argv: received.append(argv) or 0
    monkeypatch.setitem(sys.modules, "aoi.reproduce", fake)
    monkeypatch.setattr(sys.modules["aoi"], "reproduce", fake, raising=False)
    assert main(["reproduce", "--profile", "smoke", "--jobs", "2", "--help"]) == 0
    assert received == [["--profile", "smoke", "--jobs", "2", "--help"]]
