"""07_sweep and 08_capacity on synthetic results: fake metrics.json files of a sweep and of a
width study in a temporary folder, the notebooks executed with papermill as ./reproduce.sh does."""

import json
import math

import nbformat
import pytest

from aoi import stages
from aoi.layout import REPO_ROOT, run_name

PROFILE = (REPO_ROOT / "aoi" / "profiles" / "smoke.yaml").read_text()


def metrics(dataset: str, method: str, alpha: float, seed: int, detach_reset=False, width=1.0) -> dict:
    """A metrics.json with what the presentation reads: accuracy falls with alpha, validation follows test."""
    params = {"dataset": dataset, "T": 4, "method": method, "alpha": alpha, "seed": seed}
    params.update(detach_reset=detach_reset, width=width)
    accuracy = 0.9 - 0.05 * alpha + 0.01 * seed + 0.01 * math.log2(width)
    cutoff = {
        "accuracy": accuracy - 0.01,
        "mean_exit_step": 2.0 + alpha,
        "speedup": 4 / (2 + alpha),
        "accuracy_drop": 0.01,
    }
    return {
        "run_name": run_name(params),
        "params": params,
        "T": 4,
        "epsilon": 0.01,
        "accuracy": accuracy,
        "cutoff": cutoff,
        "oct": {"mean": 1.5},
        "operations": {"sops_full": 2e6, "sops_cutoff": 1e6, "energy_pj_full": 3e6, "energy_pj_cutoff": 1.5e6},
        "timing": None,
        "validation": {"accuracy": accuracy, "cutoff": {"accuracy": accuracy - 0.02 * alpha, "mean_exit_step": 2.0}},
    }


def write_study(folder, runs) -> None:
    for run in runs:
        path = folder / "runs" / run["run_name"] / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))


def execute(tmp_path, stem: str, name: str, runs) -> nbformat.NotebookNode:
    profile = tmp_path / f"{name}-synthetic.yaml"  # not the built-in profile: a name of its own
    profile.write_text(PROFILE)
    write_study(tmp_path / name, runs)
    output = tmp_path / f"{stem}.ipynb"
    parameters = {"profile": str(profile), "results_dir": str(tmp_path / name)}
    stages.execute_notebook(stages.NOTEBOOK_DIR / f"{stem}.ipynb", output, parameters)
    return nbformat.read(output, as_version=4)


def html_outputs(notebook) -> list[str]:
    return [
        o.data["text/html"] for c in notebook.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})
    ]


@pytest.mark.parametrize("detach", [False, True])
def test_the_sweep_notebook_draws_the_sweep_and_selects_on_validation(tmp_path, detach):
    runs = [metrics("digits", "tet", 0.0, seed, d) for seed in (0, 1) for d in (False, detach)]
    runs += [
        metrics("digits", "str", a, seed, d) for a in (0.001, 0.1, 1.0) for seed in (0, 1) for d in (False, detach)
    ]
    notebook = execute(tmp_path, "07_sweep", "sweep", runs)
    assert (tmp_path / "sweep" / "figure_sweep.png").is_file()
    selection, every = html_outputs(notebook)
    assert "STR(0.001)" in selection and "α chosen on validation per dataset" in selection and "TET" in selection
    assert every.count("<tr>") == 1 + (2 if detach else 1) * 4  # a header, then TET and three alphas per gradient


def test_the_capacity_notebook_draws_width(tmp_path):
    runs = [
        metrics("ndigits", m, a, seed, width=w)
        for m, a in (("tet", 0.0), ("str", 0.5))
        for w in (1.0, 2.0, 4.0)
        for seed in (0, 1)
    ]
    notebook = execute(tmp_path, "08_capacity", "capacity", runs)
    assert (tmp_path / "capacity" / "figure_capacity.png").is_file()
    (table,) = html_outputs(notebook)
    assert ">width<" in table and table.count("<tr>") == 1 + 6
    # these runs record no code fingerprint: the notebook warns, naming them, and marks its rows
    printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "WARNING: runs made by other code (fingerprint none) than the current aoi" in printed
    assert "ndigits/T4-tet-w2-s1" in printed and ">TET†<" in table
