"""The paper's results figure and aoi's results beside it: the paper's six panels as it drew them
(its digitised curves), aoi's runs in panels of their own, one per dataset, and the cutoff of
both on a common scale.

Wu et al., "Direct Training Needs Regularisation: Anytime Optimal Inference Spiking Neural
Network", arXiv 2405.00699 (`PAPER_URL`): its one results figure, panels (a)-(f) CIFAR-10,
CIFAR-100, ImageNet at T=4 (frame data), CIFAR10-DVS, N-Caltech101 at T=10, DVS128 Gesture at
T=16 (event data); TET and TET + STR, accuracy against timestep. aoi's datasets stand in for a
kind of data (a profile's ``paper:`` entries): their accuracies are not the paper's, so they get
panels of their own (`aoi_datasets` gathers them from the profiles in `AOI_PROFILES` whose results
are committed), and paper and aoi share an axis only where the scale is common to both: the
cutoff's accuracy drop (points) against its speed-up in steps (T / mean exit step).

One visual language (`aoi.plots`): colour = method (`aoi.plots.method_color`: the same alpha, the
same colour); ● = accuracy at a fixed step t on a dashed line, ★ = accuracy with cutoff at its mean
exit step; hollow = the paper (digitised), filled = aoi (mean over seeds, band or bars ± std).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from aoi.methods import method_label
from aoi.plots import BAND, CUTOFF, ERRORBAR, FIXED_STEP, SEEDS, method_color, ordered, themed
from aoi.provenance import code_fingerprint
from aoi.results import OTHER_CODE, Study, load_study, made_by_other_code

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
KINDS = {"frame": ("cifar10", "cifar100", "imagenet"), "event": ("cifar10dvs", "ncaltech101", "dvsgesture")}
KIND_PANELS = {"frame": "(a)–(c)", "event": "(d)–(f)"}
PAPER_YLIM = {  # the y range of each of the paper's panels, read off its figure
    "cifar10": (93.0, 95.5),
    "cifar100": (73.0, 78.6),
    "imagenet": (61.0, 67.8),
    "cifar10dvs": (70.0, 83.0),
    "ncaltech101": (78.0, 86.5),
    "dvsgesture": (70.0, 100.0),
}
AOI_PROFILES = ("default", "fashion", "nmnist")  # whose committed results the figure shows, where present
NAMES = {"fashion-mnist": "Fashion-MNIST", "nmnist": "N-MNIST"}  # aoi's dataset -> its name in a title
PAPER, AOI = {"markerfacecolor": "white"}, {"markeredgecolor": "white"}  # hollow and filled markers
STAR = {"marker": "*", "markersize": 15, "linestyle": "none"}
_HEADING = {"ha": "left", "va": "top", "fontsize": 13, "fontweight": "bold"}  # a section's title
# The layout, in inches (fixed, not solved: constrained layout's solver rounds differently from run to
# run, and the PDF would change by a few bytes): the figure's width; above everything the key; per
# section its heading, rows of panels with a gap for titles and axis labels between them, and room
# for the last row's axis labels.
FIGURE_IN, RIGHT_IN, KEY_IN, HEAD_IN, PANEL_IN, GAP_IN, FOOT_IN = 13.5, 0.15, 0.75, 0.65, 2.45, 0.95, 0.6


@dataclass
class AoiDataset:
    """One aoi dataset's runs as the figure draws them: ``per_step`` and ``curve`` frames
    (`aoi.results.records_frame`), ``summary`` (`aoi.results.summary_frame`), from ``profile``."""

    name: str
    kind: str  # "frame", "event" or "other": which of the paper's panels it stands in for
    profile: str
    epsilon: float
    per_step: pd.DataFrame
    curve: pd.DataFrame
    summary: pd.DataFrame


def _readable_study(name: str, directory: Path) -> Study:
    """`load_study` of profile ``name`` from ``directory``; when its results cannot be read, a printed line says why."""
    study = load_study(name, directory, required=False)
    if study.unreadable:
        print(f"profile {name!r} left out of the figure: {study.unreadable}")
    return study


def aoi_datasets(study: Study, others=AOI_PROFILES) -> list[AoiDataset]:
    """``study``'s datasets, then those of the profiles ``others`` whose results lie beside its
    folder (results/<profile>; a profile without results is left out), each dataset once (the
    first profile that has it), frame data before event data. A profile whose results cannot be
    read (`aoi.files.UnreadableFile`: an older aoi's or an edited metrics.json) is left out, with a
    printed line that says why and how to compute it again."""
    studies = [study] + [
        _readable_study(name, Path(study.directory).parent / name) for name in others if name != study.name
    ]
    found = {}
    for each in (s for s in studies if s.runs):
        per_step, curve, summary = each.frame("accuracy_per_step"), each.frame("curve"), each.summary
        for name in dict.fromkeys(summary["dataset"]):
            if name not in found:
                found[name] = AoiDataset(
                    name,
                    kind_of(each.references, name),
                    each.name,
                    each.epsilon,
                    *(frame[frame["dataset"] == name] for frame in (per_step, curve, summary)),
                )
    order = [*KINDS, "other"]
    return sorted(found.values(), key=lambda d: order.index(d.kind))


def drawn(ours: list[AoiDataset], frame: str) -> pd.DataFrame:
    """One frame ("per_step", "curve" or "summary") of every dataset in ``ours``, in one: the numbers drawn."""
    return pd.concat([getattr(dataset, frame) for dataset in ours], ignore_index=True)


def kind_of(references: pd.DataFrame, dataset: str) -> str:
    """The kind of data ``dataset`` is: "frame" or "event" when it stands in for (or is) the
    paper's datasets of that kind (``references``: rows dataset, paper_dataset), else "other"."""
    papers = set(references.loc[references["dataset"] == dataset, "paper_dataset"]) or {dataset}
    return next((kind for kind, names in KINDS.items() if papers <= set(names)), "other")


@themed
def paper_figure(reported: pd.DataFrame, paper_per_step: pd.DataFrame, ours: list[AoiDataset]) -> Figure:
    """The paper's six panels (`PANELS`, its y ranges `PAPER_YLIM`), a panel per aoi dataset in
    ``ours`` (a row per kind of data, as the paper's rows), and the cutoff of both on a common
    scale; `caption` says what each mark is.

    Args:
        reported, paper_per_step: `aoi.results.load_paper` (percent).
        ours: `aoi_datasets` (accuracies as fractions).
    """
    kinds = [kind for kind in (*KINDS, "other") if any(d.kind == kind for d in ours)]
    sections = [  # rows, panel height, columns, left margin, gap between columns (inches)
        (2, PANEL_IN, 3, 0.75, 0.75),
        *([(len(kinds), PANEL_IN, 3, 0.75, 0.75)] if ours else []),
        (1, 0.32 * (6 + len(ours)), 2, 2.5, 0.35),  # the common scale: a row per dataset, the paper's and aoi's
    ]
    height = KEY_IN + sum(HEAD_IN + rows * h + (rows - 1) * GAP_IN + FOOT_IN for rows, h, *_ in sections)
    fig = plt.figure(figsize=(FIGURE_IN, height))
    grids, top = [], KEY_IN
    for section in sections:
        grids.append((_grid(fig, top + HEAD_IN, *section), 1 - (top + 0.1) / height))
        top += HEAD_IN + section[0] * section[1] + (section[0] - 1) * GAP_IN + FOOT_IN
    (paper, paper_top), *aoi, (common_grid, common_top) = grids
    fig.text(0.005, paper_top, "The paper's figure, its six panels digitised (Wu et al., arXiv 2405.00699)", **_HEADING)
    for ax, panel in zip(paper.subplots().flat, PANELS):
        _paper_panel(ax, panel, reported, paper_per_step)
    for grid, aoi_top in aoi:
        epsilon = ", ".join(sorted({f"{d.epsilon:g}" for d in ours}))
        fig.text(
            0.005, aoi_top, f"aoi: a panel per dataset, mean ± std over seeds; cutoff at ε = {epsilon}", **_HEADING
        )
        for row, kind in zip(grid.subplots(squeeze=False), kinds):
            mine = [d for d in ours if d.kind == kind]
            for ax, dataset in zip(row, mine):
                _aoi_panel(ax, dataset)
            for ax in row[len(mine) :]:
                ax.set_axis_off()
    sources = "paper (hollow) and aoi (filled)" if ours else "paper"
    fig.text(0.005, common_top, f"On a common scale: what the cutoff saves and costs, {sources}", **_HEADING)
    _tradeoff_panels(common_grid.subplots(squeeze=False)[0], tradeoff_frame(reported, ours))
    handles, labels = _key()
    shown = [i for i, label in enumerate(labels) if ours or label.startswith("paper")]
    fig.legend([handles[i] for i in shown], [labels[i] for i in shown], loc="upper center", ncol=3,
               bbox_to_anchor=(0.5, 1), handlelength=3.2, frameon=False)  # fmt: skip
    return fig


def _grid(fig, top: float, rows: int, height: float, cols: int, left: float, gap: float):
    """A grid of ``rows`` x ``cols`` panels ``height`` inches high, its top ``top`` inches below the
    figure's, ``left`` inches from its left edge, ``gap`` inches apart side by side, `GAP_IN` apart."""
    figure_height = fig.get_size_inches()[1]
    width = (FIGURE_IN - left - RIGHT_IN - (cols - 1) * gap) / cols
    bottom = top + rows * height + (rows - 1) * GAP_IN
    box = {"left": left / FIGURE_IN, "right": 1 - RIGHT_IN / FIGURE_IN, "top": 1 - top / figure_height}
    return fig.add_gridspec(
        rows, cols, **box, bottom=1 - bottom / figure_height, hspace=GAP_IN / height, wspace=gap / width
    )


def _paper_panel(ax, panel: str, reported: pd.DataFrame, per_step: pd.DataFrame) -> None:
    """One of the paper's panels: per method, its accuracy at each fixed step t (dashed, hollow ●,
    read off its figure) and with cutoff (hollow ★ at its average timestep, bar ± its legend's std)."""
    rows = reported[reported["dataset"] == panel]
    T = int(rows["T"].iloc[0])
    for method in ("tet", "str"):
        full = rows[(rows["method"] == method) & (rows["cutoff"] == "no")].iloc[0]
        cut = rows[(rows["method"] == method) & (rows["cutoff"] == "yes")].iloc[0]
        color, label = method_color(method, full.alpha), method_label(method, full.alpha)
        points = per_step[(per_step["dataset"] == panel) & (per_step["method"] == method)].sort_values("t")
        ax.plot(points["t"], points["accuracy_approx"], FIXED_STEP, color=color, marker="o", label=label, **PAPER)
        ax.errorbar(
            cut.avg_timestep_approx, cut.accuracy_mean, yerr=cut.accuracy_std, color=color, **STAR, **PAPER, **ERRORBAR
        )
    letter = "abcdef"[list(PANELS).index(panel)]
    ax.set(title=f"({letter}) {PANELS[panel]}, T={T}", xlabel="Timestep t", ylim=PAPER_YLIM[panel])
    ax.set_ylabel("Accuracy [%]" if letter in "ad" else "")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="lower right")


