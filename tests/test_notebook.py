"""What the notebooks share: parameters checked, the compute run resolved (scratch, threads, nbval)."""

import ast
import json
import subprocess
import sys

import nbformat
import pytest

from aoi import layout, notebook, results, runspec
from aoi.profiles import load_profile, run_grid

PARAMETERS_CELL = 'profile = "default"  # a comment\nconfig = None\nrun_dir = None\n'


def test_declared_parameters_are_read_from_the_tagged_cell(tmp_path):
    path = tmp_path / "n.ipynb"
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# title"},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": PARAMETERS_CELL.splitlines(True)},
        {"cell_type": "code", "metadata": {}, "source": "x = 1"},
    ]
    path.write_text(json.dumps({"cells": cells}))
    assert notebook.declared_parameters(path) == {"profile": "default", "config": None, "run_dir": None}
    path.write_text(json.dumps({"cells": cells[2:]}))
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        notebook.declared_parameters(path)


def test_an_injected_parameter_the_notebook_does_not_declare_is_an_error():
    history = ["", PARAMETERS_CELL, '# Parameters\nprofile = "smoke"\nrun_dirr = "/x"\n', "notebook.check_parameters()"]
    with pytest.raises(
        ValueError, match="unknown notebook parameter run_dirr: this notebook takes profile, config, run_dir"
    ):
        notebook.check_parameters(history)
    notebook.check_parameters(["", PARAMETERS_CELL, '# Parameters\nprofile = "smoke"\n'])  # declared: fine
    notebook.check_parameters(["", PARAMETERS_CELL, "x = 1"])  # run by hand: nothing injected


def test_a_run_by_hand_goes_to_the_scratch_folder_with_the_profiles_first_run():
    run = runspec.resolve("default")
    first = run_grid(load_profile("default"))[0]
    assert run.config == first and run.name == "digits/T4-tet-s0"
    assert run.run_dir == runspec.SCRATCH / "default" / "digits" / "T4-tet-s0" and run.scratch
    assert run.results_dir == runspec.SCRATCH / "results" / "default" / "runs" / "digits" / "T4-tet-s0"
    assert not run.results_dir.is_relative_to(layout.REPO_ROOT / "results")
    assert run.threads == 1 and run.analysis["epsilon"] == 0.01 and run.analysis["profile"] == "default"


def test_a_given_run_folder_supplies_its_own_configuration(tmp_path):
    config = {**run_grid(load_profile("smoke"))[1], "seed": 7}
    (tmp_path / "config.json").write_text(json.dumps({"config": config}))
    run = runspec.resolve("smoke", run_dir=str(tmp_path), threads=2)
    assert run.config == config and run.run_dir == tmp_path and not run.scratch and run.threads == 2
    assert run.results_dir.parent.parent == runspec.SCRATCH / "results" / "smoke" / "runs"


def test_the_profile_sets_the_threads(tmp_path):
    text = (layout.REPO_ROOT / "aoi" / "profiles" / "smoke.yaml").read_text()
    (tmp_path / "p.yaml").write_text(text + "threads: 2\n")
    assert runspec.resolve(str(tmp_path / "p.yaml")).threads == 2
    (tmp_path / "q.yaml").write_text(text + "threads: 0\n")
    with pytest.raises(ValueError, match="threads: expected an integer >= 1, got 0"):
        runspec.resolve(str(tmp_path / "q.yaml"))


def test_reproduce_passes_the_whole_run_to_both_compute_notebooks(tmp_path):
    profile = load_profile("smoke")
    params = run_grid(profile)[0]
    parameters = runspec.notebook_parameters("smoke", profile, params, tmp_path / "run", tmp_path / "out")
    train, analyse = parameters["01_train"], parameters["02_analyse"]
    assert train == {"profile": "smoke", "config": params, "run_dir": str(tmp_path / "run"), "threads": 1}
    assert analyse["results_dir"] == str(tmp_path / "out") and analyse["analysis"]["epsilons"] == profile["epsilons"]
    for stem, values in parameters.items():  # every value is one the notebook declares
        assert set(values) <= set(notebook.declared_parameters(layout.REPO_ROOT / "notebooks" / f"{stem}.ipynb"))


def test_under_pytest_the_compute_notebooks_run_the_smoke_profile(monkeypatch):
    monkeypatch.setattr(notebook, "set_threads", lambda threads: None)
    assert notebook.under_test()
    run = notebook.compute_run("default")
    assert run.config == run_grid(load_profile("smoke"))[0] and run.run_dir.parts[-3] == "smoke"
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    assert notebook.compute_run("default").run_dir.parts[-3] == "default"


