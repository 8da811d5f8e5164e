"""aoi.reproduce: the grid, skipping finished runs, --only, failures, committed notebooks only,
nothing deleted without saying why, unreadable run files named; one real run end to end."""

import json
import subprocess

import nbformat
import pytest

from aoi import notebook as aoi_notebook
from aoi import reproduce, stages
from aoi.errors import UserError
from aoi.files import sealed_metrics
from aoi.layout import REPO_ROOT, run_name
from aoi.profiles import ProfileError, load_profile, run_params
from aoi.provenance import code_fingerprint

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


def record(code=None, threads=1) -> dict:
    """A provenance record of ``code`` (None: the current code's fingerprint) with ``threads`` torch threads."""
    return {"code_fingerprint": code or code_fingerprint(), "machine": {"torch_threads": threads}}


def mark_finished(profile_path, runs, results, name, provenance=None, **changes):
    """What a finished run leaves: config.json + final.json in runs/, metrics.json in results/
    (``provenance``: of training and analysis, default `record`)."""
    profile = load_profile(profile_path)
    dataset, rest = name.split("/")
    _, method, *alpha, seed = rest.split("-")
    params = run_params(profile, dataset, method, float(alpha[0][1:]) if alpha else None, int(seed[1:]))
    params.update(changes)
    run, out = runs / "tiny" / name, results / "tiny" / "runs" / name
    run.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    provenance = record() if provenance is None else provenance
    (run / "config.json").write_text(json.dumps({"config": params, "provenance": provenance}))
    (run / "final.json").write_text("{}")
    (out / "metrics.json").write_text(
        json.dumps(sealed_metrics({"params": params, "provenance": {"analysis": provenance}}))
    )
    (run / "stages.json").write_text(json.dumps({"completed": {"01_train": "then", "02_analyse": "then"}}))


