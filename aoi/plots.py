"""Figures from tidy result frames: the shared styles, the rule comparison, the STF plot, one
run at a glance, the exit-step histograms, and the two studies (the alpha sweep, the model width).

Inputs are the frames of `aoi.results` (``records_frame``, ``summary_frame``): one row per run
(and per step / epsilon / rule / layer) with the columns that identify a run (dataset, method,
alpha, detach_reset, width, seed), accuracies as fractions. Figures show percent, mean over
seeds, with thin error bars or light bands of the sample std. Each function returns a matplotlib
Figure; `save_figure` writes it (atomic, no timestamps). The paper's figure is `aoi.paper_figure`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from aoi.files import atomic_path
from aoi.methods import RESET_GRADIENTS, method_label, method_order

TET_COLORS = ("#e6841e", "#9c4f00", "#f2b366")  # the paper's orange first
STR_COLORS = ("#2e8b2e", "#1f5fa8", "#8c3fa0", "#7a7a7a", "#b8860b", "#17becf")  # the paper's green first
GRADIENT_COLORS = {False: "#2e8b2e", True: "#1f5fa8"}  # detach_reset -> colour in the study figures
FIXED_STEP, CUTOFF = "--", "-"  # line styles: accuracy at each fixed step t; the cutoff curve (the paper's)
RULE_STYLES = {"confidence": ("-", "confidence (ε sweep)"), "topk": ("-.", "Top-K gap"), "fixed": (":", "fixed T")}
VARIANT_COLUMNS = ["method", "alpha", "detach_reset", "width"]  # what tells two trainings of a dataset apart
TOOLKIT_ALPHA = 0.002  # the authors' SNNCutoff toolkit's default STR weight, marked in the sweep figure
ERRORBAR = {"elinewidth": 0.8, "capsize": 2}


def mean_std(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean and sample std over seeds of ``columns`` grouped by ``by``: columns ``<c>_mean``,
    ``<c>_std`` (std 0 for one seed) and ``seeds``."""
    grouped = frame.groupby(by, sort=False, dropna=False)
    out = grouped[columns].agg(["mean", "std"])
    out.columns = [f"{c}_{stat}" for c, stat in out.columns]
    out = out.fillna({f"{c}_std": 0.0 for c in columns})
    out["seeds"] = grouped.size()
    return out.reset_index()


def _variant_key(row, columns: list[str]) -> tuple:
    """A hashable key of one row's ``columns`` (TET's alpha None, so NaN never splits a key)."""
    values = {"method": row.method, "alpha": None if row.method == "tet" else float(row.alpha)}
    values.update(detach_reset=bool(row.detach_reset), width=float(row.width))
    return tuple(values[column] for column in columns)


