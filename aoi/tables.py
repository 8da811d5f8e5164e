"""The tables, from tidy result frames: accuracy and cost per method beside the paper's rows,
accuracy per step, the cutoff curves, the alpha selected on validation data, STR minus TET paired;
`aoi.table_render` writes them as CSV and Markdown (for the README) and renders them as HTML.

Inputs are the frames of `aoi.results`; cells are strings, ``mean±std`` over seeds (sample std,
0 for one seed). Every row of ours names its dataset, method (`aoi.methods.method_label`, which
carries alpha), reset gradient (`aoi.methods.RESET_GRADIENTS`) and, where it varies, the width;
its method is marked `OTHER_CODE` when a run of it was made by other code than the current aoi
(`aoi.provenance.code_fingerprint`; the frames' ``code`` column), and `code_note` says so.
"""

from __future__ import annotations

import pandas as pd

from aoi import paired
from aoi.energy import E_AC_PJ, E_MAC_PJ
from aoi.methods import RESET_GRADIENTS, method_label
from aoi.plots import mean_std, with_variants
from aoi.provenance import code_fingerprint
from aoi.results import OTHER_CODE, made_by_other_code

ACCURACY_COLUMNS = {  # summary_frame column -> (heading, scale, decimals)
    "accuracy": ("accuracy at T (%)", 100, 2),
    "cutoff_accuracy": ("w/ cutoff (%)", 100, 2),
    "accuracy_drop": ("drop (pp)", 100, 2),
    "mean_exit_step": ("mean exit step", 1, 2),
    "mean_oct": ("mean OCT", 1, 2),
}
COST_COLUMNS = {
    "speedup": ("speed-up (steps)", 1, 2),
    "sops_full": ("SOPs at T (M)", 1e-6, 3),
    "sops_cutoff": ("SOPs w/ cutoff (M)", 1e-6, 3),
    "energy_pj_full": ("energy at T (µJ)", 1e-6, 3),
    "energy_pj_cutoff": ("energy w/ cutoff (µJ)", 1e-6, 3),
    "wallclock_speedup": ("wall-clock speed-up", 1, 2),
}
VARIANT = ["method", "alpha", "detach_reset", "width"]
PAPER_GRADIENT = "toolkit's (assumed)"  # the paper does not say; its authors' toolkit keeps the reset in the graph


def number(value: float, digits: int = 2, scale: float = 1.0) -> str:
    """``scale * value`` with ``digits`` decimals, the one number format of every table; a value
    that rounds to zero has no sign (never "-0.00")."""
    return f"{round(scale * value, digits) + 0.0:.{digits}f}"


def _pm(mean: float, std: float, digits: int = 2, scale: float = 1.0) -> str:
    """``mean±std`` of scaled values with ``digits`` decimals (`number`); "–" when nothing was measured (NaN)."""
    if mean is None or pd.isna(mean):
        return "–"
    return f"{number(mean, digits, scale)}±{number(std, digits, scale)}"


def grouped(frame: pd.DataFrame, by: list[str], columns: list[str]) -> list[dict]:
    """`mean_std` of ``columns`` per dataset, ``by`` and variant, as records in table order
    (datasets as they come, then `aoi.plots.with_variants` order), each with its identifying
    cells: ``dataset``, ``method``, ``reset gradient`` and ``width`` where the frame's widths vary,
    and ``variant`` (the legend label of `aoi.plots.with_variants`); both marked `OTHER_CODE` where
    a run was made by other code."""
    stats, variants = with_variants(
        mean_std(_with_other_code(frame), ["dataset", *by, *VARIANT], [*columns, "other_code"])
    )
    datasets = list(dict.fromkeys(stats["dataset"]))
    stats["_order"] = [(datasets.index(d), variants.index(v)) for d, v in zip(stats["dataset"], stats["variant"])]
    records = []
    for row in stats.sort_values("_order", kind="stable").to_dict("records"):
        mark = _mark(row)
        ids = {"dataset": row["dataset"], "method": method_label(row["method"], row["alpha"]) + mark}
        ids["variant"] = row["variant"] + mark
        ids["reset gradient"] = RESET_GRADIENTS[bool(row["detach_reset"])]
        if frame["width"].nunique() > 1:
            ids["width"] = f"{row['width']:g}"
        records.append({**{key: value for key, value in row.items() if key not in VARIANT}, **ids})
    return records


