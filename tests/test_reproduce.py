"""aoi.reproduce: the grid, skipping finished runs, --only, failures; one real run end to end."""

import json

import pytest

from aoi import reproduce
from aoi.profiles import load_profile, run_params

TINY = """epsilon: 0.01
epsilons: [0.0, 0.01, 0.5]
seeds: [0, 1]
train: {device: cpu}
analysis: {stf_samples: 8, timing_samples: 8, timing_repeats: 1}
datasets:
  digits:
    model: digits_snn
    T: 2
    epochs: 1
    batch_size: 16
    lr: 0.1
    limit_train: 32
    limit_test: 16
    methods:
      - {method: tet}
      - {method: str, alpha: 0.5}
"""
NAMES = ["digits/T2-tet-s0", "digits/T2-tet-s1", "digits/T2-str-a0.5-s0", "digits/T2-str-a0.5-s1"]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path), tmp_path / "runs", tmp_path / "results"


def roots(runs, results):
    return ["--runs", str(runs), "--results", str(results)]


def mark_finished(profile_path, runs, results, name, **changes):
    """What a finished run leaves: config.json + final.json in runs/, metrics.json in results/."""
    profile = load_profile(profile_path)
    dataset, rest = name.split("/")
    _, method, *alpha, seed = rest.split("-")
    params = run_params(profile, dataset, method, float(alpha[0][1:]) if alpha else None, int(seed[1:]))
    params.update(changes)
    run, out = runs / "tiny" / name, results / "tiny" / "runs" / name
    run.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({"config": params}))
    (run / "final.json").write_text("{}")
    (out / "metrics.json").write_text(json.dumps({"params": params}))