def with_variants(frame: pd.DataFrame, across: tuple[str, ...] = ()) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with a ``variant`` column (its legend label) and the variants in legend order.

    A variant is one (method, alpha, detach_reset, width) except the columns in ``across`` (the
    x axis of a figure). Its label is `aoi.methods.method_label`, followed by the reset gradient
    (`aoi.methods.RESET_GRADIENTS`) and the width only where ``frame`` holds more than one of
    them. Order: `aoi.methods.method_order` (TET first, then STR by decreasing alpha), then reset
    gradient, then width.
    """
    columns = [column for column in VARIANT_COLUMNS if column not in across]
    shown = [column for column in ("detach_reset", "width") if column in columns and frame[column].nunique() > 1]
    keys = [_variant_key(row, columns) for row in frame.itertuples(index=False)]

    def label(key: tuple) -> str:
        values = dict(zip(columns, key))
        parts = [method_label(values["method"], values["alpha"])]
        parts += [RESET_GRADIENTS[values["detach_reset"]]] if "detach_reset" in shown else []
        parts += [f"width {values['width']:g}"] if "width" in shown else []
        return ", ".join(parts)

    def order(key: tuple) -> tuple:
        values = dict(zip(columns, key))
        rest = tuple(values[column] for column in columns if column not in ("method", "alpha"))
        return (method_order(values["method"], values["alpha"]), *rest)

    labels = {key: label(key) for key in sorted(set(keys), key=order)}
    return frame.assign(variant=[labels[key] for key in keys]), list(labels.values())


def variant_colors(frame: pd.DataFrame) -> dict[str, str]:
    """Colour per variant label of ``frame`` (a `with_variants` frame): TET oranges, STR greens,
    blues, ... in legend order."""
    colors, counts = {}, {"tet": 0, "str": 0}
    for row in frame.drop_duplicates("variant").itertuples(index=False):
        palette = TET_COLORS if row.method == "tet" else STR_COLORS
        colors[row.variant] = palette[counts[row.method] % len(palette)]
        counts[row.method] += 1
    return colors


def ordered(frame: pd.DataFrame, across: tuple[str, ...] = ()) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """`with_variants` sorted into legend order, and `variant_colors` assigned in that order."""
    frame, variants = with_variants(frame, across)
    frame = frame.iloc[frame["variant"].map(variants.index).argsort(kind="stable")]
    return frame, variants, variant_colors(frame)


def panels(n: int, width: float = 4.6, height: float = 3.4, ncols: int = 3):
    """A figure with ``n`` panels on a grid of at most ``ncols`` columns; extra axes removed."""
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.remove()
    return fig, list(axes.flat)[:n]


def rules_figure(rules: pd.DataFrame) -> Figure:
    """Cutoff rules compared: one panel per dataset, accuracy (%) against mean exit step.

    Args:
        rules: rows dataset, method, alpha, detach_reset, width, seed, rule (confidence, topk,
            fixed, oct), parameter, accuracy, mean_exit_step (`records_frame(runs, "rules")`).
    Colour per method; line style per rule: confidence sweep (solid), Top-K calibration sweep
    (dash-dot), fixed T (dotted); the star is the OCT oracle (mean OCT at the full-T accuracy,
    the latency lower bound). Means over seeds. The methods' legend is in each panel, the rules'
    below the figure.
    """
    datasets = list(dict.fromkeys(rules["dataset"]))
    fig, axes = panels(len(datasets))
    for ax, dataset in zip(axes, datasets):
        subset, variants, colors = ordered(rules[rules["dataset"] == dataset])
        for variant in variants:
            ours = subset[subset["variant"] == variant]
            for rule, (style, _) in RULE_STYLES.items():
                points = mean_std(ours[ours["rule"] == rule], ["parameter"], ["accuracy", "mean_exit_step"])
                points = points.sort_values("mean_exit_step_mean")
                x, y = points["mean_exit_step_mean"], 100 * points["accuracy_mean"]
                ax.plot(x, y, style, color=colors[variant], marker=".", markersize=4)
            oracle = ours[ours["rule"] == "oct"]
            x, y = oracle["mean_exit_step"].mean(), 100 * oracle["accuracy"].mean()
            ax.plot(x, y, "*", markersize=11, color=colors[variant], markeredgecolor="black")
        handles = [Line2D([], [], color=colors[v], lw=6) for v in variants]
        ax.legend(handles, variants, fontsize=8, loc="lower right", title="method", title_fontsize=8)
        ax.set(title=dataset, xlabel="Mean exit step", ylabel="Accuracy [%]")
        ax.grid(alpha=0.3)
    styles = [Line2D([], [], color="black", linestyle=s, lw=1.5) for s, _ in RULE_STYLES.values()]
    styles.append(Line2D([], [], color="gray", marker="*", markersize=11, markeredgecolor="black", linestyle="none"))
    names = [name for _, name in RULE_STYLES.values()] + ["OCT (oracle)"]
    fig.legend(styles, names, loc="lower center", ncol=len(names), fontsize=9, handlelength=3.5, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def stf_figure(cosine: pd.DataFrame, stf: pd.DataFrame) -> Figure:
    """What STR acts on: one row of panels per dataset.

    Args:
        cosine: rows dataset, method, alpha, detach_reset, width, seed, layer, t, cosine_similarity
            (`records_frame(runs, "cosine_similarity")`).
        stf: the same identifying columns, layer, stf (`records_frame(runs, "stf")`).
    One panel per method with cs_t (similarity of step t's soft spikes to the late-step reference)
    against t, one line per layer (darker = deeper); a last panel with the STF (1 / mean_t cs_t)
    per layer for each method, error bars the std over seeds. Means over seeds and test samples.
    """
    datasets = list(dict.fromkeys(cosine["dataset"]))
    cols = 1 + max(with_variants(cosine)[0].groupby("dataset")["variant"].nunique())
    fig, axes = plt.subplots(len(datasets), cols, figsize=(3.6 * cols, 3.0 * len(datasets)), squeeze=False)
    for row, dataset in zip(axes, datasets):
        cs, variants, colors = ordered(cosine[cosine["dataset"] == dataset])
        layers = sorted(cs["layer"].unique())
        shades = plt.cm.viridis_r([0.15 + 0.7 * i / max(1, len(layers) - 1) for i in range(len(layers))])
        for ax, variant in zip(row, variants):
            ours = cs[cs["variant"] == variant]
            for layer, shade in zip(layers, shades):
                line = mean_std(ours[ours["layer"] == layer], ["t"], ["cosine_similarity"])
                ax.plot(line["t"], line["cosine_similarity_mean"], color=shade, marker=".", label=f"layer {layer}")
            ax.set(title=f"{dataset}: {variant}", xlabel="Timestep t", ylabel="cs_t", ylim=(0, 1.02))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        for ax in row[len(variants) : -1]:
            ax.remove()
        ax = row[-1]
        factors = with_variants(stf[stf["dataset"] == dataset])[0]
        for variant in variants:
            line = mean_std(factors[factors["variant"] == variant], ["layer"], ["stf"])
            ax.errorbar(
                line["layer"], line["stf_mean"], yerr=line["stf_std"], color=colors[variant], marker="o", **ERRORBAR
            )
            ax.plot([], [], color=colors[variant], marker="o", label=variant)
        ax.set(title=f"{dataset}: STF per layer", xlabel="Layer", ylabel="STF = 1 / mean_t cs_t", xticks=layers)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def run_figure(metrics: dict) -> Figure:
    """One run at a glance (metrics.json of `aoi.analysis.analyse_run`): accuracy per step and the
    cutoff curve; the exit-step histogram at the stated epsilon beside the OCT histogram."""
    T, epsilon = metrics["T"], metrics["epsilon"]
    steps = pd.DataFrame(metrics["accuracy_per_step"])
    curve = pd.DataFrame(metrics["curve"]).sort_values("mean_exit_step")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(steps["t"], 100 * steps["accuracy"], FIXED_STEP, marker="o", label="fixed step t")
    left.plot(
        curve["mean_exit_step"], 100 * curve["accuracy"], CUTOFF, marker="o", markersize=3, label="cutoff (ε sweep)"
    )
    cutoff = metrics["cutoff"]
    left.plot(cutoff["mean_exit_step"], 100 * cutoff["accuracy"], "k*", markersize=10, label=f"ε = {epsilon:g}")
    left.set(title=metrics["run_name"], xlabel="Timestep", ylabel="Accuracy [%]")
    left.legend(fontsize=8, handlelength=3)
    t = range(1, T + 1)
    right.bar([s - 0.2 for s in t], cutoff["exit_histogram"], 0.4, label=f"exit step, ε = {epsilon:g}")
    right.bar([s + 0.2 for s in t], metrics["oct"]["histogram"], 0.4, label="OCT (oracle)")
    right.set(xlabel="Timestep", ylabel="Samples", xticks=list(t))
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def exit_figure(exits: pd.DataFrame) -> Figure:
    """Exit-step histograms at the stated epsilon: one panel per dataset, one bar per method and
    step t, the percent of test samples that exit at t (mean over seeds, error bars ± std), the
    method's mean exit step in its legend entry.

    Args:
        exits: rows dataset, method, alpha, detach_reset, width, seed, epsilon, t, exits (fraction
            of the test samples) (`aoi.results.exit_frame`, or `Study.exits`: folds pooled).
    """
    datasets = list(dict.fromkeys(exits["dataset"]))
    fig, axes = panels(len(datasets), width=5.4)
    for ax, dataset in zip(axes, datasets):
        frame, variants, colors = ordered(exits[exits["dataset"] == dataset])
        bar = 0.8 / len(variants)
        for i, variant in enumerate(variants):
            ours = frame[frame["variant"] == variant]
            bars = mean_std(ours, ["t"], ["exits"])
            mean_exit = (ours["t"] * ours["exits"]).sum() / ours["exits"].sum()
            x = bars["t"] + (i - (len(variants) - 1) / 2) * bar
            heights, errors = 100 * bars["exits_mean"], 100 * bars["exits_std"]
            label = f"{variant}: mean {mean_exit:.2f}"
            ax.bar(x, heights, bar, yerr=errors, color=colors[variant], label=label, error_kw=ERRORBAR)
        steps = sorted(frame["t"].unique())
        title = f"{dataset}, cutoff at ε = {frame['epsilon'].iloc[0]:g}"
        ax.set(title=title, xlabel="Exit step t", ylabel="Test samples exiting at t [%]", xticks=steps)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


SWEEP_PANELS = (  # summary column, scale, y label
    ("accuracy", 100, "Accuracy at T [%]"),
    ("cutoff_accuracy", 100, "Accuracy with cutoff [%]"),
    ("mean_exit_step", 1, "Mean exit step"),
)


def sweep_figure(summary: pd.DataFrame, paper_alphas: dict[str, list[float]] | None = None) -> Figure:
    """The alpha sweep: one row per dataset; accuracy at T, accuracy with cutoff at the stated
    epsilon and mean exit step against alpha (log axis).

    Args:
        summary: `aoi.results.summary_frame` rows of TET and STR runs.
        paper_alphas: dataset -> the alphas of the paper's legend for the data it stands for
            (`aoi.results.paper_alphas`), marked by dashed vertical lines.
    One line per reset gradient (mean over seeds, band = ± std); TET, alpha = 0, is the
    reference: a dash-dot horizontal line with its band, per gradient. The toolkit's default
    alpha (`TOOLKIT_ALPHA`) is marked by a dotted vertical line.
    """
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig, axes = plt.subplots(len(datasets), 3, figsize=(13.5, 3.3 * len(datasets)), squeeze=False)
    columns = [column for column, _, _ in SWEEP_PANELS]
    for row, dataset in zip(axes, datasets):
        ours = summary[summary["dataset"] == dataset]
        T, epsilon = int(ours["T"].iloc[0]), float(ours["epsilon"].iloc[0])
        for ax, (column, scale, ylabel) in zip(row, SWEEP_PANELS):
            for gradient, runs in ours.groupby("detach_reset", sort=True):
                color, name = GRADIENT_COLORS[bool(gradient)], RESET_GRADIENTS[bool(gradient)]
                str_runs = runs[runs["method"] == "str"]
                if len(str_runs):  # a study of TET runs alone draws TET's lines only
                    line = mean_std(str_runs, ["alpha"], columns).sort_values("alpha")
                    mean, std = scale * line[f"{column}_mean"], scale * line[f"{column}_std"]
                    ax.plot(line["alpha"], mean, CUTOFF, color=color, marker="o", markersize=4, label=f"STR, {name}")
                    ax.fill_between(line["alpha"], mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
                tet = runs.loc[runs["method"] == "tet", column] * scale
                if len(tet):
                    center, spread = tet.mean(), (tet.std() if len(tet) > 1 else 0.0)
                    ax.axhline(center, color=color, linestyle="-.", linewidth=1, label=f"TET (α = 0), {name}")
                    ax.axhspan(center - spread, center + spread, color=color, alpha=0.08, linewidth=0)
            ax.axvline(TOOLKIT_ALPHA, color="gray", linestyle=":", label=f"toolkit default α = {TOOLKIT_ALPHA:g}")
            for alpha in (paper_alphas or {}).get(dataset, []):
                ax.axvline(alpha, color="black", linestyle="--", linewidth=0.8, label=f"paper's α = {alpha:g}")
            ax.set(xscale="log", xlabel="α (STR weight)", ylabel=ylabel, title=f"{dataset} (T={T})")
            ax.grid(alpha=0.3)
        row[1].set_title(f"{dataset} (T={T}), cutoff at ε = {epsilon:g}")
        row[0].legend(fontsize=7, handlelength=3)
    fig.tight_layout()
    return fig


def capacity_figure(summary: pd.DataFrame) -> Figure:
    """Model width: one row per dataset; accuracy at T, accuracy with cutoff at the stated
    epsilon and mean exit step against the width multiplier (log2 axis), one line per method
    (`with_variants` without the width), mean over seeds with std error bars."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig, axes = plt.subplots(len(datasets), 3, figsize=(13.5, 3.3 * len(datasets)), squeeze=False)
    columns = [column for column, _, _ in SWEEP_PANELS]
    for row, dataset in zip(axes, datasets):
        ours = summary[summary["dataset"] == dataset]
        frame, variants, colors = ordered(ours, across=("width",))
        epsilon = float(ours["epsilon"].iloc[0])
        for ax, (column, scale, ylabel) in zip(row, SWEEP_PANELS):
            for variant in variants:
                line = mean_std(frame[frame["variant"] == variant], ["width"], columns).sort_values("width")
                mean, std = scale * line[f"{column}_mean"], scale * line[f"{column}_std"]
                ax.errorbar(line["width"], mean, yerr=std, color=colors[variant], marker="o", label=variant, **ERRORBAR)
            widths = sorted(frame["width"].unique())
            ax.set(xscale="log", xlabel="Model width (x channels)", ylabel=ylabel, title=f"{dataset}")
            ax.set_xticks(widths, [f"{w:g}" for w in widths])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
        row[1].set_title(f"{dataset}, cutoff at ε = {epsilon:g}")
        row[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, stem: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` (150 dpi) and ``<stem>.pdf``, atomically, without timestamps."""
    paths = []
    for fmt, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        path = Path(f"{stem}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    return paths