def _with_other_code(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a column ``other_code``: 1.0 for a run made by other code than the current aoi, else 0.0."""
    return frame.assign(other_code=(frame["code"] != code_fingerprint()).astype(float))


def _mark(row: dict, suffix: str = "") -> str:
    """`OTHER_CODE` when a run of a `mean_std` row (its ``other_code_mean<suffix>``) was made by other code, else ""."""
    return OTHER_CODE if row[f"other_code_mean{suffix}"] > 0 else ""


def code_note(frame: pd.DataFrame) -> list[str]:
    """The note on `OTHER_CODE` when a run of ``frame`` was made by other code than the current aoi, naming both."""
    other = sorted(set(frame["code"]) - {code_fingerprint()})
    if not other:
        return []
    return [f"{OTHER_CODE} {made_by_other_code(other)}: rerun ./reproduce.sh to make them again."]


def _table(summary: pd.DataFrame, spec: dict, paper_reported, references, paper_cells) -> pd.DataFrame:
    """Rows of ours with the ``spec`` columns, each dataset followed by the paper's rows for it."""
    records, rows = grouped(summary, ["T"], list(spec)), []
    for dataset in dict.fromkeys(record["dataset"] for record in records):
        for row in (record for record in records if record["dataset"] == dataset):
            ids = {k: row[k] for k in ("dataset", "method", "reset gradient", "width") if k in row}
            cells = {heading: _pm(row[f"{c}_mean"], row[f"{c}_std"], d, s) for c, (heading, s, d) in spec.items()}
            rows.append({**ids, "source": f"aoi (T={row['T']})", "seeds": str(row["seeds"]), **cells})
        if paper_reported is not None and references is not None:
            for paper_dataset in references.loc[references["dataset"] == dataset, "paper_dataset"]:
                rows += [paper_cells(full, cut) for full, cut in _paper_pairs(paper_reported, paper_dataset)]
    table = pd.DataFrame(rows)
    front = [c for c in ("dataset", "source", "method", "reset gradient", "width", "seeds") if c in table]
    return table[front + [heading for heading, _, _ in spec.values()]].fillna("–")


def _paper_pairs(reported: pd.DataFrame, dataset: str):
    """(row without cutoff, row with cutoff) of the paper's TET and STR on ``dataset``."""
    rows = reported[reported["dataset"] == dataset]
    for method in ("tet", "str"):
        ours = rows[rows["method"] == method]
        yield ours[ours["cutoff"] == "no"].iloc[0], ours[ours["cutoff"] == "yes"].iloc[0]


def _paper_ids(full) -> dict:
    label = method_label(full["method"], full["alpha"])
    source = f"paper (T={full['T']})"
    return {
        "dataset": full["dataset"],
        "source": source,
        "method": label,
        "reset gradient": PAPER_GRADIENT,
        "seeds": "?",
    }


def accuracy_table(summary: pd.DataFrame, paper_reported=None, references=None) -> pd.DataFrame:
    """Accuracy per dataset and method at the stated epsilon (`ACCURACY_COLUMNS`), mean±std over
    seeds, each dataset followed by the paper's rows for the datasets it stands for.

    Args:
        summary: `aoi.results.summary_frame` rows (one per run).
        paper_reported: the paper's reported.csv (`aoi.results.load_paper`); None: no paper rows.
        references: rows dataset, paper_dataset (`aoi.results.profile_datasets_frame`).
    Paper rows carry what it reports: accuracy, with cutoff, their difference, the average
    timestep read off its figure (≈); "–" elsewhere.
    """

    def paper_cells(full, cut) -> dict:
        return {
            **_paper_ids(full),
            "accuracy at T (%)": _pm(full.accuracy_mean, full.accuracy_std),
            "w/ cutoff (%)": _pm(cut.accuracy_mean, cut.accuracy_std),
            "drop (pp)": number(full.accuracy_mean - cut.accuracy_mean),
            "mean exit step": f"≈{cut.avg_timestep_approx:g}",
        }

    return _table(summary, ACCURACY_COLUMNS, paper_reported, references, paper_cells)


def cost_table(summary: pd.DataFrame, paper_reported=None, references=None) -> pd.DataFrame:
    """Cost per dataset and method (`COST_COLUMNS`): speed-up in steps, SOPs and energy per test
    sample at T and with cutoff, measured wall-clock speed-up of streaming early exit; the paper's
    rows carry only its speed-up in steps (T over the average timestep read off its figure)."""

    def paper_cells(full, cut) -> dict:
        return {**_paper_ids(full), "speed-up (steps)": "≈" + number(full["T"] / cut.avg_timestep_approx)}

    return _table(summary, COST_COLUMNS, paper_reported, references, paper_cells)


def _pivot(frame: pd.DataFrame, step: str, value: str, prefix: str, scale: float, digits: int) -> pd.DataFrame:
    """mean±std of ``value`` per dataset and method, one column ``<prefix><step>`` per ``step``."""
    rows = {}
    for row in grouped(frame, [step], [value]):
        ids = tuple((k, row[k]) for k in ("dataset", "method", "reset gradient", "width") if k in row)
        rows.setdefault(ids, dict(ids))[f"{prefix}{row[step]}"] = _pm(
            row[f"{value}_mean"], row[f"{value}_std"], digits, scale
        )
    columns = [f"{prefix}{s}" for s in range(1, int(frame[step].max()) + 1)]
    table = pd.DataFrame(list(rows.values()))
    return table[[c for c in table if c not in columns] + columns].fillna("")


def per_step_table(per_step: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (%) at each fixed step, mean±std over seeds: one row per dataset and method, one
    column per step t (``t1``, ``t2``, ...; empty beyond a dataset's T)."""
    return _pivot(per_step, "t", "accuracy", "t", 100, 2)


def stf_table(stf: pd.DataFrame) -> pd.DataFrame:
    """STF per layer, mean±std over seeds: one row per dataset and method, one column per layer."""
    return _pivot(stf, "layer", "stf", "layer ", 1, 4)


def curve_table(curve: pd.DataFrame) -> pd.DataFrame:
    """The cutoff curves as drawn: one row per epsilon, one column per dataset and method, cells
    ``accuracy (%) at mean exit step``, means over seeds."""
    columns = {}
    for row in grouped(curve, ["epsilon"], ["accuracy", "mean_exit_step"]):
        columns.setdefault(f"{row['dataset']} {row['variant']}", {})[row["epsilon"]] = (
            f"{number(row['accuracy_mean'], scale=100)} at {number(row['mean_exit_step_mean'])}"
        )
    table = pd.DataFrame(columns).sort_index()
    table.index = [f"{epsilon:g}" for epsilon in table.index]  # as everywhere: 0.0002, not 0.000200
    return table.rename_axis("ε").reset_index()


def selection_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and reset gradient, the STR alpha chosen on the validation data, its test
    numbers, and TET's beside them (the same dataset and gradient; "–" without TET runs).

    The choice reads only the ``val_*`` columns: the best mean validation accuracy with cutoff,
    ties broken by fewer mean validation exit steps. Raises ValueError when no run holds
    validation data out."""
    summary = _with_other_code(summary)
    runs = summary[summary["method"] == "str"]
    if runs[["val_cutoff_accuracy", "val_mean_exit_step"]].isna().all(axis=None):
        raise ValueError("no STR run held validation data out (TrainConfig validation > 0): nothing to select on")
    scores = [
        "val_cutoff_accuracy",
        "val_mean_exit_step",
        "accuracy",
        "cutoff_accuracy",
        "mean_exit_step",
        "other_code",
    ]
    candidates = mean_std(runs, ["dataset", "detach_reset", "alpha"], scores)
    order = {name: i for i, name in enumerate(dict.fromkeys(summary["dataset"]))}
    chosen = candidates.merge(
        paired.chosen_alphas(runs, ["dataset", "detach_reset"]), on=["dataset", "detach_reset", "alpha"]
    )
    chosen = chosen.sort_values(["dataset", "detach_reset"], key=lambda c: c.map(order) if c.name == "dataset" else c)
    tet = mean_std(summary[summary["method"] == "tet"], ["dataset", "detach_reset"], scores)
    picks = chosen.merge(tet, on=["dataset", "detach_reset"], how="left", suffixes=("", "_tet"))
    return pd.DataFrame([_selection_row(pick) for pick in picks.to_dict("records")])


def _selection_row(pick: dict) -> dict:
    """One row of `selection_table`: the chosen alpha's numbers, then TET's (columns ``*_tet``)."""

    def cell(column: str, digits: int = 2, scale: float = 1.0, suffix: str = "") -> str:
        return _pm(pick.get(f"{column}_mean{suffix}"), pick.get(f"{column}_std{suffix}"), digits, scale)

    return {
        "dataset": pick["dataset"],
        "reset gradient": RESET_GRADIENTS[bool(pick["detach_reset"])],
        "chosen": method_label("str", pick["alpha"]) + (_mark(pick) or _mark(pick, "_tet")),
        "seeds": str(pick["seeds"]),
        "val w/ cutoff (%)": cell("val_cutoff_accuracy", scale=100),
        "TET val w/ cutoff (%)": cell("val_cutoff_accuracy", scale=100, suffix="_tet"),
        "val mean exit step": cell("val_mean_exit_step"),
        "test accuracy at T (%)": cell("accuracy", scale=100),
        "test w/ cutoff (%)": cell("cutoff_accuracy", scale=100),
        "TET test w/ cutoff (%)": cell("cutoff_accuracy", scale=100, suffix="_tet"),
        "test mean exit step": cell("mean_exit_step"),
        "TET test mean exit step": cell("mean_exit_step", suffix="_tet"),
    }


PAIRED_COLUMNS = {  # summary_frame column -> (heading, scale, decimals) of its difference STR minus TET
    "accuracy": ("Δ accuracy at T (pp)", 100, 2),
    "cutoff_accuracy": ("Δ w/ cutoff (pp)", 100, 2),
    "mean_exit_step": ("Δ mean exit step", 1, 2),
    "sops_cutoff": ("Δ SOPs w/ cutoff (M)", 1e-6, 3),
}


def _interval(mean: float, low: float, high: float, digits: int, scale: float) -> str:
    """``+mean [low, high]`` of scaled values; "[–]" for an interval of one unit."""
    bounds = "–" if pd.isna(low) else f"{scale * low:+.{digits}f}, {scale * high:+.{digits}f}"
    return f"{scale * mean:+.{digits}f} [{bounds}]"


def paired_table(summary: pd.DataFrame, confidence: float = paired.CONFIDENCE) -> pd.DataFrame:
    """STR minus TET of the same seed (and fold), per dataset, reset gradient, width and STR
    variant (`aoi.paired.compare`, with the alpha chosen on validation, `aoi.paired.CHOSEN`, where
    the runs held data out): the mean difference of each of `PAIRED_COLUMNS` [its paired t interval].

    Args:
        summary: `aoi.results.summary_frame` rows, one per run, folds apart (`Study.by_fold`).
    """
    frame = paired.with_variants(_with_other_code(summary))
    found = paired.compare(frame, list(PAIRED_COLUMNS), confidence)
    marks = frame.groupby([*paired.CONTEXT, "variant"], dropna=False)["other_code"].max()
    rows = []
    for row in found.to_dict("records"):
        context = tuple(row[c] for c in paired.CONTEXT)
        other = marks[(*context, row["variant"])] + marks[(*context, paired.BASELINE)]
        ids = {"dataset": row["dataset"], "reset gradient": RESET_GRADIENTS[bool(row["detach_reset"])]}
        if frame["width"].nunique() > 1:
            ids["width"] = f"{row['width']:g}"
        ids["STR − TET"] = row["variant"] + (OTHER_CODE if other > 0 else "")
        if found["chosen"].any():
            ids["α chosen"] = row["chosen"] or "–"
        cells = {
            heading: _interval(row[f"{c}_mean"], row[f"{c}_low"], row[f"{c}_high"], digits, scale)
            for c, (heading, scale, digits) in PAIRED_COLUMNS.items()
        }
        rows.append({**ids, "n": str(row["n"]), **cells})
    return pd.DataFrame(rows)


def paired_caption(summary: pd.DataFrame, confidence: float = paired.CONFIDENCE) -> str:
    """What `paired_table` of ``summary`` shows: the method, its units and their number."""
    folds = sorted(set(summary["folds"]) - {0})
    units = f"(seed, fold) of a {folds[0]}-fold cross-validation" if len(folds) == 1 else "seed"
    shared = "; the runs of one seed share training data (k > 2 folds): the interval is somewhat narrow"
    return (
        f"STR minus TET trained on the same {units}, at the stated ε = {summary['epsilon'].iloc[0]:g}: "
        f"mean difference [{100 * confidence:g}% {paired.METHOD}] over the n units of each row (column n); "
        "accuracies in percentage points. An interval that holds 0 does not tell the two apart"
        + (shared if any(k > 2 for k in folds) else "")
        + "."
    )


def table_notes(profile: dict, summary: pd.DataFrame) -> list[str]:
    """What a reader must know beside the tables of ``profile`` (a loaded profile dict) made of
    ``summary`` (`aoi.results.summary_frame`): with `code_note`."""
    notes = [
        f"aoi: mean±std over the seeds run (column seeds; the profile's seeds are {profile['seeds']}), "
        "last-epoch models (the test set never selects), "
        f"cutoff at the stated ε = {profile['epsilon']:g} (exit when max softmax(Y_t) > 1 − ε), fixed before "
        f"any run. SOPs and energy per test sample (E = {E_MAC_PJ:g} pJ × MACs + {E_AC_PJ:g} pJ × SOPs, 45 nm); "
        "wall-clock speed-up of streaming early exit over full-T inference, measured on this machine's CPU.",
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
    return notes + _folds_note(profile) + code_note(summary)


def _folds_note(profile: dict) -> list[str]:
    """The note on the cross-validated datasets of ``profile`` (none when it has none)."""
    shared = profile.get("train", {}).get("folds", 0)
    folds = {name: entry.get("folds", shared) for name, entry in profile["datasets"].items()}
    folds = {name: k for name, k in folds.items() if k}
    if not folds:
        return []
    return [
        "Cross-validated: "
        + "; ".join(f"{name} in {k} stratified folds" for name, k in folds.items())
        + " (train and test recordings pooled), each fold tested by runs trained on the others (validation "
        "data held out of those). Each seed's folds are pooled: every recording tested once per seed; mean±std "
        "over the seeds."
    ]