def test_a_scratch_run_is_emptied_and_a_study_run_kept(tmp_path):
    scratch = runspec.RunSpec({}, {}, tmp_path / "a", tmp_path / "r", 1, scratch=True)
    kept = runspec.RunSpec({}, {}, tmp_path / "b", tmp_path / "r", 1, scratch=False)
    for run in (scratch, kept):
        run.run_dir.mkdir()
        (run.run_dir / "checkpoint.pt").write_text("")
        notebook.clear_scratch(run)
    assert not scratch.run_dir.exists() and (kept.run_dir / "checkpoint.pt").exists()


def test_comparison_with_the_committed_run_says_why_the_weights_differ_and_whether_that_is_expected(tmp_path):
    path = layout.REPO_ROOT / "results/default/runs/digits/T4-tet-s0/metrics.json"
    committed = json.loads(path.read_text())
    ours = json.loads(json.dumps(committed))
    assert notebook.compare_with_committed(ours, tmp_path).startswith("the same final weights as the committed")
    ours["provenance"]["final"]["weights_sha256"] = "0"
    text = notebook.compare_with_committed(ours, tmp_path)
    assert "other final weights" in text and "not expected" in text  # nothing differs but the weights
    ours["provenance"]["train"]["machine"]["cpu"] = "Intel Xeon"
    ours["provenance"]["train"]["machine"]["torch_threads"] = 7
    committed_cpu = committed["provenance"]["train"]["machine"]["cpu"]
    text = notebook.compare_with_committed(ours, tmp_path)
    assert "as expected" in text and "not expected" not in text
    assert f"CPU model: 'Intel Xeon' here, {committed_cpu!r} committed" in text
    assert "torch threads: 7 here, 1 committed" in text and results.REPRODUCIBLE_WITH in text
    assert "no committed results" in notebook.compare_with_committed({**ours, "run_name": "x/y"}, tmp_path)


def test_papermill_with_a_parameter_the_notebook_does_not_declare_fails_naming_it(tmp_path):
    import papermill

    source = layout.REPO_ROOT / "notebooks" / "02_analyse.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="unknown notebook parameter run_dirr: this notebook"):
        papermill.execute_notebook(
            str(source), str(tmp_path / "out.ipynb"), parameters={"run_dirr": "x"}, progress_bar=False
        )


@pytest.mark.parametrize("path", sorted((layout.REPO_ROOT / "notebooks").glob("*.ipynb")), ids=lambda path: path.stem)
def test_every_notebook_checks_its_parameters_before_it_uses_them(path):
    """What makes papermill's unknown parameter (which it only warns about) an error in every notebook."""
    cells = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    assert "parameters" in cells[0].metadata.get("tags", [])
    statements = [node for node in ast.parse(cells[1].source).body if not isinstance(node, ast.ImportFrom)]
    assert ast.unparse(statements[0]) == "notebook.check_parameters()"


def test_a_notebook_is_saved_as_git_keeps_it_where_git_filters_it(tmp_path):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitattributes").write_text("*.ipynb filter=nbstripout\n")
    subprocess.run(
        ["git", "config", "filter.nbstripout.clean", f"{sys.executable} -m nbstripout"], cwd=repo, check=True
    )
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=7, outputs=[nbformat.v4.new_output("stream", text="2")])
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}  # timing metadata
    kept = json.loads(nbformat.writes(nbformat.v4.new_notebook(cells=[cell], metadata={"keep_output": True})))
    saved = notebook.as_git_keeps_it(kept, repo / "notebooks" / "a.ipynb")
    assert saved["cells"][0]["execution_count"] is None and saved["cells"][0]["metadata"] == {}
    assert saved["cells"][0]["outputs"][0]["text"] == ["2"]  # the notebook keeps its outputs (lines, as on disk)
    plain = {**kept, "metadata": {}}
    assert notebook.as_git_keeps_it(plain, repo / "notebooks" / "a.ipynb")["cells"][0]["outputs"] == []
    assert notebook.as_git_keeps_it(kept, repo / "a.txt") == kept  # no filter for it
    (tmp_path / "elsewhere").mkdir()
    assert notebook.as_git_keeps_it(kept, tmp_path / "elsewhere" / "a.ipynb") == kept  # not in a repository
