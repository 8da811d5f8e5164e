"""aoi.results: paths, provenance merge, the finished-run check, the per-run analysis, loading."""

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from aoi import results
from aoi.neurons import LIF
from aoi.train import TrainConfig

PARAMS = {
    "dataset": "digits",
    "model": "digits_snn",
    "T": 3,
    "method": "str",
    "alpha": 0.1,
    "seed": 1,
    "epochs": 1,
    "batch_size": 2,
    "lr": 0.1,
    "device": "cpu",
}


def test_roots_come_from_arguments_then_environment_then_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("AOI_RUNS", raising=False)
    monkeypatch.delenv("AOI_RESULTS", raising=False)
    assert results.runs_root() == results.REPO_ROOT / "runs"
    assert results.results_root() == results.REPO_ROOT / "results"
    monkeypatch.setenv("AOI_RUNS", str(tmp_path / "r"))
    monkeypatch.setenv("AOI_RESULTS", str(tmp_path / "s"))
    assert results.runs_root() == tmp_path / "r" and results.results_root() == tmp_path / "s"
    assert results.runs_root(tmp_path / "x") == tmp_path / "x"


def test_run_directories_are_named_from_the_parameters(tmp_path):
    name = results.run_name(PARAMS)
    assert name == "digits/T3-str-a0.1-s1"
    assert results.run_dir("smoke", name, tmp_path) == tmp_path / "smoke" / "digits" / "T3-str-a0.1-s1"
    assert results.run_results_dir("smoke", name, tmp_path) == tmp_path / "smoke" / "runs" / "digits" / "T3-str-a0.1-s1"
    assert results.run_name({**PARAMS, "method": "tet", "alpha": 0.0}) == "digits/T3-tet-s1"


def test_method_labels():
    assert results.method_label("tet") == "TET"
    assert results.method_label("str", 0.5) == "STR(0.5)" and results.method_label("str", 0.05) == "STR(0.05)"


def test_params_match_compares_the_requested_values_only():
    stored = {**PARAMS, "num_workers": 0}
    assert results.params_match(stored, PARAMS)
    assert not results.params_match({**stored, "epochs": 2}, PARAMS)
    assert not results.params_match(None, PARAMS)
    assert results.params_match({"alpha": 0.0}, {"alpha": 0})  # JSON numbers compare by value


def finished_run(tmp_path, params=PARAMS, metrics=True):
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps({"config": params, "provenance": {}}))
    (run / "final.json").write_text(json.dumps({"config": params}))
    if metrics:
        out.mkdir(exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"params": params}))
    return run, out


def test_a_run_is_finished_only_with_final_json_and_metrics_of_the_same_parameters(tmp_path):
    run, out = finished_run(tmp_path)
    assert results.is_finished(run, out, PARAMS)
    assert not results.is_finished(run, out, {**PARAMS, "lr": 0.2})  # parameters changed
    (out / "metrics.json").unlink()
    assert not results.is_finished(run, out, PARAMS)  # not analysed
    run, out = finished_run(tmp_path)
    (run / "final.json").unlink()
    assert not results.is_finished(run, out, PARAMS)  # training interrupted


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


@pytest.fixture
def analysed(tmp_path, monkeypatch):
    config = TrainConfig(**{**PARAMS, "batch_size": 2})
    run, out = finished_run(tmp_path, config.asdict(), metrics=False)
    (run / "final.json").write_text(json.dumps({"config": config.asdict(), "wall_seconds": 12.5}))
    dataset = [(torch.ones(3, 1, 2, 2), int(y)) for y in TARGETS]
    monkeypatch.setattr(results, "load_logits", lambda run_dir, split="test": (OUTPUTS, TARGETS))
    monkeypatch.setattr(results, "load_model", lambda run_dir, device: (LinearOnFrames().to(device).eval(), config))
    monkeypatch.setattr(results, "test_inputs", lambda run_dir: dataset)
    metrics = results.analyse_run(
        run, out, 0.01, [0.0, 0.01, 0.5], "smoke", stf_samples=3, timing_samples=3, timing_repeats=1, device="cpu"
    )
    return metrics, out


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
    assert metrics["timing"]["samples"] == 3 and metrics["timing"]["wallclock_speedup"] > 0
    curve = {row["epsilon"]: row for row in metrics["curve"]}
    assert curve[0.0]["mean_exit_step"] == 3.0 and curve[0.01]["mean_exit_step"] == pytest.approx(2.0)
    assert {row["rule"] for row in metrics["rules"]} == {"confidence", "topk", "fixed", "oct"}


def test_analyse_run_merges_provenance_and_writes_small_files(analysed):
    metrics, out = analysed
    assert metrics["params"]["alpha"] == 0.1 and metrics["profile"] == "smoke"
    assert metrics["provenance"]["final"]["wall_seconds"] == 12.5
    assert set(metrics["provenance"]["analysis"]) >= {"git_commit", "versions", "machine", "analysed_at"}
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
    cs, stf = results.stf_records(model, inputs, beta=0.3)
    assert [row["t"] for row in cs] == [1, 2] and {row["layer"] for row in cs} == {1}
    assert [row["cosine_similarity"] for row in cs] == pytest.approx(expected, abs=1e-4)
    assert stf == [{"layer": 1, "stf": pytest.approx(2 / sum(expected), abs=1e-4)}]
    assert model[0].spikes is None  # recording switched off again


def test_loading_gives_tidy_frames(analysed, tmp_path):
    metrics, _ = analysed
    root = tmp_path / "results"
    for seed in (0, 1):
        run = {**metrics, "params": {**metrics["params"], "seed": seed}, "run_name": f"digits/T3-str-a0.1-s{seed}"}
        path = results.run_results_dir("smoke", run["run_name"], root) / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(run, default=str))
    runs = results.load_runs("smoke", root)
    assert [run["params"]["seed"] for run in runs] == [0, 1]
    steps = results.records_frame(runs, "accuracy_per_step")
    assert steps.columns.tolist() == ["dataset", "T", "method", "alpha", "label", "seed", "t", "accuracy"]
    assert len(steps) == 6 and set(steps["label"]) == {"STR(0.1)"}
    summary = results.summary_frame(runs)
    assert summary["mean_exit_step"].tolist() == pytest.approx([2.0, 2.0])
    assert summary["energy_pj_cutoff"].tolist() == pytest.approx([21.6, 21.6])
    with pytest.raises(FileNotFoundError, match="reproduce.sh --profile nothing"):
        results.load_runs("nothing", root)


def test_the_papers_numbers_are_shipped():
    reported, per_step = results.load_paper()
    assert len(reported) == 24 and set(reported["dataset"]) == {
        "cifar10",
        "cifar100",
        "imagenet",
        "cifar10dvs",
        "ncaltech101",
        "dvsgesture",
    }
    row = reported[
        (reported["dataset"] == "cifar10dvs") & (reported["method"] == "str") & (reported["cutoff"] == "yes")
    ].iloc[0]
    assert (row.accuracy_mean, row.accuracy_std) == (82.08, 0.48)
    assert len(per_step) == 2 * (3 * 4 + 2 * 10 + 16)


def test_profile_datasets_frame_lists_the_paper_references():
    from aoi.profiles import load_profile

    frame = results.profile_datasets_frame(load_profile("default"))
    assert frame.values.tolist() == [
        ["digits", "cifar10"],
        ["ndigits", "cifar10dvs"],
        ["ndigits", "ncaltech101"],
        ["ndigits", "dvsgesture"],
    ]
