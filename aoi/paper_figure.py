"""The paper's results figure, regenerated: six panels of accuracy against timestep, the paper's
digitised numbers beside aoi's own curves.

Wu et al., "Direct Training Needs Regularisation: Anytime Optimal Inference Spiking Neural
Network", arXiv 2405.00699 (`PAPER_URL`): its one results figure, panels (a)-(f) CIFAR-10,
CIFAR-100, ImageNet at T=4, CIFAR10-DVS, N-Caltech101 at T=10, DVS128 Gesture at T=16; TET
(orange) and TET + STR (green), dashed: accuracy at each fixed step t, solid: the cutoff curve.
Where a profile has a panel's dataset its runs are drawn on the same axis; where one of its
datasets stands in for it (``paper:`` in the profile) that one is drawn on a second y axis,
named in the title; otherwise the panel shows the paper alone.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D

from aoi.plots import CUTOFF, ERRORBAR, FIXED_STEP, STR_COLORS, TET_COLORS, mean_std, ordered
from aoi.results import Study

PAPER_URL = "https://arxiv.org/abs/2405.00699"
PAPER_CITATION = (
    "Wu et al., *Direct Training Needs Regularisation: Anytime Optimal Inference Spiking Neural Network*, "
    f"[arXiv 2405.00699]({PAPER_URL})"
)
PANELS = {  # the paper's panels, in its order: dataset -> name in its captions
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "imagenet": "ImageNet",
    "cifar10dvs": "CIFAR10-DVS",
    "ncaltech101": "N-Caltech101",
    "dvsgesture": "DVS128 Gesture",
}
PAPER_STYLE = {"markerfacecolor": "white", "markersize": 5, "linewidth": 1.2, "alpha": 0.85}
MARKERS = {"tet": "^", "str": "o"}  # as in the paper's figure


def aoi_dataset(panel: str, datasets, references: pd.DataFrame) -> tuple[str | None, bool]:
    """(aoi's dataset drawn on ``panel``, whether it is the paper's dataset itself): the panel's
    own dataset when ``datasets`` holds it, else the first that stands in for it in
    ``references`` (rows dataset, paper_dataset: `aoi.results.profile_datasets_frame`), else None."""
    if panel in datasets:
        return panel, True
    stand_ins = [d for d in references.loc[references["paper_dataset"] == panel, "dataset"] if d in set(datasets)]
    return (stand_ins[0], False) if stand_ins else (None, False)


def paper_figure(
    per_step: pd.DataFrame,
    curve: pd.DataFrame,
    epsilon: float,
    paper_reported: pd.DataFrame,
    paper_per_step: pd.DataFrame,
    references: pd.DataFrame,
) -> Figure:
    """The six panels (`PANELS`), accuracy (%) against timestep.

    Args:
        per_step: `records_frame(runs, "accuracy_per_step")` (accuracies as fractions).
        curve: `records_frame(runs, "curve")`: epsilon, accuracy, mean_exit_step per run.
        epsilon: the stated threshold; its point on each of aoi's cutoff curves is a star.
        paper_reported, paper_per_step: `aoi.results.load_paper` (percent).
        references: which of aoi's datasets stand in for which of the paper's (`aoi_dataset`).
    Returns:
        the figure; `caption` explains every number drawn.
    """
    fig, axes = plt.subplots(2, 3, figsize=(15.5, 10.2))
    for letter, ax, (panel, name) in zip("abcdef", axes.flat, PANELS.items()):
        T = int(paper_reported.loc[paper_reported["dataset"] == panel, "T"].iloc[0])
        handles, labels = _draw_paper(ax, panel, paper_reported, paper_per_step)
        ours, own = aoi_dataset(panel, set(per_step["dataset"]), references)
        title = f"({letter}) {name}, T={T}"
        if ours is None:
            title += "\nno aoi run for it in this profile"
        else:
            target = ax if own else ax.twinx()
            more = _draw_aoi(target, per_step[per_step["dataset"] == ours], curve[curve["dataset"] == ours], epsilon)
            handles, labels = handles + more[0], labels + [f"aoi {ours}: {label}" for label in more[1]]
            T_ours = int(per_step.loc[per_step["dataset"] == ours, "t"].max())
            if not own:
                title += f"\naoi's stand-in: {ours}, T={T_ours} (right axis)"
                target.set_ylabel(f"{ours} accuracy [%] (aoi)")
        ax.set(title=title, xlabel="Timestep", ylabel="Accuracy [%]" + ("" if own else f" ({name}, paper)"))
        ax.grid(alpha=0.3)
        ax.legend(
            handles,
            labels,
            handler_map={tuple: HandlerTuple(ndivide=None, pad=0.6)},
            handlelength=4.5,
            fontsize=7.5,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.13),
            frameon=False,
        )
    fig.legend(*_style_legend(epsilon), loc="upper center", ncol=5, fontsize=9, handlelength=3.5, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.96), h_pad=4.0)
    return fig


def _draw_paper(ax, panel: str, reported: pd.DataFrame, per_step: pd.DataFrame) -> tuple[list, list[str]]:
    """The paper's TET and STR on ``ax``: per-step accuracy (dashed, hollow markers) and its
    reported cutoff point (hollow star, error bar = the legend's std). Returns legend entries."""
    handles, labels = [], []
    rows = reported[reported["dataset"] == panel]
    for method, color in (("tet", TET_COLORS[0]), ("str", STR_COLORS[0])):
        full = rows[(rows["method"] == method) & (rows["cutoff"] == "no")].iloc[0]
        cut = rows[(rows["method"] == method) & (rows["cutoff"] == "yes")].iloc[0]
        points = per_step[(per_step["dataset"] == panel) & (per_step["method"] == method)].sort_values("t")
        style = {"color": color, "marker": MARKERS[method], **PAPER_STYLE}
        ax.plot(points["t"], points["accuracy_approx"], FIXED_STEP, **style)
        x, y, std = cut.avg_timestep_approx, cut.accuracy_mean, cut.accuracy_std
        ax.errorbar(x, y, yerr=std, color=color, marker="*", markersize=12, markerfacecolor="white", **ERRORBAR)
        label = "TET" if method == "tet" else f"STR({full.alpha:g})"
        handles.append(_pair(color))
        labels.append(
            f"paper {label}: {full.accuracy_mean:.2f}±{full.accuracy_std:.2f} / "
            f"{cut.accuracy_mean:.2f}±{cut.accuracy_std:.2f} at ≈{cut.avg_timestep_approx:g}"
        )
    return handles, labels


def _draw_aoi(ax, per_step: pd.DataFrame, curve: pd.DataFrame, epsilon: float) -> tuple[list, list[str]]:
    """aoi's methods on ``ax``: per-step accuracy (dashed, filled markers, std error bars), the
    cutoff curve (solid) and the stated epsilon's point (star, std error bars in both
    directions). Returns legend entries."""
    steps, variants, colors = ordered(per_step)
    sweep = ordered(curve)[0]
    handles, labels = [], []
    for variant in variants:
        color = colors[variant]
        marker = MARKERS[steps.loc[steps["variant"] == variant, "method"].iloc[0]]
        fixed = mean_std(steps[steps["variant"] == variant], ["t"], ["accuracy"])
        y, std = 100 * fixed["accuracy_mean"], 100 * fixed["accuracy_std"]
        ax.errorbar(fixed["t"], y, yerr=std, fmt=FIXED_STEP, color=color, marker=marker, markersize=4, **ERRORBAR)
        cut = mean_std(sweep[sweep["variant"] == variant], ["epsilon"], ["accuracy", "mean_exit_step"])
        cut = cut.sort_values("mean_exit_step_mean")
        ax.plot(cut["mean_exit_step_mean"], 100 * cut["accuracy_mean"], CUTOFF, color=color, linewidth=1.6)
        stated = cut[cut["epsilon"] == epsilon].iloc[0]
        ax.errorbar(
            stated.mean_exit_step_mean,
            100 * stated.accuracy_mean,
            xerr=stated.mean_exit_step_std,
            yerr=100 * stated.accuracy_std,
            color=color,
            marker="*",
            markersize=12,
            markeredgecolor="black",
            **ERRORBAR,
        )
        final = fixed.iloc[-1]
        handles.append(_pair(color))
        labels.append(
            f"{variant}: {100 * final.accuracy_mean:.2f}±{100 * final.accuracy_std:.2f} / "
            f"{100 * stated.accuracy_mean:.2f}±{100 * stated.accuracy_std:.2f} at {stated.mean_exit_step_mean:.2f}"
        )
    return handles, labels


def _pair(color: str) -> tuple[Line2D, Line2D]:
    """A legend handle of a method: its dashed fixed-step line beside its solid cutoff line."""
    return (Line2D([], [], color=color, linestyle=FIXED_STEP), Line2D([], [], color=color, linestyle=CUTOFF, lw=1.6))


def _style_legend(epsilon: float) -> tuple[list, list[str]]:
    """The figure's key to line styles and markers."""
    gray = "#555555"
    handles = [
        Line2D([], [], color=gray, linestyle=FIXED_STEP),
        Line2D([], [], color=gray, linestyle=CUTOFF, lw=1.6),
        Line2D([], [], color=gray, marker="o", markerfacecolor="white", linestyle="none"),
        Line2D([], [], color=gray, marker="o", linestyle="none"),
        Line2D([], [], color=gray, marker="*", markersize=12, markeredgecolor="black", linestyle="none"),
    ]
    labels = [
        "accuracy at each fixed step t",
        "cutoff curve (accuracy vs mean exit step, ε swept)",
        "paper (digitised)",
        "aoi (mean ± std over seeds)",
        f"cutoff point (aoi: ε = {epsilon:g})",
    ]
    return handles, labels


def caption(study: Study) -> str:
    """Markdown caption of `paper_figure` drawn from ``study``: what every line, marker and number is."""
    profile, epsilon, seeds = study.name, study.epsilon, study.seeds
    datasets = {run["params"]["dataset"] for run in study.runs}
    drawn = {panel: aoi_dataset(panel, datasets, study.references) for panel in PANELS}
    stand_ins = sorted({ours for ours, own in drawn.values() if ours and not own})
    alone = [PANELS[panel] for panel, (ours, _) in drawn.items() if ours is None]
    return "\n".join(
        [
            f"**The paper's results figure, regenerated** ({PAPER_CITATION}, panels a–f: accuracy against "
            f"timestep). Orange: TET; green, blue, ...: TET + STR with the weight α in parentheses.",
            "",
            "- **Paper** (hollow markers): accuracy at each fixed step t (dashed), read off its figure "
            "(±0.2 points); its accuracy with cutoff (hollow star) at the average timestep read off its "
            "figure (≈), error bar = the std in its legend. Its cutoff curves are not digitised, only "
            "their end points; its threshold is not stated; the authors keep the best-test-accuracy checkpoint.",
            f"- **aoi** (filled markers), profile `{profile}`, last-epoch models, mean over {seeds} seed(s): "
            "accuracy at each fixed step t (dashed, error bars = sample std over seeds) and the cutoff "
            "curve (solid): accuracy against mean exit step as the threshold ε is swept (exit when "
            f"max softmax(Y_t) > 1 − ε); the star is the stated ε = {epsilon:g}, with the std over seeds "
            "of accuracy and of mean exit step as error bars.",
            "- **Legend**: method: accuracy at T (%) / accuracy with cutoff (%) at the mean exit step, "
            "mean ± std (paper: over its runs; aoi: over seeds).",
            f"- **Stand-ins**: {', '.join(stand_ins) or 'none'} "
            "(right axis, named in the panel title) are aoi's datasets of the same kind, not the paper's: "
            "compare the shapes (accuracy rising with t, steps saved by the cutoff), not the accuracies."
            + (f" No aoi run for {', '.join(alone)} in this profile: the paper alone." if alone else ""),
        ]
    )
