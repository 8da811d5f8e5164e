"""aoi.layout: roots, run names, the finished-run check; planning imports no torch."""

import json
import subprocess
import sys

from aoi import layout
from aoi.files import sealed_metrics

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
    assert layout.runs_root() == layout.REPO_ROOT / "runs"
    assert layout.results_root() == layout.REPO_ROOT / "results"
    monkeypatch.setenv("AOI_RUNS", str(tmp_path / "r"))
    monkeypatch.setenv("AOI_RESULTS", str(tmp_path / "s"))
    assert layout.runs_root() == tmp_path / "r" and layout.results_root() == tmp_path / "s"
    assert layout.runs_root(tmp_path / "x") == tmp_path / "x"


def test_run_directories_are_named_from_the_parameters(tmp_path):
    name = layout.run_name(PARAMS)
    assert name == "digits/T3-str-a0.1-s1"
    assert layout.run_dir("smoke", name, tmp_path) == tmp_path / "smoke" / "digits" / "T3-str-a0.1-s1"
    assert layout.run_results_dir("smoke", name, tmp_path) == tmp_path / "smoke" / "runs" / "digits" / "T3-str-a0.1-s1"
    assert layout.run_name({**PARAMS, "method": "tet", "alpha": 0.0}) == "digits/T3-tet-s1"
    assert layout.run_name({**PARAMS, "width": 2.0, "detach_reset": True}) == "digits/T3-str-a0.1-w2-detached-s1"
    assert layout.run_name({**PARAMS, "folds": 5, "fold": 2}) == "digits/T3-str-a0.1-f2of5-s1"
    assert layout.run_name({**PARAMS, "folds": 0, "fold": 0}) == "digits/T3-str-a0.1-s1"


def test_params_match_compares_the_requested_values_only():
    stored = {**PARAMS, "num_workers": 0}
    assert layout.params_match(stored, PARAMS)
    assert not layout.params_match({**stored, "epochs": 2}, PARAMS)
    assert not layout.params_match(None, PARAMS)
    assert layout.params_match({"alpha": 0.0}, {"alpha": 0})  # JSON numbers compare by value


def finished_run(tmp_path, params=PARAMS, metrics=True):
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps({"config": params, "provenance": {}}))
    (run / "final.json").write_text(json.dumps({"config": params}))
    if metrics:
        out.mkdir(exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(sealed_metrics({"params": params, "provenance": {}})))
    return run, out


def test_a_run_is_finished_only_with_final_json_and_metrics_of_the_same_parameters(tmp_path):
    run, out = finished_run(tmp_path)
    assert layout.is_finished(run, out, PARAMS)
    assert not layout.is_finished(run, out, {**PARAMS, "lr": 0.2})  # parameters changed
    (out / "metrics.json").unlink()
    assert not layout.is_finished(run, out, PARAMS)  # not analysed
    run, out = finished_run(tmp_path)
    (run / "final.json").unlink()
    assert not layout.is_finished(run, out, PARAMS)  # training interrupted


def test_planning_a_study_imports_no_torch():
    code = "import sys; from aoi import reproduce; print(sorted({'torch', 'numba', 'snntorch'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_run_folders_are_told_from_other_folders(tmp_path):
    names = ["digits/T4-tet-s0", "ndigits/T10-str-a1e-05-w2-detached-f2of5-s12", "nmnist/T10-tet-f0of5-s1"]
    for name in [*names, "slurm/12_0", "slurm/13", "digits/notes"]:
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "digits" / "T4-tet-s1").write_text("a file, not a run")
    assert layout.run_names_under(tmp_path) == sorted(names)
    assert layout.run_names_under(tmp_path / "nothing") == []
