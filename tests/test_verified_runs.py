"""A finished run's weights are verified before anything is computed from them: its checkpoint
against its checksum and final.json's weights_sha256 (issue #22), then its logits against them (#15).
Damage is made as it happens on disk: bits flipped inside a tensor of a real checkpoint.pt."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from runs import cli_error, copy_run, flip_bits_inside, signed, train_args

from aoi.__main__ import main
from aoi.analysis import analyse_run
from aoi.checkpoint import CheckpointError, state_sha256
from aoi.errors import UserError
from aoi.evaluate import load_logits
from aoi.files import UnreadableFile

torch.set_num_threads(1)  # the CI box has 2 shared cores

# ---- a finished run: lost weights, stale or broken logits


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 1-epoch run with its logits, trained and evaluated through the command line."""
    run_dir = tmp_path_factory.mktemp("finished")
    assert main(train_args(run_dir, epochs=1)) == 0
    assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
    return run_dir


def truncated(path):
    path.write_bytes(path.read_bytes()[:1000])


def flipped_weights(path):
    flip_bits_inside(path, torch.load(path, weights_only=True)["model"]["features.2.conv_bn.module.0.weight"])


def other_weights(path):  # an intact checkpoint of other weights (say, copied from another run)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"]["readout.weight"][0, 0] += 1.0
    torch.save(signed(checkpoint), path)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (truncated, "is not an aoi checkpoint ("),
        (flipped_weights, "is corrupt (its content does not match the checksum saved with it)"),
        (other_weights, "does not hold the final weights (their sha256 is not final.json's)"),
    ],
    ids=["truncated", "flipped-bits", "other-weights"],
)
def test_a_damaged_checkpoint_of_a_finished_run_is_refused_keeping_its_logits_and_the_advice_works(
    finished, tmp_path, capsys, damage, problem
):
    run_dir = copy_run(finished, tmp_path)
    checkpoint, final = run_dir / "checkpoint.pt", run_dir / "final.json"
    weights = json.loads(final.read_text())["weights_sha256"]
    logits = {split: (run_dir / f"logits_{split}.npz").read_bytes() for split in ("test", "train")}
    damage(checkpoint)
    advice = f": delete {checkpoint} and {final}, then train the run again (same config and run directory)"
    for command in (["evaluate", str(run_dir), "--no-progress"], train_args(run_dir, epochs=1)):
        error = cli_error(*command)
        assert error.startswith(f"aoi {command[0]}: {checkpoint} {problem}") and error.endswith(advice)
    with pytest.raises(CheckpointError, match="then train the run again"):
        analyse_run(run_dir, tmp_path / "results", 0.01, [0.01], "test", timing_samples=0, device="cpu")
    assert not (tmp_path / "results").exists()  # nothing computed from the damaged weights
    assert {split: (run_dir / f"logits_{split}.npz").read_bytes() for split in logits} == logits

    checkpoint.unlink()  # the advice
    final.unlink()
    assert main(train_args(run_dir, epochs=1)) == 0
    assert json.loads(final.read_text())["weights_sha256"] == weights  # the same run again, bit for bit
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
    assert {split: (run_dir / f"logits_{split}.npz").read_bytes() for split in logits} == logits  # kept
    assert capsys.readouterr().err == ""


def test_a_finished_run_checkpointed_before_checksums_is_verified_by_its_final_weights(finished, tmp_path, capsys):
    run_dir = copy_run(finished, tmp_path)
    path = run_dir / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["sha256"]
    torch.save(checkpoint, path)  # as an aoi before issue #22 wrote it
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""  # its weights are final.json's: the logits are kept
    flipped_weights(path)
    assert cli_error("evaluate", str(run_dir), "--no-progress").startswith(
        f"aoi evaluate: {path} does not hold the final weights"
    )


def test_evaluating_a_split_the_run_lacks_is_one_line(finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    assert cli_error("evaluate", str(run_dir), "--splits", "val", "--no-progress") == (
        "aoi evaluate: run digits/T4-tet-s0 has no split val: choose among ('test', 'train') "
        "(val only for runs trained with --validation > 0)"
    )
    assert not (run_dir / "logits_val.npz").exists()


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
    torch.save(signed(checkpoint), path)
    final = json.loads((run_dir / "final.json").read_text())
    (run_dir / "final.json").write_text(json.dumps({**final, "weights_sha256": state_sha256(checkpoint["model"])}))
    logits = (run_dir / "logits_test.npz").read_bytes()
    assert cli_error("evaluate", str(run_dir), "--no-progress") == (
        f"aoi evaluate: {path} holds NaN or infinite values (features.0.conv_bn.module.1.running_mean): "
        "the run diverged; train it with other settings (e.g. a lower lr) in a new run directory"
    )
    assert (run_dir / "logits_test.npz").read_bytes() == logits