def _aoi_panel(ax, dataset: AoiDataset) -> None:
    """One aoi dataset: per method, accuracy at each fixed step t (seaborn: dashed, filled ●, band
    ± std over seeds), the cutoff curve (solid: mean accuracy at the mean exit step over the ε
    sweep) and the stated ε (filled ★, bars ± std over seeds both ways)."""
    steps, variants, colors = ordered(dataset.per_step.assign(accuracy=100 * dataset.per_step["accuracy"]))
    sns.lineplot(steps, x="t", y="accuracy", hue="variant", hue_order=variants, palette=colors,
                 linestyle=FIXED_STEP, marker="o", ax=ax, **AOI, **SEEDS)  # fmt: skip
    sweep = ordered(dataset.curve)[0]
    for variant in variants:
        points = sweep[sweep["variant"] == variant].groupby("epsilon")[["accuracy", "mean_exit_step"]]
        mean, std = points.mean().sort_values("mean_exit_step"), points.std(ddof=1).fillna(0.0)
        ax.plot(mean["mean_exit_step"], 100 * mean["accuracy"], CUTOFF, color=colors[variant], linewidth=1.2)
        at = mean.loc[dataset.epsilon]
        spread = std.loc[dataset.epsilon]
        ax.errorbar(
            at.mean_exit_step, 100 * at.accuracy, xerr=spread.mean_exit_step, yerr=100 * spread.accuracy,
            color=colors[variant], markeredgecolor="black", **STAR, **ERRORBAR,
        )  # fmt: skip
    T = int(steps["t"].max())
    title = f"{NAMES.get(dataset.name, dataset.name)}{OTHER_CODE if other_code([dataset]) else ''}, T={T}"
    if dataset.kind in KIND_PANELS:
        title += f" ({dataset.kind} data, like {KIND_PANELS[dataset.kind]})"
    ax.set(title=title, xlabel="Timestep t", ylabel="Accuracy [%]")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(title=None, loc="lower right")


