"""Paired differences between methods and their confidence intervals: "does STR help?" asked of
runs trained both ways on the same units (a unit: one seed, or one seed and fold of a
cross-validation: the same initialisation seed, training data and test data). Also which STR
alpha validation data choose (`chosen_alphas`), the variant `CHOSEN` compared beside each alpha.

The interval is the paired t interval: for the differences d_1 .. d_n of n units,
d̄ ± t_{n-1, (1+c)/2} · s_d / √n, s_d their sample standard deviation, c the confidence. It
assumes the units' differences independent and about normal; the folds of one seed share most of
their training data, which makes an interval over (seed, fold) units somewhat too narrow
(Nadeau & Bengio 2003, "Inference for the generalization error").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from aoi.methods import method_label, method_order

CONFIDENCE = 0.95
METHOD = "paired t interval"
CONTEXT = ["dataset", "T", "detach_reset", "width"]  # what a STR run and the TET run it is paired with share
UNITS = ["seed", "fold"]  # what pairs them (fold 0 for runs without cross-validation)
BASELINE = method_label("tet")
CHOSEN = "STR(α chosen on validation)"


@dataclass(frozen=True)
class Interval:
    """Mean of n paired differences and its confidence interval [low, high] (NaN for n = 1)."""

    n: int
    mean: float
    low: float
    high: float


def paired_t_interval(differences, confidence: float = CONFIDENCE) -> Interval:
    """The paired t interval of ``differences`` (one per unit, e.g. STR minus TET of one seed)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0 or not np.isfinite(d).all():
        raise ValueError(f"differences must be a non-empty list of finite numbers, got {differences!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    mean = float(d.mean())
    if len(d) == 1:
        return Interval(1, mean, math.nan, math.nan)
    half = float(stats.t.ppf((1 + confidence) / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return Interval(len(d), mean, mean - half, mean + half)


def paired_differences(
    frame: pd.DataFrame, columns: list[str], context: list[str], units: list[str], baseline: str
) -> pd.DataFrame:
    """Each run's ``columns`` minus those of the ``baseline`` run of the same unit.

    Args:
        frame: one row per run with a ``variant`` column (e.g. "TET", "STR(0.5)"), the ``context``
            columns (what both runs share: dataset, T, ...), the ``units`` columns (seed, fold) and
            ``columns``.
        baseline: the variant subtracted.
    Returns:
        one row per (context, variant other than the baseline, unit) that has a baseline run:
        context, variant, units, and the differences under the names of ``columns``.
    """
    keys = [*context, *units]
    base = frame.loc[frame["variant"] == baseline, [*keys, *columns]]
    if base.duplicated(keys).any():
        raise ValueError(f"more than one {baseline} run per {', '.join(keys)}: the units do not identify a run")
    others = frame.loc[frame["variant"] != baseline, [*keys, "variant", *columns]]
    paired = others.merge(base, on=keys, suffixes=("", "_baseline"))
    for column in columns:
        paired[column] = paired[column] - paired[f"{column}_baseline"]
    return paired[[*context, "variant", *units, *columns]]


def intervals(
    differences: pd.DataFrame, columns: list[str], by: list[str], confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """`paired_t_interval` of each of ``columns`` per group ``by`` of ``differences``: columns
    ``n``, ``<c>_mean``, ``<c>_low``, ``<c>_high``; groups in order of appearance."""
    rows = []
    for key, group in differences.groupby(by, sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["n"] = len(group)
        for column in columns:
            found = paired_t_interval(group[column], confidence)
            row.update({f"{column}_mean": found.mean, f"{column}_low": found.low, f"{column}_high": found.high})
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "n", *(f"{c}_{s}" for c in columns for s in ("mean", "low", "high"))])


def chosen_alphas(summary: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The STR alpha chosen on validation data per group ``by`` of ``summary``'s STR runs
    (`aoi.results.summary_frame` rows): the best mean validation accuracy with cutoff, ties broken
    by fewer mean validation exit steps, then by the first alpha met. Rows ``by`` and ``alpha``."""
    scores = ["val_cutoff_accuracy", "val_mean_exit_step"]
    runs = summary[summary["method"] == "str"]
    means = runs.groupby([*by, "alpha"], sort=False, dropna=False)[scores].mean().reset_index()
    ranked = means.sort_values(scores, ascending=[False, True], kind="stable")
    return ranked.drop_duplicates(by).sort_index()[[*by, "alpha"]]


def with_variants(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` (one row per run) with a ``variant`` column, `aoi.methods.method_label`, and,
    when its STR runs held validation data out, the runs of the alpha chosen per context and fold
    (each fold on its own validation data: `chosen_alphas`) once more as the variant `CHOSEN`."""
    frame = summary.assign(variant=[method_label(m, a) for m, a in zip(summary["method"], summary["alpha"])])
    runs = frame[frame["method"] == "str"]
    if runs["val_cutoff_accuracy"].isna().all():
        return frame
    chosen = runs.merge(chosen_alphas(runs, [*CONTEXT, "fold"]), on=[*CONTEXT, "fold", "alpha"])
    return pd.concat([frame, chosen.assign(variant=CHOSEN)], ignore_index=True)


def compare(frame: pd.DataFrame, columns: list[str], confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Every variant of a `with_variants` frame against `BASELINE`: `intervals` of the differences
    of ``columns`` per context and variant, with ``chosen`` (for `CHOSEN`: the alphas chosen and by
    how many folds each, "0.002 ×4, 0.02 ×1"; else ""). Order: datasets as they come, reset
    gradient, width, then STR by decreasing alpha (`aoi.methods.method_order`), `CHOSEN` last."""
    differences = paired_differences(frame, columns, CONTEXT, UNITS, BASELINE)
    found = intervals(differences, columns, [*CONTEXT, "variant"], confidence)
    datasets = list(dict.fromkeys(frame["dataset"]))
    ranks = {v: method_order(m, a) for v, m, a in zip(frame["variant"], frame["method"], frame["alpha"])}
    ranks[CHOSEN] = (2, 0.0)
    keys = list(
        zip(found["dataset"].map(datasets.index), found["detach_reset"], found["width"], found["variant"].map(ranks))
    )
    found = found.iloc[sorted(range(len(found)), key=keys.__getitem__)].reset_index(drop=True)
    picks = frame[frame["variant"] == CHOSEN].drop_duplicates([*CONTEXT, "fold"])
    counts = picks.groupby(CONTEXT, dropna=False)["alpha"].value_counts().sort_index()
    found["chosen"] = [
        ", ".join(f"{a:g}" + (f" ×{n}" if len(counts[c]) > 1 else "") for a, n in counts[c].items())
        if v == CHOSEN
        else ""
        for c, v in zip(found[CONTEXT].itertuples(index=False, name=None), found["variant"])
    ]
    return found
