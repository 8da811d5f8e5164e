"""The paper's figure, the rule comparison, the STF plot and the tables, from tidy result frames.

Inputs are the frames of `aoi.results` (``records_frame``, ``summary_frame``): one row per run
(and per step / epsilon / rule / layer), accuracies as fractions. Figures show percent, mean
over seeds with a +-std band. Each function returns a matplotlib Figure or a DataFrame; saving
goes through `save_figure` / `aoi.files.write_csv` (atomic).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from aoi.files import atomic_path, write_text

TET_COLOR = "#e6841e"  # the paper's orange
STR_COLORS = ("#2e8b2e", "#1f5fa8", "#8c3fa0", "#7a7a7a")  # the paper's green first, then others
RULE_STYLES = {"confidence": "-", "topk": "-.", "fixed": ":"}


def mean_std(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean and sample std over seeds of ``columns`` grouped by ``by``: columns ``<c>_mean``,
    ``<c>_std`` (std 0 for one seed) and ``seeds``."""
    grouped = frame.groupby(by, sort=False, dropna=False)
    out = grouped[columns].agg(["mean", "std"])
    out.columns = [f"{c}_{stat}" for c, stat in out.columns]
    out = out.fillna({f"{c}_std": 0.0 for c in columns})
    out["seeds"] = grouped.size()
    return out.reset_index()


def method_colors(labels) -> dict[str, str]:
    """Colour per method label: TET orange, STR alphas green, blue, ... in order of appearance."""
    colors, strs = {}, 0
    for label in dict.fromkeys(labels):
        if label == "TET":
            colors[label] = TET_COLOR
        else:
            colors[label] = STR_COLORS[strs % len(STR_COLORS)]
            strs += 1
    return colors


def _panels(n: int, width: float = 4.6, height: float = 3.4, ncols: int = 3):
    """A figure with ``n`` panels on a grid of at most ``ncols`` columns; extra axes removed."""
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def _ordered(labels) -> list[str]:
    """Distinct method labels, TET first, then STR(alpha) by decreasing alpha."""

    def key(label: str):
        return (0, 0.0) if label == "TET" else (1, -float(label[len("STR(") : -1]))

    return sorted(dict.fromkeys(labels), key=key)


