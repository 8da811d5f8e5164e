"""aoi.analysis: the per-run analysis on hand-made logits, provenance merge, the STF records."""

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from aoi import analysis
from aoi.config import TrainConfig
from aoi.cutoff import confidence_cutoff
from aoi.files import UnreadableFile, verified_metrics
from aoi.neurons import LIF

# the run analysed: digits, T=3, STR(0.1), seed 1 (the run name is checked below)
PARAMS = dict(dataset="digits", model="digits_snn", T=3, method="str", alpha=0.1, seed=1, epochs=1, batch_size=2)
PARAMS.update(lr=0.1, device="cpu")


class LinearOnFrames(nn.Module):
    """[T, N, C, H, W] -> [T, N, 3] through one Linear(C*H*W -> 3): 12 SOPs per step for 4 input ones."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x):
        return self.linear(x.flatten(2))


# Per-step logits [T=3, N=3, K=3] (hand-made): sample 0 is confident and right at step 1; sample 1
# is wrong at step 1 and confident and right from step 2; sample 2 is never confident, wrong at T.
OUTPUTS = torch.tensor(
    [
        [[10.0, 0, 0], [1, 0, 0], [0, 1, 0]],
        [[10.0, 0, 0], [0, 10, 0], [0, 0, 0]],
        [[10.0, 0, 0], [0, 0, 0], [0, 0, 0.5]],
    ]
)
TARGETS = torch.tensor([0, 1, 2])


def LinearOnFrames_model(inputs):
    """The outputs of the fixture's model (seeded the same way) on inputs [T, N, 1, 2, 2]."""
    torch.manual_seed(0)
    with torch.no_grad():
        return LinearOnFrames().eval()(inputs)


def analyse(tmp_path, monkeypatch, timing_samples=3, **changes):
    """analyse_run on the hand-made logits (the validation split: the first two samples of them)."""
    config = TrainConfig(**{**PARAMS, "batch_size": 2, **changes})
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": config.asdict(), "provenance": {}}))
    (run / "final.json").write_text(json.dumps({"config": config.asdict(), "wall_seconds": 12.5}))
    dataset = [(torch.ones(3, 1, 2, 2), int(y)) for y in TARGETS]
    logits = {"test": (OUTPUTS, TARGETS), "train": (OUTPUTS, TARGETS), "val": (OUTPUTS[:, :2], TARGETS[:2])}
    monkeypatch.setattr(analysis, "load_logits", lambda run_dir, split="test": logits[split])
    torch.manual_seed(0)
    model = LinearOnFrames().eval()
    monkeypatch.setattr(analysis, "load_model", lambda run_dir, device: (model.to(device), config))
    monkeypatch.setattr(analysis, "split_dataset", lambda config, split: dataset)
    metrics = analysis.analyse_run(
        run,
        out,
        0.01,
        [0.0, 0.01, 0.5],
        "smoke",
        stf_samples=3,
        timing_samples=timing_samples,
        timing_repeats=1,
        device="cpu",
    )
    return metrics, out


@pytest.fixture
def analysed(tmp_path, monkeypatch):
    return analyse(tmp_path, monkeypatch)


def test_held_out_runs_are_scored_on_their_validation_logits(tmp_path, monkeypatch):
    metrics, _ = analyse(tmp_path, monkeypatch, timing_samples=0, validation=0.2)
    # samples 0 and 1: right from step 1 and from step 2, confident at 1 and 2 (epsilon 0.01)
    validation = metrics["validation"]
    assert validation["samples"] == 2 and validation["accuracy"] == 1.0
    assert validation["cutoff"]["mean_exit_step"] == pytest.approx(1.5) and validation["cutoff"]["accuracy"] == 1.0
    assert metrics["timing"] is None  # 0 timing samples: not measured
    assert metrics["accuracy"] == pytest.approx(2 / 3)  # the test numbers are still the test set's


