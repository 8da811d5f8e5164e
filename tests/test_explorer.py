"""The epsilon explorer: the readout and the three panels at a chosen epsilon, live and static, and
the static figure what a notebook saved by JupyterLab keeps of it."""

import base64

import IPython.display
import pytest
from matplotlib.figure import Figure

from aoi import explorer, notebook

RUN = {
    "run_name": "digits/T4-tet-s0",
    "params": {"method": "tet", "alpha": 0.0},
    "T": 4,
    "epsilon": 0.01,
    "accuracy": 0.9,
    "operations": {"energy_pj_full": 4e6, "energy_pj_cutoff": 2e6},
    "curve": [  # in no particular order
        {"epsilon": 0.1, "accuracy": 0.7, "mean_exit_step": 1.0, "sops": 1e6, "energy_pj": 1e6},
        {"epsilon": 0.0, "accuracy": 0.9, "mean_exit_step": 4.0, "sops": 4e6, "energy_pj": 4e6},
        {"epsilon": 0.01, "accuracy": 0.85, "mean_exit_step": 2.0, "sops": 2e6, "energy_pj": 2e6},
    ],
}
OLD_RUN = {**RUN, "curve": [{k: v for k, v in p.items() if k not in ("sops", "energy_pj")} for p in RUN["curve"]]}


def test_readout_gives_the_numbers_at_the_chosen_epsilon():
    assert explorer.readout(RUN, 0.1) == (
        "digits/T4-tet-s0, ε = 0.1: accuracy 70.00 % (at T: 90.00 %), mean exit step 1.00 of 4, "
        "energy 1.000 µJ per sample (at T: 4.000 µJ)"
    )
    assert explorer.readout(OLD_RUN, 0.1).endswith("mean exit step 1.00 of 4")  # no energy per epsilon recorded


def test_the_figure_marks_the_chosen_epsilon_on_three_panels():
    fig = explorer.epsilon_figure(RUN, 0.01)
    accuracy, _, energy = fig.get_axes()
    curve, star = accuracy.lines[1:]
    assert list(curve.get_xdata()) == [0.0, 0.01, 0.1] and list(curve.get_ydata()) == pytest.approx([90, 85, 70])
    assert list(star.get_xdata()) == [0.01] and list(star.get_ydata()) == pytest.approx([85])
    assert list(energy.lines[1].get_ydata()) == pytest.approx([4.0, 2.0, 1.0])  # µJ
    assert accuracy.get_xscale() == "symlog"


def test_without_energy_per_epsilon_the_panel_says_so_and_gives_the_stated_one():
    energy = explorer.epsilon_figure(OLD_RUN, 0.01).get_axes()[2]
    text = energy.texts[0].get_text()
    assert "no energy per ε" in text and "at the stated ε = 0.01: 2.000 µJ" in text


def test_the_widget_redraws_when_the_slider_or_the_run_changes(monkeypatch):
    drawn = []

    def draw(run, epsilon):
        drawn.append((run["run_name"], epsilon))
        return Figure(figsize=(1, 1))

    monkeypatch.setattr(explorer, "epsilon_figure", draw)
    box = explorer.explorer([RUN, {**RUN, "run_name": "digits/T4-tet-s1"}], epsilon=0.1)
    menu, slider = box.children[0].children
    assert menu.options == ("digits/T4-tet-s0", "digits/T4-tet-s1")
    assert [label for label, _ in slider._options_full] == ["0", "0.01", "0.1"]
    slider.value = 0.0
    menu.value = "digits/T4-tet-s1"
    assert drawn == [("digits/T4-tet-s0", 0.1), ("digits/T4-tet-s0", 0.0), ("digits/T4-tet-s1", 0.0)]


def test_show_refuses_an_unknown_run_or_epsilon():
    with pytest.raises(ValueError, match="no run 'x' in these results: use one of digits/T4-tet-s0"):
        explorer.show([RUN], run_name="x")
    with pytest.raises(ValueError, match="epsilon 0.5 is not in the run's sweep: use one of 0, 0.01, 0.1"):
        explorer.show([RUN], epsilon=0.5)


@pytest.fixture
def shown(monkeypatch) -> list[dict]:
    """What `explorer.show` displays: its raw mime bundles (the widget's own redraw goes to its Output)."""
    bundles, display = [], IPython.display.display

    def capture(*objects, raw=False, **kwargs):
        return bundles.append(objects[0]) if raw else display(*objects, **kwargs)

    monkeypatch.setattr(IPython.display, "display", capture)
    return bundles


def test_live_and_static_show_the_same_figure_and_readout_the_live_one_with_its_widget(shown):
    explorer.show([RUN], live=False)
    explorer.show([RUN], live=True)
    static, live = shown
    assert set(static) == {"image/png", "text/plain"} and set(live) == {*static, notebook.WIDGET_VIEW}
    assert static["text/plain"] == live["text/plain"] == "ε explorer: " + explorer.readout(RUN, 0.01)
    assert static["image/png"] == live["image/png"]
    assert base64.b64decode(static["image/png"])[:4] == b"\x89PNG"


def test_a_saved_notebook_keeps_the_static_figure_of_a_live_widget(shown):
    explorer.show([RUN], live=True)
    other = {"text/plain": "IntSlider(value=3)", notebook.WIDGET_VIEW: {"model_id": "b"}}  # no image: kept
    cells = [{"cell_type": "code", "outputs": [{"output_type": "display_data", "data": d}]} for d in (shown[0], other)]
    model = {"type": "notebook", "content": {"cells": cells, "metadata": {}}}
    notebook.before_save(model=model, path="notebooks/06_explorer.ipynb", contents_manager=None)
    saved = [cell["outputs"][0]["data"] for cell in model["content"]["cells"]]
    assert set(saved[0]) == {"image/png", "text/plain"} and saved[1] == other
    notebook.before_save(model={"type": "file", "content": "text"}, path="a.txt")  # not a notebook: left alone