def tradeoff_frame(reported: pd.DataFrame, ours: list[AoiDataset]) -> pd.DataFrame:
    """The cutoff of every method, the paper's and aoi's, kind by kind of data: rows kind, source
    ("paper" or "aoi"), dataset (its name in titles), label, method, alpha, speedup (T / mean exit
    step), drop (accuracy at T minus with cutoff, points) and, for aoi, their sample std over seeds
    (``speedup_std``, ``drop_std``; NaN for the paper, which reports neither)."""
    rows = []
    for kind, datasets in KINDS.items():
        for dataset in datasets:
            paper = reported[reported["dataset"] == dataset]
            for method in ("tet", "str"):
                full, cut = (paper[(paper["method"] == method) & (paper["cutoff"] == c)].iloc[0] for c in ("no", "yes"))
                alpha = None if method == "tet" else float(full.alpha)
                rows.append(
                    {"kind": kind, "source": "paper", "dataset": PANELS[dataset], "label": method_label(method, alpha)}
                    | {"method": method, "alpha": alpha, "speedup": full["T"] / cut.avg_timestep_approx}
                    | {"drop": full.accuracy_mean - cut.accuracy_mean}
                )
        for dataset in (d for d in ours if d.kind == kind):
            rows += _aoi_tradeoff(dataset)
    return pd.DataFrame(rows)


