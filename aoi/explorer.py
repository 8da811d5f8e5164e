"""The epsilon explorer: for one run, accuracy, mean exit step and energy per sample as the
cutoff threshold epsilon moves, read from the cutoff curve of the run's metrics.json.

A sample exits at the first step t where max softmax(Y_t) > 1 - epsilon (`aoi.cutoff`); the
curve holds one record per epsilon of the profile's sweep (`aoi.analysis.cutoff_metrics`):
accuracy, mean_exit_step and, in runs analysed since they were recorded, sops and energy_pj per
sample until exit. `show` draws it live with ipywidgets (a run menu and an epsilon slider) or,
where widgets cannot be used (nbval, papermill, no ipywidgets), as a static figure; the live
widget's output carries the static figure too, which is what shows wherever the widget cannot
(a viewer without a kernel, an untrusted notebook, and a notebook saved by JupyterLab: the aoi
server extension, `aoi.notebook.before_save`, saves the static figure alone).
"""

from __future__ import annotations

import base64
import io

import pandas as pd
from matplotlib.figure import Figure

from aoi.plots import method_color, themed

PANELS = (  # curve column, scale, y label
    ("accuracy", 100, "Accuracy [%]"),
    ("mean_exit_step", 1, "Mean exit step"),
    ("energy_pj", 1e-6, "Energy per sample [µJ]"),
)


def curve(run: dict) -> pd.DataFrame:
    """The run's cutoff curve (metrics.json ``curve``), sorted by epsilon."""
    return pd.DataFrame(run["curve"]).sort_values("epsilon", kind="stable").reset_index(drop=True)


def readout(run: dict, epsilon: float) -> str:
    """One line: what the run gives at ``epsilon`` (one of its curve's epsilons)."""
    points = curve(run)
    point = points[points["epsilon"] == epsilon].iloc[0]
    text = (
        f"{run['run_name']}, ε = {epsilon:g}: accuracy {100 * point.accuracy:.2f} % "
        f"(at T: {100 * run['accuracy']:.2f} %), mean exit step {point.mean_exit_step:.2f} of {run['T']}"
    )
    if "energy_pj" in points:
        full = 1e-6 * run["operations"]["energy_pj_full"]
        text += f", energy {1e-6 * point.energy_pj:.3f} µJ per sample (at T: {full:.3f} µJ)"
    return text


@themed
def epsilon_figure(run: dict, epsilon: float) -> Figure:
    """Accuracy, mean exit step and energy per sample against epsilon (symlog axis; 0 = full T),
    the chosen ``epsilon`` marked; the energy panel says so when the run's curve lacks energy."""
    points = curve(run)
    color = method_color(run["params"]["method"], run["params"].get("alpha"))
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    for ax, (column, scale, ylabel) in zip(axes, PANELS):
        ax.set_xscale("symlog", linthresh=1e-4)
        ax.set(xlabel="ε (exit when max softmax > 1 − ε)", ylabel=ylabel)
        ax.axvline(epsilon, color="black", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
        if column not in points:
            stated = run["operations"]["energy_pj_cutoff"] * scale
            ax.text(
                0.5,
                0.5,
                f"no energy per ε in this run's metrics.json\n(analysed before it was recorded:\nrerun 02_analyse)"
                f"\n\nat the stated ε = {run['epsilon']:g}: {stated:.3f} µJ",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=10,
            )
            continue
        ax.plot(points["epsilon"], scale * points[column], "-o", markersize=4, color=color)
        chosen = points.loc[points["epsilon"] == epsilon, column].iloc[0] * scale
        ax.plot([epsilon], [chosen], "*", markersize=15, color=color, markeredgecolor="black")
    fig.suptitle(readout(run, epsilon), fontsize=12)
    fig.tight_layout()
    return fig


def png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes (shown by any frontend, matplotlib's inline backend active or not)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def explorer(runs: list[dict], run_name: str | None = None, epsilon: float | None = None):
    """An ipywidgets box: a run menu and an epsilon slider over the run's curve that redraw
    `epsilon_figure` live. Defaults: the first run, its stated epsilon."""
    import ipywidgets as widgets
    from IPython.display import Image, clear_output, display

    by_name = {run["run_name"]: run for run in runs}
    first = by_name[run_name or runs[0]["run_name"]]
    menu = widgets.Dropdown(options=list(by_name), value=first["run_name"], description="run")
    options = [(f"{e:g}", e) for e in curve(first)["epsilon"]]
    slider = widgets.SelectionSlider(
        options=options, value=first["epsilon"] if epsilon is None else epsilon, description="ε", continuous_update=True
    )
    output = widgets.Output()

    def redraw(_=None) -> None:
        with output:
            clear_output(wait=True)
            display(Image(png(epsilon_figure(by_name[menu.value], slider.value))))

    menu.observe(redraw, names="value")
    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([menu, slider]), output])


def show(runs: list[dict], run_name: str | None = None, epsilon: float | None = None, live: bool = True) -> None:
    """Display the explorer of ``runs``, starting at ``run_name`` (default: the first run) and
    ``epsilon`` (default: its stated one).

    One output either way: the static `epsilon_figure` as a PNG with the `readout` as its text;
    with ``live`` (and ipywidgets importable) the widget's view besides, which JupyterLab shows
    while the kernel runs, and a notebook viewer without widgets (nbconvert, GitHub, a papermill
    record with the widget state stripped, a notebook saved by JupyterLab) the PNG.
    """
    from IPython.display import display

    by_name = {run["run_name"]: run for run in runs}
    if run_name is not None and run_name not in by_name:
        raise ValueError(f"no run {run_name!r} in these results: use one of {', '.join(by_name)}")
    run = by_name[run_name or runs[0]["run_name"]]
    epsilons = list(curve(run)["epsilon"])
    if epsilon is not None and epsilon not in epsilons:
        raise ValueError(
            f"epsilon {epsilon:g} is not in the run's sweep: use one of {', '.join(f'{e:g}' for e in epsilons)}"
        )
    start = run["epsilon"] if epsilon is None else epsilon
    image = base64.b64encode(png(epsilon_figure(run, start))).decode("ascii")
    bundle = {"image/png": image, "text/plain": f"ε explorer: {readout(run, start)}"}
    try:
        box = explorer(runs, run_name, epsilon) if live else None
    except ImportError:
        box = None
        print("ipywidgets is not installed (pip install -e . installs it): a static figure instead")
    display({**(box._repr_mimebundle_() if box is not None else {}), **bundle}, raw=True)