def test_dry_run_lists_the_grid(tiny, capsys):
    profile, runs, results = tiny
    assert reproduce.main(["--profile", profile, "--dry-run", *roots(runs, results)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "profile tiny: 4 runs, 4 to run" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == NAMES
    assert all(line.split()[1] == "new" for line in lines[1:])
    assert not runs.exists()  # nothing ran


def test_plan_status_skips_finished_resumes_and_restarts_changed(tiny):
    profile_path, runs, results = tiny
    mark_finished(profile_path, runs, results, NAMES[0])
    mark_finished(profile_path, runs, results, NAMES[1], epochs=5)  # parameters changed since
    (runs / "tiny" / NAMES[2]).mkdir(parents=True)
    (runs / "tiny" / NAMES[2] / "config.json").write_text(  # interrupted: no final.json
        json.dumps({"config": run_params(load_profile(profile_path), "digits", "str", 0.5, 0)})
    )
    profile = load_profile(profile_path)
    statuses = {run.name: run.status for run in reproduce.plan(profile, runs, results)}
    assert statuses == {NAMES[0]: "finished", NAMES[1]: "changed", NAMES[2]: "resume", NAMES[3]: "new"}
    assert {run.status for run in reproduce.plan(profile, runs, results, force=True)} == {"forced"}


def test_only_filters_by_substring_or_glob(tiny):
    profile_path, runs, results = tiny
    profile = load_profile(profile_path)
    assert [r.name for r in reproduce.plan(profile, runs, results, only="str")] == NAMES[2:]
    assert [r.name for r in reproduce.plan(profile, runs, results, only="*-s1")] == [NAMES[1], NAMES[3]]


def test_only_matching_nothing_is_an_error(tiny, capsys):
    profile, runs, results = tiny
    assert reproduce.main(["--profile", profile, "--only", "cifar", *roots(runs, results)]) == 2
    assert "no run of profile 'tiny' matches --only 'cifar'" in capsys.readouterr().err


def test_unknown_profile_is_an_error(capsys):
    assert reproduce.main(["--profile", "nope", "--dry-run"]) == 2
    assert "known profiles are default, fashion, paper, smoke" in capsys.readouterr().err


def test_a_failed_run_is_reported_and_the_others_go_on(tiny, monkeypatch, capsys):
    profile, runs, results = tiny
    calls = []

    def fake_execute(notebook, output, parameters):
        calls.append((notebook.name, output, parameters))
        if notebook.name == "train.ipynb" and parameters["method"] == "str" and parameters["seed"] == 0:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text("{}")
            raise RuntimeError("cell 3 failed\nValueError: boom")
        if notebook.name == "evaluate.ipynb":
            name = (
                f"{parameters['dataset']}/T{parameters['T']}-{parameters['method']}"
                f"{'-a' + format(parameters['alpha'], 'g') if parameters['alpha'] else ''}-s{parameters['seed']}"
            )
            mark_finished(profile, runs, results, name)

    monkeypatch.setattr(reproduce, "execute_notebook", fake_execute)
    assert reproduce.main(["--profile", profile, *roots(runs, results)]) == 1
    out, err = capsys.readouterr()
    failed_record = runs / "tiny" / "digits" / "T2-str-a0.5-s0" / "train.ipynb"
    assert f"in {failed_record}" in err and "ValueError: boom" in err
    assert "FAILED" in out
    compute = [
        (nb, p["dataset"], p["method"], p["alpha"], p["seed"])
        for nb, _, p in calls
        if nb in ("train.ipynb", "evaluate.ipynb")
    ]
    # every run trains first; then the evaluations (timings) run one at a time, the failed run left out
    assert compute == [
        ("train.ipynb", "digits", "tet", None, 0),
        ("train.ipynb", "digits", "tet", None, 1),
        ("train.ipynb", "digits", "str", 0.5, 0),
        ("train.ipynb", "digits", "str", 0.5, 1),
        ("evaluate.ipynb", "digits", "tet", None, 0),
        ("evaluate.ipynb", "digits", "tet", None, 1),
        ("evaluate.ipynb", "digits", "str", 0.5, 1),
    ]
    assert calls[4][1] == runs / "tiny" / "digits" / "T2-tet-s0" / "evaluate.ipynb"  # the record of the run
    presentation = [(nb, output) for nb, output, _ in calls[len(compute) :]]
    assert presentation == [
        (f"{n}.ipynb", results / "tiny" / "notebooks" / f"{n}.ipynb") for n in ("figure", "tables", "stf")
    ]

    calls.clear()  # a rerun only does the failed run (and the presentation)
    assert reproduce.main(["--profile", profile, *roots(runs, results)]) == 1
    assert [(nb, p["seed"]) for nb, _, p in calls[:1]] == [("train.ipynb", 0)]
    assert "finished (skipped)" in capsys.readouterr().out


def test_the_default_profile_rebuilds_the_notebooks_in_place_only_on_the_repository_results(tmp_path):
    outputs = reproduce.presentation_outputs("default", reproduce.REPO_ROOT / "results")
    assert outputs["figure"] == reproduce.NOTEBOOK_DIR / "figure.ipynb"
    assert (
        reproduce.presentation_outputs("default", tmp_path)["tables"]
        == tmp_path / "default" / "notebooks" / "tables.ipynb"
    )
    assert (
        reproduce.presentation_outputs("smoke", reproduce.REPO_ROOT / "results")["stf"]
        == reproduce.REPO_ROOT / "results" / "smoke" / "notebooks" / "stf.ipynb"
    )


def test_one_real_run_end_to_end(tiny, capsys):
    """Papermill executes the real notebooks: records in runs/, metrics and figures in results/."""
    profile, runs, results = tiny
    assert reproduce.main(["--profile", profile, "--only", "tet-s0", *roots(runs, results)]) == 0
    run = runs / "tiny" / "digits" / "T2-tet-s0"
    assert {"train.ipynb", "evaluate.ipynb", "final.json", "logits_test.npz"} <= {p.name for p in run.iterdir()}
    metrics = json.loads((results / "tiny" / "runs" / "digits" / "T2-tet-s0" / "metrics.json").read_text())
    assert metrics["params"]["limit_test"] == 16 and metrics["test_samples"] == 16
    assert {"figure_accuracy.png", "figure_rules.pdf", "figure_stf.png", "table_summary.md"} <= {
        p.name for p in (results / "tiny").iterdir()
    }
    assert reproduce.main(["--profile", profile, "--only", "tet-s0", "--dry-run", *roots(runs, results)]) == 0
    assert "finished" in capsys.readouterr().out.splitlines()[-1]