def test_dry_run_lists_the_grid(tiny, capsys):
    profile, runs, results = tiny
    assert reproduce.main(["--profile", profile, "--dry-run", *roots(runs, results)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "profile tiny: 4 runs, 4 to run" in lines[0]
    assert [line.split()[0] for line in lines[1:-1]] == NAMES
    assert all(line.split()[1] == "new" for line in lines[1:-1])
    assert lines[-1] == "[aoi] dry run: nothing was run, submitted or deleted"
    assert not runs.exists()  # nothing ran


def test_plan_status_skips_finished_resumes_and_restarts_changed(tiny):
    profile_path, runs, results = tiny
    mark_finished(profile_path, runs, results, NAMES[0])
    mark_finished(profile_path, runs, results, NAMES[1], epochs=5)  # parameters changed since
    (runs / "tiny" / NAMES[2]).mkdir(parents=True)
    (runs / "tiny" / NAMES[2] / "config.json").write_text(  # interrupted: no final.json
        json.dumps({"config": run_params(load_profile(profile_path), "digits", "str", 0.5, 0), "provenance": record()})
    )
    profile = load_profile(profile_path)
    statuses = {run.name: run.status for run in reproduce.plan(profile, runs, results)}
    assert statuses == {NAMES[0]: "finished", NAMES[1]: "changed", NAMES[2]: "resume", NAMES[3]: "new"}
    assert {run.status for run in reproduce.plan(profile, runs, results, force=True)} == {"forced"}


def test_runs_made_by_other_code_or_thread_count_are_stale_and_say_why(tiny):
    profile_path, runs, results = tiny
    profile, current = load_profile(profile_path), code_fingerprint()
    mark_finished(profile_path, runs, results, NAMES[0], record("0123456789ab", threads=2))
    mark_finished(profile_path, runs, results, NAMES[1], {})  # trained before fingerprints were recorded
    (runs / "tiny" / NAMES[2]).mkdir(parents=True)
    (runs / "tiny" / NAMES[2] / "config.json").write_text(  # interrupted, then the code changed
        json.dumps({"config": run_params(profile, "digits", "str", 0.5, 0), "provenance": record("0123456789ab")})
    )
    expected = {
        NAMES[0]: f"code 0123456789ab -> {current}; threads 2 -> 1",
        NAMES[1]: f"code none -> {current}; threads none -> 1",
        NAMES[2]: f"code 0123456789ab -> {current}",
        NAMES[3]: "",
    }
    planned = reproduce.plan(profile, runs, results)
    assert {run.name: (run.status, run.note) for run in planned} == {
        name: ("stale" if why else "new", why) for name, why in expected.items()
    }
    kept = {run.name: run.status for run in reproduce.plan(profile, runs, results, keep_stale=True)}
    assert kept == {NAMES[0]: "finished", NAMES[1]: "finished", NAMES[2]: "resume", NAMES[3]: "new"}
    mark_finished(profile_path, runs, results, NAMES[3])
    analysed_by_other_code = {"train": record(), "analysis": record("0123456789ab")}
    metrics = results / "tiny" / "runs" / NAMES[3] / "metrics.json"
    metrics.write_text(
        json.dumps(sealed_metrics({**json.loads(metrics.read_text()), "provenance": analysed_by_other_code}))
    )
    (last,) = reproduce.plan(profile, runs, results, only=NAMES[3])
    assert (last.status, last.note) == ("stale", f"code {current}, 0123456789ab -> {current}")


def test_a_stale_run_is_listed_with_its_reason_removed_after_saying_so_and_rerun(tiny, monkeypatch, capsys):
    profile, runs, results = tiny
    mark_finished(profile, runs, results, NAMES[0], record(threads=2))
    why = "threads 2 -> 1"
    assert reproduce.main(["--profile", profile, "--only", "*tet-s0", "--dry-run", *roots(runs, results)]) == 0
    listed = capsys.readouterr().out.splitlines()[1].split(maxsplit=1)
    assert listed == [NAMES[0], f"stale: {why}; its folder will be deleted to train it again"]
    args = ["--profile", profile, "--only", "*tet-s0", "--keep-stale", *roots(runs, results)]
    monkeypatch.setattr(reproduce, "present", lambda *args: None)
    monkeypatch.setattr(stages, "code_changes", lambda notebook: None)
    assert reproduce.main(args) == 0
    assert f"finished (skipped), stale (kept): {why}" in capsys.readouterr().out
    run = runs / "tiny" / NAMES[0]
    seen = []

    def fake_execute(notebook, output, parameters):
        seen.append((notebook.stem, (run / "final.json").exists()))
        if notebook.stem == "02_analyse":
            mark_finished(profile, runs, results, NAMES[0])

    monkeypatch.setattr(stages, "execute_notebook", fake_execute)
    assert reproduce.main(args[:4] + args[5:]) == 0  # without --keep-stale
    out = capsys.readouterr().out
    assert f"  deleting {run} to train it again (stale: {why})" in out.splitlines()
    assert out.index("deleting") < out.index("done in")
    assert seen == [("01_train", False), ("02_analyse", False)]  # trained from a clean folder
    assert reproduce.plan(load_profile(profile), runs, results, only="*tet-s0")[0].status == "finished"


def test_only_selects_a_dataset_exactly_or_a_glob_on_whole_run_names(tmp_path):
    smoke = load_profile("smoke")

    def selected(only):
        return [r.name for r in reproduce.plan(smoke, tmp_path, tmp_path, only=only)]

    assert selected("digits") == ["digits/T4-tet-s0", "digits/T4-str-a0.1-s0"]  # not ndigits
    assert selected("ndigits/*-str-*") == ["ndigits/T10-str-a0.5-s0"]
    assert selected("*-tet-s0") == ["digits/T4-tet-s0", "ndigits/T10-tet-s0"]
    assert selected("digits/T4-tet-s0") == ["digits/T4-tet-s0"]
    assert selected("str") == selected("igits") == []  # no substrings


def test_only_matching_nothing_is_an_error(tiny, capsys):
    profile, runs, results = tiny
    assert reproduce.main(["--profile", profile, "--only", "str", *roots(runs, results)]) == 2
    assert (
        "no run of profile 'tiny' matches --only 'str': give a dataset (digits) or a glob on whole run names "
        "such as 'digits/*-s0'" in capsys.readouterr().err
    )


def test_unknown_profile_is_an_error(capsys):
    assert reproduce.main(["--profile", "nope", "--dry-run"]) == 2
    assert "known profiles are capacity, default, fashion, nmnist, paper, smoke, sweep" in capsys.readouterr().err


def nothing_may_run(monkeypatch):
    monkeypatch.setattr(stages, "code_changes", lambda notebook: None)
    monkeypatch.setattr(stages, "execute_notebook", lambda *args: pytest.fail("a notebook ran"))


def test_an_unreadable_run_file_is_named_in_the_dry_run_and_stops_a_real_run(tiny, monkeypatch, capsys):
    profile, runs, results = tiny
    mark_finished(profile, runs, results, NAMES[0])
    mark_finished(profile, runs, results, NAMES[1])
    metrics = results / "tiny" / "runs" / NAMES[0] / "metrics.json"
    config = runs / "tiny" / NAMES[1] / "config.json"
    metrics.write_text('{"params": ')  # cut short
    config.write_text("")
    assert reproduce.main(["--profile", profile, "--dry-run", *roots(runs, results)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == [NAMES[0], "unreadable:"] and f"{metrics} is unreadable (" in lines[1]
    assert lines[2].split()[:2] == [NAMES[1], "unreadable:"] and lines[2].endswith("delete it and run again")
    assert [line.split()[1] for line in lines[3:-1]] == ["new", "new"]

    nothing_may_run(monkeypatch)
    assert reproduce.main(["--profile", profile, *roots(runs, results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nothing was run:") and f"\n  {metrics} is unreadable" in err and str(config) in err
    assert metrics.read_text() == '{"params": ' and config.read_text() == ""  # kept for the user to look at


def test_a_changed_run_says_what_changed_before_its_folder_is_deleted(tiny, monkeypatch, capsys):
    profile, runs, results = tiny
    mark_finished(profile, runs, results, NAMES[1], epochs=5, lr=0.2)
    folder = runs / "tiny" / NAMES[1]
    why = "(parameters changed since it trained: epochs 5 -> 1, lr 0.2 -> 0.1)"
    assert reproduce.main(["--profile", profile, "--dry-run", *roots(runs, results)]) == 0
    assert f"{NAMES[1]:<40} changed: its folder will be deleted to train it again {why}" in capsys.readouterr().out

    def train(notebook, output, parameters):
        assert not folder.exists(), "deleted before training"
        raise RuntimeError("stop here")

    monkeypatch.setattr(stages, "execute_notebook", train)
    monkeypatch.setattr(stages, "code_changes", lambda notebook: None)
    assert reproduce.main(["--profile", profile, "--only", NAMES[1], *roots(runs, results)]) == 1
    assert f"  deleting {folder} to train it again {why}\n" in capsys.readouterr().out


def test_values_train_config_refuses_stop_the_study_before_a_folder_is_deleted(tiny, monkeypatch, capsys):
    profile, runs, results = tiny
    mark_finished(profile, runs, results, NAMES[0])
    with open(profile, "r+") as file:
        text = file.read().replace("epochs: 1", "epochs: 0")
        file.seek(0)
        file.write(text)
    nothing_may_run(monkeypatch)
    assert reproduce.main(["--profile", profile, *roots(runs, results)]) == 2
    err = capsys.readouterr().err
    assert f"error: nothing was run:\n  {NAMES[0]}: invalid TrainConfig: epochs must be an integer >= 1, got 0" in err
    assert err.count("epochs must be") == 1  # one line per problem, not per run
    assert (runs / "tiny" / NAMES[0] / "final.json").is_file()  # the "changed" run is still there


def test_a_copy_of_a_built_in_profile_is_refused_and_deletes_nothing(tmp_path, monkeypatch, capsys):
    copy = tmp_path / "smoke.yaml"
    copy.write_text((REPO_ROOT / "aoi" / "profiles" / "smoke.yaml").read_text().replace("epochs: 1", "epochs: 2"))
    kept = tmp_path / "runs" / "smoke" / "digits" / "T4-tet-s0" / "final.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    nothing_may_run(monkeypatch)
    assert reproduce.main(["--profile", str(copy), *roots(tmp_path / "runs", tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: profile {copy}: name 'smoke' is the built-in profile's" in err
    assert "add `name: <another name>` to it" in err and kept.is_file()
    with pytest.raises(ProfileError):
        reproduce.main(["--profile", str(copy), "--debug", "--dry-run"])  # the traceback, for a bug report


def test_a_failed_run_is_reported_and_the_others_go_on(tiny, monkeypatch, capsys):
    profile, runs, results = tiny
    calls = []

    def fake_execute(notebook, output, parameters):
        calls.append((notebook.stem, output, parameters))
        config = parameters.get("config", {})
        if notebook.stem == "01_train" and config["method"] == "str" and config["seed"] == 0:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text("{}")
            raise RuntimeError("cell 3 failed\nValueError: boom")
        if notebook.stem == "02_analyse":
            mark_finished(profile, runs, results, run_name(config))

    monkeypatch.setattr(stages, "execute_notebook", fake_execute)
    monkeypatch.setattr(stages, "code_changes", lambda notebook: None)
    assert reproduce.main(["--profile", profile, *roots(runs, results)]) == 1
    out, err = capsys.readouterr()
    failed_record = runs / "tiny" / "digits" / "T2-str-a0.5-s0" / "01_train.ipynb"
    assert f"in {failed_record}" in err and "ValueError: boom" in err
    assert "FAILED" in out
    compute = [(stem, run_name(p["config"])) for stem, _, p in calls if stem in ("01_train", "02_analyse")]
    # every run trains first; then the analyses (timings) run one at a time, the failed run left out
    assert compute == [("01_train", name) for name in NAMES] + [("02_analyse", NAMES[i]) for i in (0, 1, 3)]
    train, analyse = calls[0][2], calls[4][2]
    assert train["config"]["limit_train"] == 32 and train["threads"] == 1 and train["profile"] == profile
    assert analyse["results_dir"] == str(results / "tiny" / "runs" / "digits" / "T2-tet-s0")
    assert analyse["analysis"] == {**analyse["analysis"], "epsilon": 0.01, "profile": "tiny", "stf_samples": 8}
    assert calls[4][1] == runs / "tiny" / "digits" / "T2-tet-s0" / "02_analyse.ipynb"  # the record of the run
    presentation = calls[len(compute) :]
    stems = ["03_figure", "04_tables", "05_stf", "06_explorer"]
    assert [(stem, output) for stem, output, _ in presentation] == [
        (stem, results / "tiny" / "notebooks" / f"{stem}.ipynb") for stem in stems
    ]
    assert presentation[0][2] == {"profile": profile, "results_dir": str(results / "tiny")}

    calls.clear()  # a rerun only does the failed run (and the presentation)
    assert reproduce.main(["--profile", profile, *roots(runs, results)]) == 1
    assert [(stem, p["config"]["seed"]) for stem, _, p in calls[:1]] == [("01_train", 0)]
    assert "finished (skipped)" in capsys.readouterr().out


def test_the_presentation_is_rebuilt_in_place_only_for_each_notebooks_own_profile_and_results(tmp_path):
    repository = reproduce.REPO_ROOT / "results"
    outputs = reproduce.presentation_outputs("default", repository, ["03_figure", "07_sweep"])
    assert outputs == {
        "03_figure": reproduce.NOTEBOOK_DIR / "03_figure.ipynb",
        "07_sweep": repository / "default" / "notebooks" / "07_sweep.ipynb",
    }
    sweep = reproduce.presentation_outputs("sweep", repository, ["07_sweep"])
    assert sweep["07_sweep"].parent == reproduce.NOTEBOOK_DIR
    elsewhere = reproduce.presentation_outputs("default", tmp_path, ["04_tables"])
    assert elsewhere["04_tables"] == tmp_path / "default" / "notebooks" / "04_tables.ipynb"


def test_a_profile_lists_its_presentation_notebooks():
    assert reproduce.presentation_notebooks({"name": "x"}) == ["03_figure", "04_tables", "05_stf", "06_explorer"]
    sweep = {"name": "x", "presentation": ["tables", "sweep"]}
    assert reproduce.presentation_notebooks(sweep) == ["04_tables", "07_sweep"]
    with pytest.raises(UserError, match=r"profile 'x': unknown presentation \['plot'\]"):
        reproduce.presentation_notebooks({"name": "x", "presentation": ["plot"]})


def git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_an_edited_notebook_is_named_and_only_code_counts(tmp_path):
    git(tmp_path, "init", "-q")
    path = tmp_path / "nb.ipynb"
    cells = [nbformat.v4.new_markdown_cell("# a"), nbformat.v4.new_code_cell("x = 1")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(notebook, path)
    assert "nb.ipynb is not committed: commit it (git commit nb.ipynb)" in stages.code_changes(path, tmp_path)
    git(tmp_path, "add", "nb.ipynb")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "nb")
    notebook.cells[0].source = "# b"  # prose and outputs do not change what runs
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="1")]
    nbformat.write(notebook, path)
    assert stages.code_changes(path, tmp_path) is None
    notebook.cells.append(nbformat.v4.new_code_cell("dataset = 'other'"))
    nbformat.write(notebook, path)
    message = stages.code_changes(path, tmp_path)
    assert message.startswith("nb.ipynb differs from its committed version in code cell 2")
    assert "git checkout -- nb.ipynb" in message


def test_nothing_runs_when_a_notebook_was_edited(tiny, monkeypatch, capsys):
    profile, runs, results = tiny
    monkeypatch.setattr(stages, "code_changes", lambda nb: "x.ipynb differs" if nb.stem == "01_train" else None)
    monkeypatch.setattr(stages, "execute_notebook", lambda *args: pytest.fail("a notebook ran"))
    assert reproduce.main(["--profile", profile, *roots(runs, results)]) == 2
    assert "error: nothing was run:\n  x.ipynb differs" in capsys.readouterr().err


def test_a_parameter_the_notebook_does_not_declare_is_refused(tmp_path):
    notebook = stages.NOTEBOOK_DIR / "02_analyse.ipynb"
    with pytest.raises(ValueError, match="02_analyse.ipynb takes no parameter run_dirr"):
        stages.execute_notebook(notebook, tmp_path / "x.ipynb", {"run_dirr": "x"})


def test_widget_views_and_state_are_stripped_from_executed_notebooks():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("w")])
    view = {aoi_notebook.WIDGET_VIEW: {"model_id": "abc"}, "image/png": "iVBO", "text/plain": "w"}
    notebook.cells[0].outputs = [nbformat.v4.new_output("display_data", data=view)]
    notebook.metadata["widgets"] = {"state": {}}
    stripped = aoi_notebook.without_widget_views(notebook, every=True)
    assert stripped.cells[0].outputs[0].data == {"image/png": "iVBO", "text/plain": "w"}
    assert "widgets" not in stripped.metadata


def test_real_runs_end_to_end_then_the_profile_edited(tiny, capsys):
    """Papermill executes the real notebooks: records in runs/, metrics and figures in results/.
    Then the STR run is taken out of the profile: the next call removes it after a line saying why,
    and the tables are built from the TET run alone."""
    profile, runs, results = tiny
    assert reproduce.main(["--profile", profile, "--only", "*-s0", *roots(runs, results)]) == 0
    run = runs / "tiny" / "digits" / "T2-tet-s0"
    assert {"01_train.ipynb", "02_analyse.ipynb", "final.json", "logits_test.npz"} <= {p.name for p in run.iterdir()}
    metrics = json.loads((results / "tiny" / "runs" / "digits" / "T2-tet-s0" / "metrics.json").read_text())
    assert metrics["params"]["limit_test"] == 16 and metrics["test_samples"] == 16
    assert metrics["provenance"]["train"]["machine"]["torch_threads"] == 1  # the profile's threads, passed
    assert {"figure_accuracy.png", "figure_rules.pdf", "figure_stf.png", "table_accuracy.md", "table_cost.md"} <= {
        p.name for p in (results / "tiny").iterdir()
    }
    assert "STR(0.5)" in (results / "tiny" / "table_accuracy.md").read_text()
    assert reproduce.main(["--profile", profile, "--only", "*-tet-s0", "--dry-run", *roots(runs, results)]) == 0
    assert "finished" in capsys.readouterr().out.splitlines()[-2]

    edited = TINY.replace("seeds: [0, 1]", "seeds: [0]").replace("      - {method: str, alpha: 0.5}\n", "")
    with open(profile, "w") as file:
        file.write(edited + "presentation: [tables]\n")
    assert reproduce.main(["--profile", profile, *roots(runs, results)]) == 0
    out = capsys.readouterr().out
    assert f"  removing {runs / 'tiny' / NAMES[2]} and {results / 'tiny' / 'runs' / NAMES[2]}: not a run of" in out
    assert f"{NAMES[0]:<40} finished (skipped)" in out
    table = (results / "tiny" / "table_accuracy.md").read_text()
    assert "TET" in table and "STR" not in table
