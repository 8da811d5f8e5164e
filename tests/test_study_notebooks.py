"""07_sweep and 08_capacity on synthetic results: fake metrics.json files of a sweep and of a
width study in a temporary folder, the notebooks executed with papermill as ./reproduce.sh does."""

import json
import math

import nbformat
import pytest

from aoi import stages
from aoi.files import sealed_metrics
from aoi.layout import run_name
from aoi.profiles import load_profile, run_grid

PROFILE = """epsilon: 0.01
epsilons: [0.0, 0.01, 0.1]
seeds: [0, 1]
datasets:
  {dataset}:
    model: digits_snn
    T: 4
    epochs: 1
    batch_size: 32
    lr: 0.1
    paper: [cifar10]
    methods: {methods}
"""


def metrics(params: dict) -> dict:
    """A metrics.json of the run of TrainConfig values ``params`` with what the presentation reads:
    accuracy falls with alpha, validation follows test."""
    alpha, seed, width = params["alpha"], params["seed"], params.get("width", 1.0)
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


def execute(tmp_path, stem: str, name: str, dataset: str, methods: list[dict]) -> nbformat.NotebookNode:
    """``stem`` executed on a study of ``methods`` on ``dataset``, 2 seeds, every run's metrics.json written."""
    profile = tmp_path / f"{name}-synthetic.yaml"  # not the built-in profile: a name of its own
    profile.write_text(PROFILE.format(dataset=dataset, methods=json.dumps(methods)))
    for params in run_grid(load_profile(str(profile))):
        path = tmp_path / name / "runs" / run_name(params) / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sealed_metrics(metrics(params))))
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
    gradients = [False, True] if detach else [False]
    methods = [
        {"method": "tet", "detach_reset": gradients},
        {"method": "str", "alpha": [0.001, 0.1, 1.0], "detach_reset": gradients},
    ]
    notebook = execute(tmp_path, "07_sweep", "sweep", "digits", methods)
    assert (tmp_path / "sweep" / "figure_sweep.png").is_file()
    selection, every = html_outputs(notebook)
    assert "STR(0.001)" in selection and "α chosen on validation per dataset" in selection and "TET" in selection
    assert every.count("<tr>") == 1 + (2 if detach else 1) * 4  # a header, then TET and three alphas per gradient


def test_the_capacity_notebook_draws_width(tmp_path):
    methods = [{"method": "tet", "width": [1.0, 2.0, 4.0]}, {"method": "str", "alpha": 0.5, "width": [1.0, 2.0, 4.0]}]
    notebook = execute(tmp_path, "08_capacity", "capacity", "ndigits", methods)
    assert (tmp_path / "capacity" / "figure_capacity.png").is_file()
    (table,) = html_outputs(notebook)
    assert ">width<" in table and table.count("<tr>") == 1 + 6
    # these runs record no code fingerprint: the notebook warns, naming them, and marks its rows
    printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "WARNING: runs made by other code (fingerprint none) than the current aoi" in printed
    assert "ndigits/T4-tet-w2-s1" in printed and ">TET†<" in table
