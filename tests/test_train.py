"""Training engine: files, exact resume, determinism, divergence, bad checkpoints, STR gradients."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

import aoi.checkpoint as checkpoints
import aoi.train as training
from aoi.checkpoint import CheckpointError
from aoi.config import TrainConfig, build_model
from aoi.losses import tet_loss
from aoi.neurons import lif_layers, set_recording
from aoi.regularisers import collect_factors, str_loss
from aoi.run_files import RunMismatch
from aoi.train import TrainingDiverged, train

torch.set_num_threads(1)  # the CI box has 2 shared cores; threads spinning against each other cost 10x

TINY = dict(dataset="digits", epochs=3, batch_size=32, limit_train=256, limit_test=96, device="cpu")


def read_log(run_dir) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def weights(run_dir) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """A 3-epoch STR run trained without interruption: (config, run_dir, final)."""
    config = TrainConfig(method="str", alpha=0.5, **TINY)
    run_dir = tmp_path_factory.mktemp("straight")
    return config, run_dir, train(config, run_dir, progress=False)


def test_config_defaults_and_run_name():
    config = TrainConfig(dataset="digits", method="str", alpha=0.5)
    assert (config.model, config.T) == ("digits_snn", 4)
    assert config.run_name() == "digits/T4-str-a0.5-s0"
    assert TrainConfig(dataset="digits", seed=2).run_name() == "digits/T4-tet-s2"
    assert TrainConfig.from_dict(config.asdict()) == config
    assert TrainConfig(dataset="ndigits", detach_reset=True, width=2).run_name() == "ndigits/T10-tet-w2-detached-s0"


def test_the_reset_gradient_and_width_reach_the_model():
    model = build_model(TrainConfig(dataset="digits", detach_reset=True, width=2.0))
    assert all(lif.detach_reset for lif in lif_layers(model))
    assert [conv.out_channels for conv in model.modules() if isinstance(conv, torch.nn.Conv2d)] == [64, 128]
    assert not any(lif.detach_reset for lif in lif_layers(build_model(TrainConfig(dataset="digits"))))
    with pytest.raises(ValueError, match="fixed width"):
        build_model(TrainConfig(dataset="cifar10", width=2.0))


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(method="str"), "method 'str' needs alpha > 0"),
        (dict(alpha=0.5), "use method 'str'"),
        (dict(method="rate"), "method must be one of"),
        (dict(model="nope"), "unknown model 'nope'"),
        (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
        (dict(method="str", alpha=-0.1), "alpha must be a finite number >= 0"),
        (dict(method="str", alpha=float("inf")), "alpha must be a finite number >= 0"),
        (dict(detach_reset="no"), "detach_reset must be true or false"),
        (dict(width=0.0), "width must be a finite number > 0"),
        (dict(validation=1.0), r"validation must be a finite number in \[0, 1\), got 1.0"),
        (dict(folds=1), r"folds must be 0 or >= 2 and fold in \[0, folds\), got folds=1, fold=0"),
        (dict(folds=5, fold=5), r"fold in \[0, folds\), got folds=5, fold=5"),
        (dict(fold=1), r"fold in \[0, folds\), got folds=0, fold=1"),
        (dict(folds=-2), "folds must be an integer >= 0, got -2"),
    ],
)
def test_bad_config_is_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(dataset="digits", **bad)


def test_run_files(straight):
    config, run_dir, final = straight
    rows = read_log(run_dir)
    assert list(rows[0]) == [
        "epoch",
        "lr",
        "loss",
        "tet_loss",
        "str_loss",
        "train_acc",
        "test_acc",
        "test_acc_t1",
        "test_acc_t2",
        "test_acc_t3",
        "test_acc_t4",
        "seconds",
    ]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    # cosine annealing to 0 over 3 epochs: lr_e = 0.1 * (1 + cos(pi * (e - 1) / 3)) / 2
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1, 0.075, 0.025])
    for r in rows:
        assert float(r["loss"]) == pytest.approx(float(r["tet_loss"]) + 0.5 * float(r["str_loss"]), rel=1e-6)
        assert float(r["test_acc"]) == float(r["test_acc_t4"])
        assert all(0 <= float(r[k]) <= 1 for k in ("train_acc", "test_acc_t1", "test_acc_t4"))
    assert float(rows[-1]["test_acc"]) > 0.5  # it learns (chance is 0.1)

    stored = json.loads((run_dir / "config.json").read_text())
    assert stored["config"] == config.asdict()
    provenance = stored["provenance"]
    assert {"git_commit", "versions", "data", "machine", "at"} <= set(provenance)
    assert provenance["versions"]["torch"] == torch.__version__.split("+")[0]

    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 3
    assert {"model", "optimizer", "scheduler", "log", "rng", "config"} <= set(checkpoint)
    assert {"torch", "numpy", "python", "loader"} <= set(checkpoint["rng"][0])
    assert len(checkpoint["log"]) == 3

    on_disk = json.loads((run_dir / "final.json").read_text())
    assert on_disk == final
    assert final["metrics"]["test_acc"] == pytest.approx(float(rows[-1]["test_acc"]))
    assert final["wall_seconds"] == pytest.approx(sum(float(r["seconds"]) for r in rows))
    model = build_model(config)
    model.load_state_dict(checkpoint["model"])
    assert final["weights_sha256"] == checkpoints.weights_sha256(model)


def test_resume_after_a_kill_gives_the_same_run(straight, tmp_path, monkeypatch):
    config, straight_dir, _ = straight
    saves = []

    def save_then_die(obj, path):
        training_save(obj, path)
        saves.append(obj["epoch"])
        if obj["epoch"] == 2:
            raise KeyboardInterrupt  # killed right after the epoch-2 checkpoint

    training_save = checkpoints.save_torch
    monkeypatch.setattr(checkpoints, "save_torch", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, progress=False)
    assert saves == [1, 2] and not (tmp_path / "final.json").exists()
    assert len(read_log(tmp_path)) == 1  # killed before log.csv caught up: resume rewrites it from the checkpoint

    monkeypatch.setattr(checkpoints, "save_torch", training_save)
    train(config, tmp_path, progress=False)
    assert_same_weights(weights(tmp_path), weights(straight_dir))
    assert without_seconds(read_log(tmp_path)) == without_seconds(read_log(straight_dir))


def test_same_seed_same_run_other_seed_other_run(straight, tmp_path):
    config, straight_dir, final = straight
    again = train(config, tmp_path / "again", progress=False)
    assert again["weights_sha256"] == final["weights_sha256"]
    assert without_seconds(read_log(tmp_path / "again")) == without_seconds(read_log(straight_dir))
    other = train(TrainConfig(**{**config.asdict(), "seed": 1, "epochs": 1}), tmp_path / "other", progress=False)
    assert other["weights_sha256"] != final["weights_sha256"]


def test_finished_run_is_returned_without_training(straight, monkeypatch):
    config, run_dir, final = straight
    monkeypatch.setattr(training._Session, "start", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert train(config, run_dir, progress=False) == final


def test_other_config_in_the_same_run_dir_is_refused(straight, tmp_path):
    config, run_dir, _ = straight
    with pytest.raises(RunMismatch, match=r"different config.*'epochs': \(3, 4\)"):
        train(TrainConfig(**{**config.asdict(), "epochs": 4}), run_dir, progress=False)
    (tmp_path / "config.json").write_text(json.dumps({"config": {**config.asdict(), "seed": 9}}))
    with pytest.raises(RunMismatch, match="different config"):
        train(config, tmp_path, progress=False)


@pytest.mark.parametrize("content", [b"not a checkpoint at all", "foreign"])
def test_corrupt_or_foreign_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    if content == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    else:
        path.write_bytes(content)
    config = TrainConfig(**{**TINY, "epochs": 1})
    with pytest.raises(CheckpointError, match=r"checkpoint.pt is not an aoi checkpoint \(.+\): delete it"):
        train(config, tmp_path, progress=False)


def test_nan_loss_stops_the_run_naming_epoch_and_batch(tmp_path, monkeypatch):
    calls = []

    def loss_that_turns_nan(outputs, targets, lamb, means):
        calls.append(1)
        loss = tet_loss(outputs, targets, lamb, means)
        return loss * float("nan") if len(calls) == 2 else loss

    monkeypatch.setattr(training, "tet_loss", loss_that_turns_nan)
    with pytest.raises(TrainingDiverged, match=r"in epoch 1: the loss is nan \(NaN or infinite\) at batch 2; no"):
        train(TrainConfig(**TINY), tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_str_term_is_nonzero_and_changes_the_gradient():
    torch.manual_seed(0)
    config = TrainConfig(method="str", alpha=0.5, **TINY)
    model = build_model(config)
    inputs, targets = 3 * torch.rand(4, 32, 1, 8, 8), torch.randint(0, 10, (32,))
    set_recording(model, True)
    outputs = model(inputs)
    # make every sample count in STR (all predicted right at the last steps) so the term is not masked out
    targets = outputs[-1].argmax(-1).detach()
    regulariser = str_loss(outputs, targets, collect_factors(model, config.beta), config.window)
    assert regulariser.item() > 0 and math.isfinite(regulariser.item())
    conv = model.features[0].conv_bn.module[0].weight
    (grad_str,) = torch.autograd.grad(regulariser, conv, retain_graph=True)
    (grad_tet,) = torch.autograd.grad(tet_loss(outputs, targets), conv)
    assert grad_str.abs().sum() > 0
    assert not torch.allclose(grad_tet, grad_tet + config.alpha * grad_str)


def test_tet_and_str_runs_differ_and_tet_logs_no_str(straight, tmp_path):
    config, str_dir, _ = straight
    tet_config = TrainConfig(**{**config.asdict(), "method": "tet", "alpha": 0.0})
    train(tet_config, tmp_path, progress=False)
    rows = read_log(tmp_path)
    assert all(math.isnan(float(r["str_loss"])) for r in rows)
    assert all(float(r["str_loss"]) > 0 for r in read_log(str_dir))
    # same seed, same data order: only the STR term differs
    assert float(rows[0]["tet_loss"]) != float(read_log(str_dir)[0]["tet_loss"])
    a, b = weights(tmp_path), weights(str_dir)
    assert any(not torch.equal(a[k], b[k]) for k in a)