def accuracy_figure(
    per_step: pd.DataFrame,
    curve: pd.DataFrame,
    epsilon: float,
    paper_reported: pd.DataFrame | None = None,
    paper_per_step: pd.DataFrame | None = None,
) -> Figure:
    """The paper's figure: one panel per dataset, accuracy (%) against timestep.

    Args:
        per_step: rows dataset, label, seed, t, accuracy (`records_frame(runs, "accuracy_per_step")`).
        curve: rows dataset, label, seed, epsilon, accuracy, mean_exit_step (`records_frame(runs, "curve")`).
        epsilon: the stated threshold, marked on each cutoff curve; its accuracy is in the legend.
        paper_reported, paper_per_step: the paper's numbers (`aoi.results.load_paper`), overlaid
            (hollow markers) on panels whose dataset the paper has.
    Per method: accuracy at each fixed step t (dashed, mean +- std band over seeds) and the cutoff
    curve, mean accuracy against mean exit step as epsilon is swept (solid), as in the paper.
    """
    datasets = list(dict.fromkeys(per_step["dataset"]))
    fig, axes = _panels(len(datasets))
    for ax, dataset in zip(axes, datasets):
        steps = per_step[per_step["dataset"] == dataset]
        sweep = curve[curve["dataset"] == dataset]
        colors = method_colors(_ordered(steps["label"]))
        for label in _ordered(steps["label"]):
            color = colors[label]
            marker = "^" if label == "TET" else "o"
            fixed = mean_std(steps[steps["label"] == label], ["t"], ["accuracy"])
            final = fixed.iloc[-1]
            ax.plot(
                fixed["t"],
                100 * fixed["accuracy_mean"],
                "--",
                color=color,
                marker=marker,
                markersize=4,
                label=f"{label} ({100 * final.accuracy_mean:.2f}±{100 * final.accuracy_std:.2f})",
            )
            ax.fill_between(
                fixed["t"],
                100 * (fixed["accuracy_mean"] - fixed["accuracy_std"]),
                100 * (fixed["accuracy_mean"] + fixed["accuracy_std"]),
                color=color,
                alpha=0.2,
            )
            cut = mean_std(sweep[sweep["label"] == label], ["epsilon"], ["accuracy", "mean_exit_step"])
            cut = cut.sort_values("mean_exit_step_mean")
            stated = cut[cut["epsilon"] == epsilon].iloc[0]
            ax.plot(
                cut["mean_exit_step_mean"],
                100 * cut["accuracy_mean"],
                "-",
                color=color,
                marker=marker,
                markersize=3,
                label=f"{label}, w/ cutoff ({100 * stated.accuracy_mean:.2f}±{100 * stated.accuracy_std:.2f})",
            )
            ax.fill_between(
                cut["mean_exit_step_mean"],
                100 * (cut["accuracy_mean"] - cut["accuracy_std"]),
                100 * (cut["accuracy_mean"] + cut["accuracy_std"]),
                color=color,
                alpha=0.2,
            )
            ax.plot(
                stated.mean_exit_step_mean,
                100 * stated.accuracy_mean,
                marker="*",
                markersize=12,
                color=color,
                markeredgecolor="black",
                linestyle="none",
            )
        _overlay_paper(ax, dataset, colors, paper_reported, paper_per_step)
        ax.set(
            title=f"{dataset} (T={int(steps['t'].max())}; ★ ε={epsilon:g})", xlabel="Timestep", ylabel="Accuracy [%]"
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _overlay_paper(
    ax, dataset: str, colors: dict, reported: pd.DataFrame | None, per_step: pd.DataFrame | None
) -> None:
    """The paper's per-step accuracies (hollow markers, dotted) and reported cutoff points (hollow
    stars) for ``dataset``, if the paper has it."""
    if reported is None or per_step is None or dataset not in set(reported["dataset"]):
        return
    rows = reported[reported["dataset"] == dataset]
    for method in ("tet", "str"):
        row = rows[(rows["method"] == method) & (rows["cutoff"] == "yes")].iloc[0]
        label = "TET" if method == "tet" else f"STR({row.alpha:g})"
        color = colors.get(label, "gray")
        points = per_step[(per_step["dataset"] == dataset) & (per_step["method"] == method)].sort_values("t")
        ax.plot(
            points["t"],
            points["accuracy_approx"],
            ":",
            color=color,
            marker="s",
            markerfacecolor="none",
            markersize=4,
            label=f"paper {label}",
        )
        ax.plot(
            row.avg_timestep_approx,
            row.accuracy_mean,
            marker="*",
            markersize=11,
            markerfacecolor="none",
            color=color,
            linestyle="none",
            label=f"paper {label}, w/ cutoff",
        )


def rules_figure(rules: pd.DataFrame) -> Figure:
    """Cutoff rules compared: one panel per dataset, accuracy (%) against mean exit step.

    Args:
        rules: rows dataset, label, seed, rule (confidence, topk, fixed, oct), parameter, accuracy,
            mean_exit_step (`records_frame(runs, "rules")`).
    Per method colour: confidence sweep (solid), Top-K calibration sweep (dash-dot), fixed T
    (dotted), and the OCT oracle (star: mean OCT at the full-T accuracy, the latency lower bound).
    Means over seeds.
    """
    datasets = list(dict.fromkeys(rules["dataset"]))
    fig, axes = _panels(len(datasets))
    names = {"confidence": "confidence", "topk": "Top-K gap", "fixed": "fixed T"}
    for ax, dataset in zip(axes, datasets):
        subset = rules[rules["dataset"] == dataset]
        colors = method_colors(_ordered(subset["label"]))
        for label in _ordered(subset["label"]):
            ours = subset[subset["label"] == label]
            for rule, style in RULE_STYLES.items():
                points = mean_std(ours[ours["rule"] == rule], ["parameter"], ["accuracy", "mean_exit_step"])
                points = points.sort_values("mean_exit_step_mean")
                ax.plot(
                    points["mean_exit_step_mean"],
                    100 * points["accuracy_mean"],
                    style,
                    color=colors[label],
                    marker=".",
                    label=f"{label}, {names[rule]}",
                )
            oracle = ours[ours["rule"] == "oct"]
            ax.plot(
                oracle["mean_exit_step"].mean(),
                100 * oracle["accuracy"].mean(),
                marker="*",
                markersize=12,
                color=colors[label],
                markeredgecolor="black",
                linestyle="none",
                label=f"{label}, OCT (oracle)",
            )
        ax.set(title=dataset, xlabel="Mean exit step", ylabel="Accuracy [%]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right", ncol=2)
    fig.tight_layout()
    return fig


def stf_figure(cosine: pd.DataFrame, stf: pd.DataFrame) -> Figure:
    """What STR acts on: one row of panels per dataset.

    Args:
        cosine: rows dataset, label, seed, layer, t, cosine_similarity (`records_frame(runs, "cosine_similarity")`).
        stf: rows dataset, label, seed, layer, stf (`records_frame(runs, "stf")`).
    One panel per method with cs_t (similarity of step t's soft spikes to the late-step reference)
    against t, one line per layer (darker = deeper); a last panel with the STF (1 / mean_t cs_t)
    per layer for each method. Means over seeds and test samples.
    """
    datasets = list(dict.fromkeys(cosine["dataset"]))
    cols = 1 + max(cosine.groupby("dataset")["label"].nunique())
    fig, axes = plt.subplots(len(datasets), cols, figsize=(3.6 * cols, 3.0 * len(datasets)), squeeze=False)
    for row, dataset in zip(axes, datasets):
        cs = cosine[cosine["dataset"] == dataset]
        labels = _ordered(cs["label"])
        colors = method_colors(labels)
        layers = sorted(cs["layer"].unique())
        shades = plt.cm.viridis_r([0.15 + 0.7 * i / max(1, len(layers) - 1) for i in range(len(layers))])
        for ax, label in zip(row, labels):
            ours = cs[cs["label"] == label]
            for layer, shade in zip(layers, shades):
                line = mean_std(ours[ours["layer"] == layer], ["t"], ["cosine_similarity"])
                ax.plot(line["t"], line["cosine_similarity_mean"], color=shade, marker=".", label=f"layer {layer}")
            ax.set(title=f"{dataset}: {label}", xlabel="Timestep t", ylabel="cs_t", ylim=(0, 1.02))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
        for ax in row[len(labels) : -1]:
            ax.remove()
        ax = row[-1]
        factors = stf[stf["dataset"] == dataset]
        for label in labels:
            line = mean_std(factors[factors["label"] == label], ["layer"], ["stf"])
            ax.errorbar(
                line["layer"],
                line["stf_mean"],
                yerr=line["stf_std"],
                color=colors[label],
                marker="o",
                capsize=3,
                label=label,
            )
        ax.set(title=f"{dataset}: STF per layer", xlabel="Layer", ylabel="STF = 1 / mean_t cs_t")
        ax.set_xticks(layers)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def run_figure(metrics: dict) -> Figure:
    """One run at a glance (metrics.json of `aoi.analysis.analyse_run`): accuracy per step and the
    cutoff curve; the exit-step histogram at the stated epsilon beside the OCT histogram."""
    T = metrics["T"]
    steps = pd.DataFrame(metrics["accuracy_per_step"])
    curve = pd.DataFrame(metrics["curve"]).sort_values("mean_exit_step")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(steps["t"], 100 * steps["accuracy"], "--o", label="fixed step")
    left.plot(curve["mean_exit_step"], 100 * curve["accuracy"], "-o", markersize=3, label="cutoff (ε sweep)")
    left.plot(
        metrics["cutoff"]["mean_exit_step"],
        100 * metrics["cutoff"]["accuracy"],
        "k*",
        markersize=10,
        label=f"ε={metrics['epsilon']:g}",
    )
    left.set(title=metrics["run_name"], xlabel="Timestep", ylabel="Accuracy [%]")
    left.legend(fontsize=7)
    t = range(1, T + 1)
    width = 0.4
    right.bar(
        [s - width / 2 for s in t],
        metrics["cutoff"]["exit_histogram"],
        width,
        label=f"exit step, ε={metrics['epsilon']:g}",
    )
    right.bar([s + width / 2 for s in t], metrics["oct"]["histogram"], width, label="OCT (oracle)")
    right.set(xlabel="Timestep", ylabel="Samples", xticks=list(t))
    right.legend(fontsize=7)
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


# ---------------------------------------------------------------------------------- tables


def _pm(mean: float, std: float, digits: int = 2, scale: float = 1.0) -> str:
    """``mean±std`` of scaled values with ``digits`` decimals."""
    return f"{scale * mean:.{digits}f}±{scale * std:.{digits}f}"


SUMMARY_COLUMNS = {  # column of summary_frame -> (table heading, scale, decimals)
    "accuracy": ("accuracy (%)", 100, 2),
    "cutoff_accuracy": ("w/ cutoff (%)", 100, 2),
    "mean_exit_step": ("mean exit step", 1, 2),
    "speedup": ("speed-up (steps)", 1, 2),
    "accuracy_drop": ("accuracy drop (pp)", 100, 2),
    "mean_oct": ("mean OCT", 1, 2),
    "sops_full": ("SOPs full (M)", 1e-6, 3),
    "sops_cutoff": ("SOPs w/ cutoff (M)", 1e-6, 3),
    "energy_pj_full": ("energy full (µJ)", 1e-6, 3),
    "energy_pj_cutoff": ("energy w/ cutoff (µJ)", 1e-6, 3),
    "wallclock_speedup": ("wall-clock speed-up", 1, 2),
}


def summary_table(
    summary: pd.DataFrame, paper_reported: pd.DataFrame | None = None, references: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The results table: per dataset and method, mean±std over seeds of every column of
    ``SUMMARY_COLUMNS`` at the stated epsilon, each dataset followed by the paper's rows.

    Args:
        summary: `aoi.results.summary_frame` rows (one per run).
        paper_reported: the paper's reported.csv (`aoi.results.load_paper`); None for no paper rows.
        references: rows dataset, paper_dataset (`aoi.results.profile_datasets_frame`): which
            paper datasets to show after each of ours (the same name when the profile is the paper's).
    Returns:
        a frame of strings: dataset, source, method, seeds, then the headings of SUMMARY_COLUMNS.
        Paper rows carry only what the paper reports (accuracy, w/ cutoff, average timestep read off
        its figure, the speed-up and drop that follow); the rest is "–".
    """
    stats = mean_std(summary, ["dataset", "T", "label"], list(SUMMARY_COLUMNS))
    rows = []
    for dataset in dict.fromkeys(stats["dataset"]):
        ours = stats[stats["dataset"] == dataset].set_index("label")
        for row in ours.loc[_ordered(ours.index)].reset_index().itertuples():
            rows.append(
                {
                    "dataset": dataset,
                    "source": f"ours (T={row.T})",
                    "method": row.label,
                    "seeds": str(row.seeds),
                    **{
                        heading: _pm(getattr(row, f"{c}_mean"), getattr(row, f"{c}_std"), digits, scale)
                        for c, (heading, scale, digits) in SUMMARY_COLUMNS.items()
                    },
                }
            )
        if paper_reported is not None and references is not None:
            for paper_dataset in references.loc[references["dataset"] == dataset, "paper_dataset"]:
                rows += _paper_rows(paper_reported, paper_dataset)
    return pd.DataFrame(rows)


def _paper_rows(reported: pd.DataFrame, dataset: str) -> list[dict]:
    """The paper's rows for ``dataset`` in the summary table's headings."""
    rows = []
    ours = reported[reported["dataset"] == dataset]
    for method in ("tet", "str"):
        full = ours[(ours["method"] == method) & (ours["cutoff"] == "no")].iloc[0]
        cut = ours[(ours["method"] == method) & (ours["cutoff"] == "yes")].iloc[0]
        label = "TET" if method == "tet" else f"STR({full.alpha:g})"
        row = {heading: "–" for heading, _, _ in SUMMARY_COLUMNS.values()}
        row.update(
            {
                "dataset": dataset,
                "source": f"paper (T={full['T']})",
                "method": label,
                "seeds": "?",
                "accuracy (%)": f"{full.accuracy_mean:.2f}±{full.accuracy_std:.2f}",
                "w/ cutoff (%)": f"{cut.accuracy_mean:.2f}±{cut.accuracy_std:.2f}",
                "mean exit step": f"≈{cut.avg_timestep_approx:g}",
                "speed-up (steps)": f"≈{full['T'] / cut.avg_timestep_approx:.2f}",
                "accuracy drop (pp)": f"{full.accuracy_mean - cut.accuracy_mean:.2f}",
            }
        )
        rows.append(row)
    return rows


def per_step_table(per_step: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (%) at each fixed step, mean±std over seeds: one row per dataset and method,
    one column per step t (``t1``, ``t2``, ...; empty beyond a dataset's T)."""
    stats = mean_std(per_step, ["dataset", "label", "t"], ["accuracy"])
    stats["cell"] = [_pm(m, s, 2, 100) for m, s in zip(stats["accuracy_mean"], stats["accuracy_std"])]
    table = stats.pivot(index=["dataset", "label"], columns="t", values="cell").fillna("")
    table.columns = [f"t{t}" for t in table.columns]
    order = [
        (d, label)
        for d in dict.fromkeys(per_step["dataset"])
        for label in _ordered(per_step.loc[per_step["dataset"] == d, "label"])
    ]
    return table.loc[order].reset_index().rename(columns={"label": "method"})


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub Markdown table (cells as they are)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def table_notes(profile: dict) -> list[str]:
    """What a reader must know beside the tables of ``profile`` (a loaded profile dict)."""
    notes = [
        f"Ours: mean±std over the seeds run (column seeds; the profile's seeds are {profile['seeds']}), "
        "last-epoch models (the test set never selects), "
        f"cutoff at the stated ε = {profile['epsilon']:g} (exit when max softmax(Y_t) > 1 − ε), fixed before "
        "any run. SOPs and energy per test sample (E = 4.6 pJ × MACs + 0.9 pJ × SOPs); wall-clock speed-up of "
        "streaming early exit over full-T inference, measured on this machine's CPU.",
        "Paper: accuracies from its figure legend; average timesteps read off its figure (≈); its cutoff "
        "threshold is not stated; the authors' toolkit keeps the best-test-accuracy checkpoint.",
    ]
    stand_ins = {
        name: entry.get("paper", [])
        for name, entry in profile["datasets"].items()
        if entry.get("paper") and entry.get("paper") != [name]
    }
    if stand_ins:
        notes.append(
            "The datasets differ: "
            + "; ".join(f"{name} stands in for {', '.join(refs)}" for name, refs in stand_ins.items())
            + ". The paper's rows are a reference for the kind of data: compare the shape "
            "(accuracy drop, speed-up), not the accuracies."
        )
    return notes


def write_table(table: pd.DataFrame, stem: str | os.PathLike, title: str, notes=()) -> list[Path]:
    """Write ``table`` as ``<stem>.csv`` and ``<stem>.md`` (title, notes, Markdown table), atomically."""
    csv, md = Path(f"{stem}.csv"), Path(f"{stem}.md")
    write_text(csv, table.to_csv(index=False))
    write_text(md, f"# {title}\n\n" + "".join(f"- {note}\n" for note in notes) + "\n" + markdown_table(table))
    return [csv, md]