def test_analyse_run_computes_the_hand_checked_numbers(analysed):
    metrics, _ = analysed
    assert metrics["run_name"] == "digits/T3-str-a0.1-s1" and metrics["T"] == 3
    assert [r["accuracy"] for r in metrics["accuracy_per_step"]] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    cutoff = metrics["cutoff"]
    assert cutoff["exit_histogram"] == [1, 1, 1]  # exits at 1, 2, 3
    assert cutoff["mean_exit_step"] == pytest.approx(2.0) and cutoff["speedup"] == pytest.approx(1.5)
    assert cutoff["accuracy"] == pytest.approx(2 / 3) and cutoff["accuracy_drop"] == pytest.approx(0.0)
    assert metrics["oct"] == {"mean": pytest.approx(2.0), "histogram": [1, 1, 1]}
    ops = metrics["operations"]
    assert ops["sops_full"] == pytest.approx(36) and ops["sops_cutoff"] == pytest.approx(24)  # 12 per executed step
    assert ops["macs_full"] == 0 and ops["energy_pj_full"] == pytest.approx(0.9 * 36)
    assert ops["energy_pj_cutoff"] == pytest.approx(0.9 * 24)
    # the timing streams the real model: its exits are those of the post-hoc rule on its own outputs
    inputs = torch.ones(3, 3, 1, 2, 2)
    model_exits = confidence_cutoff(LinearOnFrames_model(inputs), 0.01).exit_steps.double().mean().item()
    assert metrics["timing"]["samples"] == 3 and metrics["timing"]["mean_exit_step"] == pytest.approx(model_exits)
    curve = {row["epsilon"]: row for row in metrics["curve"]}
    assert curve[0.0]["mean_exit_step"] == 3.0 and curve[0.01]["mean_exit_step"] == pytest.approx(2.0)
    assert curve[0.0]["sops"] == pytest.approx(36) and curve[0.01]["energy_pj"] == pytest.approx(0.9 * 24)
    assert "exit_steps" not in metrics and metrics["validation"] is None
    assert {row["rule"] for row in metrics["rules"]} == {"confidence", "topk", "fixed", "oct"}


def test_analyse_run_merges_provenance_and_writes_small_files(analysed):
    metrics, out = analysed
    assert metrics["params"]["alpha"] == 0.1 and metrics["profile"] == "smoke"
    assert metrics["provenance"]["final"]["wall_seconds"] == 12.5
    assert set(metrics["provenance"]["analysis"]) >= {"git_commit", "versions", "machine", "at"}
    assert sorted(p.name for p in out.iterdir()) == [
        "cutoff_curve.csv",
        "metrics.json",
        "per_step.csv",
        "rules.csv",
        "stf.csv",
    ]
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["cutoff"]["exit_histogram"] == [1, 1, 1]
    assert next(r for r in stored["rules"] if r["rule"] == "oct")["parameter"] is None  # NaN -> null
    assert pd.read_csv(out / "per_step.csv")["t"].tolist() == [1, 2, 3]


def test_stf_records_match_a_hand_computed_layer():
    # One LIF, constant input (1.5, 0.2) over T=2: feature a spikes every step (r = 1, 1), feature b
    # integrates 0.2 then 0.1 + 0.2 (r = 0.2, 0.3). r_d = mean of both steps (int(0.3 * 2) = 0) = (1, 0.25).
    model = nn.Sequential(LIF())
    inputs = torch.tensor([1.5, 0.2]).expand(2, 1, 2).clone()

    def cos(u, v):
        return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))

    expected = [cos((1, 0.2), (1, 0.25)), cos((1, 0.3), (1, 0.25))]
    cs, stf = analysis.stf_records(model, inputs, beta=0.3)
    assert [row["t"] for row in cs] == [1, 2] and {row["layer"] for row in cs} == {1}
    assert [row["cosine_similarity"] for row in cs] == pytest.approx(expected, abs=1e-4)
    assert stf == [{"layer": 1, "stf": pytest.approx(2 / sum(expected), abs=1e-4)}]
    assert model[0].spikes is None  # recording switched off again


def test_a_hand_edited_number_in_metrics_json_is_caught_where_it_is_read(analysed):
    metrics, out = analysed
    path = out / "metrics.json"
    assert verified_metrics(path) == json.loads(path.read_text()) and "metrics_sha256" in metrics["provenance"]
    text = path.read_text()
    edited = text.replace('"mean_exit_step": 2.0', '"mean_exit_step": 1.5', 1)  # a better cutoff, typed in
    assert edited != text
    path.write_text(edited)
    rerun = "./reproduce.sh --profile smoke --only 'digits/T3-str-a0.1-s1' --force"
    with pytest.raises(UnreadableFile) as error:
        verified_metrics(path)
    assert str(error.value) == (
        f"{path} was changed after aoi wrote it (its content does not match the digest in its provenance), so its "
        f"provenance cannot vouch for its numbers: restore the file aoi wrote (git checkout -- {path}) or compute "
        f"the run again ({rerun})"
    )
    unsealed = json.loads(text)
    del unsealed["provenance"]["metrics_sha256"]  # as every metrics.json written before issue #22
    path.write_text(json.dumps(unsealed))
    with pytest.raises(UnreadableFile, match="records no digest of its content"):
        verified_metrics(path)
    assert verified_metrics(out / "none.json") is None