def _aoi_tradeoff(dataset: AoiDataset) -> list[dict]:
    """`tradeoff_frame`'s rows of one aoi dataset: per method, mean and std over seeds."""
    summary, variants, _ = ordered(dataset.summary)
    rows = []
    for variant in variants:
        runs = summary[summary["variant"] == variant]
        drop, speedup, first = 100 * runs["accuracy_drop"], runs["speedup"], runs.iloc[0]
        rows.append(
            {"kind": dataset.kind, "source": "aoi", "dataset": NAMES.get(dataset.name, dataset.name), "label": variant}
            | {"method": first.method, "alpha": first.alpha, "speedup": speedup.mean(), "drop": drop.mean()}
            | {"speedup_std": speedup.std(ddof=1), "drop_std": drop.std(ddof=1)}
        )
    return rows


def _tradeoff_panels(axes, points: pd.DataFrame) -> None:
    """The cutoff's speed-up in steps and its accuracy drop, one row per dataset (the paper's and
    aoi's, by kind of data), a mark per method: hollow ★ the paper, filled ★ aoi with bars ± std
    over seeds, methods of a row side by side."""
    rows = list(dict.fromkeys(zip(points["kind"], points["source"], points["dataset"])))
    for ax, (column, xlabel) in zip(axes, (("speedup", "Speed-up in steps (T / mean exit step)"),
                                           ("drop", "Accuracy drop with cutoff [points]"))):  # fmt: skip
        for (kind, source, name), group in points.groupby(["kind", "source", "dataset"], sort=False):
            y = rows.index((kind, source, name))
            for offset, point in zip(_dodge(len(group)), group.itertuples(index=False)):
                paper = source == "paper"
                spread = {} if paper else {"xerr": getattr(point, f"{column}_std")}
                style = PAPER if paper else {"markeredgecolor": "black"}
                color = method_color(point.method, point.alpha)
                ax.errorbar(getattr(point, column), y + offset, color=color, **spread, **STAR, **style, **ERRORBAR)
        kinds = [kind for kind, _, _ in rows]
        for boundary in (i - 0.5 for i in range(1, len(rows)) if kinds[i] != kinds[i - 1]):
            ax.axhline(boundary, color="0.3", linewidth=1)
        ax.set(xlabel=xlabel, ylim=(len(rows) - 0.5, -0.5))
        ax.set_yticks(range(len(rows)), [f"{name} ({source}, {kind})" for kind, source, name in rows])
    axes[1].axvline(0, color="0.5", linewidth=0.8)
    axes[1].tick_params(labelleft=False)  # the rows named once, on the left


def _dodge(count: int, width: float = 0.22) -> list[float]:
    """Vertical offsets of ``count`` marks in one row, centred, ``width`` apart."""
    return [width * (i - (count - 1) / 2) for i in range(count)]


def _key() -> tuple[list, list[str]]:
    """The figure's key to its marks, drawn in grey as they are drawn in colour (filled column-wise:
    the paper's marks, aoi's, aoi's cutoff curve)."""
    gray = "0.35"
    dashed = {"color": gray, "linestyle": FIXED_STEP, "marker": "o"}
    handles = [
        Line2D([], [], **dashed, **PAPER),
        Line2D([], [], color=gray, **STAR, **PAPER),
        (Patch(color=gray, alpha=BAND["alpha"], linewidth=0), Line2D([], [], **dashed, **AOI)),
        Line2D([], [], color=gray, markeredgecolor="black", **STAR),
        Line2D([], [], color=gray, linestyle=CUTOFF, linewidth=1.2),
    ]
    labels = [
        "paper: accuracy at step t (read off its figure)",
        "paper: with cutoff, at its mean exit step (± its std)",
        "aoi: accuracy at step t (band ± std over seeds)",
        "aoi: with cutoff at the stated ε (± std over seeds)",
        "aoi: cutoff curve, ε swept",
    ]
    return handles, labels


def other_code(ours: list[AoiDataset]) -> list[str]:
    """The code fingerprints other than the current aoi's that made runs of ``ours`` (`aoi.results.run_code`)."""
    return sorted({code for dataset in ours for code in dataset.summary["code"]} - {code_fingerprint()})


def caption(ours: list[AoiDataset]) -> str:
    """Markdown caption of `paper_figure` with the aoi datasets ``ours``: what every mark and number is."""
    drawn = ", ".join(f"{d.name} (`{d.profile}`)" for d in ours) or "none"
    seeds = sorted({int(d.summary.groupby("label").size().max()) for d in ours})
    return "\n".join(
        [
            f"**The paper's results figure and aoi's runs** ({PAPER_CITATION}). Colour is the method: "
            "orange TET, TET + STR by its weight α (one colour per α wherever it appears, bluer for smaller α).",
            "",
            "- **Paper** (top rows, hollow markers): its six panels with its axes; accuracy at each fixed step t "
            "(dashed), read off its figure (±0.2 points), and its accuracy with cutoff (☆) at the average timestep "
            "read off its figure (≈), bar = the std in its legend. Its cutoff curves are not digitised, only their "
            "end points; its threshold is not stated; the authors keep the best-test-accuracy checkpoint.",
            f"- **aoi** (middle rows, filled markers), datasets (profile) {drawn}: last-epoch models, "
            f"{' or '.join(map(str, seeds))} seeds; accuracy at each fixed step t (dashed, band ± sample std over "
            "seeds), the cutoff curve (solid: mean accuracy at the mean exit step as ε is swept; exit when "
            "max softmax(Y_t) > 1 − ε) and the stated ε (★, bars ± std over seeds). aoi's datasets stand in for a "
            "kind of data: compare the shapes, not the accuracies.",
            "- **On a common scale** (bottom): per dataset, the paper's and aoi's, the cutoff's speed-up in steps "
            "(T / mean exit step) and its accuracy drop (accuracy at T minus with cutoff, points), a ★ per method.",
            "- The numbers drawn are in the tables below.",
        ]
        + ([f"- {OTHER_CODE} Runs {made_by_other_code(other_code(ours))}."] if other_code(ours) else [])
    )
