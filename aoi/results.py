"""The results files read back for presentation: the runs of a profile as tidy frames, the
paper's own numbers, and a profile's whole study (`load_study`) as the notebooks use it.

A study is exactly the runs its profile defines now, each analysed with its current parameters
(`load_runs`): runs found in its folder that the profile does not define (an alpha or seed taken
out of it, another profile file of the same name) are named and left out of every table, figure
and alpha selection, never averaged in.

Two runs' training records are compared by what decides their weights (`condition_differences`).

Frames have one row per run (and per step / epsilon / rule / layer), with the columns that
identify a run: dataset, T, method, alpha (None for TET), label (`aoi.methods.method_label`),
detach_reset, width, seed, folds and fold (0 and 0 without cross-validation), its number of test
samples and the code that made it (``code``: its fingerprint, `run_code`). A cross-validated
study's folds are pooled per seed by `pool_folds` (what `Study` shows). Accuracies are
fractions, energy in picojoules per sample.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aoi.files import UnreadableFile, verified_metrics
from aoi.layout import PAPER_DIR, REPO_ROOT, params_match, profile_results_dir, run_name, run_names_under
from aoi.methods import method_label
from aoi.profiles import load_profile, profile_name, run_grid
from aoi.provenance import code_fingerprint, recorded_code

OTHER_CODE = "†"  # the mark of table rows with runs made by other code than the current aoi (`aoi.tables`)
DATA_LOCATIONS = ("cache_dir", "files")  # where a data record's files lie: no part of what the data are
# What a CPU run's weights are promised bit for bit with (`training_conditions`); with anything else
# other rounding, amplified over epochs, gives other weights and accuracies within the spread over seeds.
REPRODUCIBLE_WITH = "the same CPU model, torch thread count, code, data and package versions"


def load_runs(directory: str | os.PathLike, profile: dict) -> tuple[list[dict], list[str]]:
    """The metrics.json of every run ``profile`` defines, with its current parameters, under
    ``directory/runs`` (a profile's results folder), sorted by run name; and the names of the other
    runs found there (not defined by the profile, or analysed with other parameters), left out."""
    runs, left_out, found = [], [], run_names_under(Path(directory) / "runs")
    for params in run_grid(profile):
        name = run_name(params)
        run = verified_metrics(Path(directory) / "runs" / name / "metrics.json") if name in found else None
        if run is not None and params_match(run.get("params"), params):
            runs.append(run)
        elif run is not None:
            left_out.append(f"{name} (analysed with other parameters)")
    defined = {run_name(params) for params in run_grid(profile)}
    left_out += [name for name in found if name not in defined]
    return sorted(runs, key=lambda run: run["run_name"]), left_out


def run_columns(run: dict) -> dict:
    """The columns that identify a run in the tidy frames."""
    params = run["params"]
    str_run = params["method"] == "str"
    return {
        "dataset": params["dataset"],
        "T": run["T"],
        "method": params["method"],
        "alpha": params.get("alpha") if str_run else None,
        "label": method_label(params["method"], params.get("alpha")),
        "detach_reset": bool(params.get("detach_reset", False)),
        "width": float(params.get("width", 1.0)),
        "seed": params["seed"],
        "folds": int(params.get("folds", 0)),
        "fold": int(params.get("fold", 0)),
        "test_samples": run.get("test_samples"),
        "code": run_code(run),
    }


def training_conditions(record: dict | None) -> dict[str, object]:
    """What decides a CPU run's final weights bit for bit, read from its training provenance
    ``record`` (``provenance["train"]`` of a metrics.json; None where not recorded): "CPU model",
    "torch threads", "code" (`aoi.provenance.code_fingerprint`), "data <split> <key>" for each entry of its data
    record but the file locations (`DATA_LOCATIONS`), and "<package> version" for each package it records."""
    record = record or {}
    machine = record.get("machine") or {}
    conditions = {
        "CPU model": machine.get("cpu"),
        "torch threads": machine.get("torch_threads"),
        "code": record.get("code_fingerprint"),
    }
    for split, data in sorted((record.get("data") or {}).items()):
        for key, value in sorted((data or {}).items()):
            if key not in DATA_LOCATIONS:
                conditions[f"data {split} {key}"] = value
    conditions.update({f"{name} version": version for name, version in (record.get("versions") or {}).items()})
    return conditions


def condition_differences(ours: dict | None, theirs: dict | None) -> list[tuple[str, object, object]]:
    """(condition, ours, theirs) for each of `training_conditions` in which the training records
    ``ours`` and ``theirs`` differ (None on the side that does not record it), in their order."""
    mine, other = training_conditions(ours), training_conditions(theirs)
    keys = dict.fromkeys([*mine, *other])
    return [(key, mine.get(key), other.get(key)) for key in keys if mine.get(key) != other.get(key)]


def made_by_other_code(codes) -> str:
    """What `OTHER_CODE` means for the fingerprints ``codes``: "made by other code (fingerprint ...)
    than the current aoi (...)"."""
    return f"made by other code (fingerprint {', '.join(codes)}) than the current aoi ({code_fingerprint()})"


def run_code(run: dict) -> str:
    """The fingerprint of the code that trained and analysed ``run`` (`aoi.provenance.recorded_code`:
    "none" where not recorded, both when they differ)."""
    records = run.get("provenance") or {}
    return recorded_code([records.get("train"), records.get("analysis")])


def records_frame(runs: list[dict], key: str) -> pd.DataFrame:
    """The per-run records under ``key`` (accuracy_per_step, curve, rules, cosine_similarity, stf)
    of every run, one row each, with the columns of `run_columns`."""
    return pd.DataFrame([{**run_columns(run), **record} for run in runs for record in run[key]])


def summary_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per run with the scalar results at the stated epsilon; ``val_*`` on the held-out
    validation data (NaN when the run held none out), ``wallclock_speedup`` NaN when not measured."""
    rows = []
    for run in runs:
        cutoff, ops, validation = run["cutoff"], run["operations"], run.get("validation") or {}
        rows.append(
            {
                **run_columns(run),
                "epsilon": run["epsilon"],
                "accuracy": run["accuracy"],
                "cutoff_accuracy": cutoff["accuracy"],
                "mean_exit_step": cutoff["mean_exit_step"],
                "speedup": cutoff["speedup"],
                "accuracy_drop": cutoff["accuracy_drop"],
                "mean_oct": run["oct"]["mean"],
                "sops_full": ops["sops_full"],
                "sops_cutoff": ops["sops_cutoff"],
                "energy_pj_full": ops["energy_pj_full"],
                "energy_pj_cutoff": ops["energy_pj_cutoff"],
                "wallclock_speedup": (run.get("timing") or {}).get("wallclock_speedup", math.nan),
                "val_accuracy": validation.get("accuracy", math.nan),
                "val_cutoff_accuracy": validation.get("cutoff", {}).get("accuracy", math.nan),
                "val_mean_exit_step": validation.get("cutoff", {}).get("mean_exit_step", math.nan),
            }
        )
    return pd.DataFrame(rows)


def exit_frame(runs: list[dict]) -> pd.DataFrame:
    """The exit steps at the stated epsilon and the OCT of every run: one row per run and step t
    (1-based) with the fractions of its test samples that exit there (``exits``) and whose OCT it
    is (``oct``), the columns of `run_columns` and ``epsilon``."""
    rows = []
    for run in runs:
        counts, n = zip(run["cutoff"]["exit_histogram"], run["oct"]["histogram"]), run["test_samples"]
        ids = {**run_columns(run), "epsilon": run["epsilon"]}
        rows += [{**ids, "t": t, "exits": e / n, "oct": o / n} for t, (e, o) in enumerate(counts, 1)]
    return pd.DataFrame(rows)


IDENTITY = ("dataset", "T", "method", "alpha", "label", "detach_reset", "width", "seed", "folds")
RECORD_KEYS = ("t", "epsilon", "rule", "parameter", "layer")  # what tells one run's records apart


def pool_folds(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the folds of each cross-validated run pooled: one row per seed (and record),
    each value the mean over its folds weighted by their test samples (exact for accuracies, exit
    steps and operations per sample: every recording counted once; ``val_*`` values, measured on
    validation data, weighted the same way), ``speedup`` T over the pooled mean exit step,
    ``test_samples`` summed, ``fold`` the number of folds pooled, ``code`` another code's
    fingerprint where one made a fold (its rows keep their mark). Runs without folds stay as they are."""
    if frame.empty or not frame["folds"].any():
        return frame
    cv = frame[frame["folds"] > 0]
    keys = [c for c in cv if c in IDENTITY or c in RECORD_KEYS]
    values = [c for c in cv.select_dtypes("number") if c not in keys and c not in ("fold", "test_samples")]
    rows = []
    for key, group in cv.groupby(keys, sort=False, dropna=False):
        weights = group["test_samples"].to_numpy(dtype=float)
        row = dict(zip(keys, key))
        row.update({c: float(np.average(group[c], weights=weights)) for c in values})
        others = [code for code in group["code"] if code != code_fingerprint()]
        row.update(fold=len(group), test_samples=int(weights.sum()), code=others[0] if others else code_fingerprint())
        rows.append(row)
    pooled = pd.DataFrame(rows)
    if "speedup" in pooled:
        pooled["speedup"] = pooled["T"] / pooled["mean_exit_step"]
    return pd.concat([frame[frame["folds"] == 0], pooled], ignore_index=True)[list(frame.columns)]


def load_paper(directory: str | os.PathLike = PAPER_DIR) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's numbers: (reported.csv: legend accuracies and average timesteps, in percent;
    per_timestep_approx.csv: accuracy per fixed step read off the figure, in percent)."""
    directory = Path(directory)
    return (pd.read_csv(directory / "reported.csv"), pd.read_csv(directory / "per_timestep_approx.csv"))


def profile_datasets_frame(profile: dict) -> pd.DataFrame:
    """dataset -> the paper datasets shown as its reference (``paper`` entries of the profile)."""
    return pd.DataFrame(
        [
            {"dataset": name, "paper_dataset": ref}
            for name, entry in profile["datasets"].items()
            for ref in entry.get("paper", [])
        ],
        columns=["dataset", "paper_dataset"],
    )


def paper_alphas(reported: pd.DataFrame, references: pd.DataFrame) -> dict[str, list[float]]:
    """dataset -> the STR alphas of the paper's legend for the paper datasets it stands for."""
    alphas = reported.loc[reported["method"] == "str", ["dataset", "alpha"]].drop_duplicates()
    merged = references.merge(alphas, left_on="paper_dataset", right_on="dataset", suffixes=("", "_paper"))
    return {name: sorted(set(group["alpha"].astype(float))) for name, group in merged.groupby("dataset", sort=False)}


@dataclass
class Study:
    """A profile's results as the presentation notebooks read them.

    ``profile`` is the loaded profile (None when it has no results yet), ``runs`` the metrics.json
    of every run it defines that has results (`load_runs`), ``directory`` its results folder (where
    figures and tables are written), ``left_out`` the names of the other runs found there,
    ``unreadable`` why its results could not be read (`load_study` without ``required``), if so.
    """

    name: str
    profile: dict | None
    runs: list[dict]
    directory: Path
    left_out: list[str] = dataclasses.field(default_factory=list)
    unreadable: str | None = None

    def frame(self, key: str) -> pd.DataFrame:
        """`records_frame` of ``key`` (accuracy_per_step, curve, rules, cosine_similarity, stf), folds pooled."""
        return pool_folds(records_frame(self.runs, key))

    @property
    def summary(self) -> pd.DataFrame:
        """`summary_frame`, each seed's folds pooled (`pool_folds`)."""
        return pool_folds(self.by_fold)

    @property
    def by_fold(self) -> pd.DataFrame:
        """`summary_frame`: one row per run, folds apart (the units of `aoi.paired`)."""
        return summary_frame(self.runs)

    @property
    def exits(self) -> pd.DataFrame:
        """`exit_frame`, folds pooled."""
        return pool_folds(exit_frame(self.runs))

    @property
    def references(self) -> pd.DataFrame:
        return profile_datasets_frame(self.profile)

    @property
    def epsilon(self) -> float:
        return float(self.profile["epsilon"])

    @property
    def missing(self) -> str:
        """What to do when the study has no runs (or none that can be read)."""
        if self.unreadable:
            return f"results of profile {self.name!r} cannot be read, so none is shown: {self.unreadable}"
        return f"no results of profile {self.name!r} yet: run ./reproduce.sh --profile {self.name}"

    @property
    def other_code(self) -> dict[str, list[str]]:
        """Fingerprint (`run_code`) -> the names of the runs it made, for every one but the current code's."""
        made = {}
        for run in self.runs:
            made.setdefault(run_code(run), []).append(run["run_name"])
        made.pop(code_fingerprint(), None)
        return made

    @property
    def seeds(self) -> int:
        """How many seeds its runs have (the most of any one method)."""
        return int(
            self.summary.groupby(["dataset", "method", "alpha", "detach_reset", "width"], dropna=False).size().max()
        )

    def describe(self) -> str:
        """One line: how many runs of which profile, from where, at which stated epsilon; a line
        naming the profile's runs without results and one naming the runs left out, when there are;
        then a warning line per fingerprint of `other_code`, naming its runs."""
        if not self.runs:
            return self.missing
        where = self.directory.resolve()
        where = where.relative_to(REPO_ROOT) if where.is_relative_to(REPO_ROOT) else where
        line = f"{len(self.runs)} runs of profile {self.name!r} in {where}; stated epsilon {self.epsilon:g}"
        analysed = {run["run_name"] for run in self.runs}
        absent = [run_name(params) for params in run_grid(self.profile) if run_name(params) not in analysed]
        lines = [line]
        if absent:
            lines.append(f"without results yet (not shown): {', '.join(absent)}")
        if self.left_out:
            lines.append(
                f"left out, not runs of the profile as it is now: {', '.join(self.left_out)}; "
                f"./reproduce.sh --profile {self.name} removes them"
            )
        return "\n".join([*lines, *self._fold_warnings(), *self._other_code_warnings()])

    def _fold_warnings(self) -> list[str]:
        """A warning naming the cross-validated runs whose seed misses folds (their pooled numbers
        do not count every recording)."""
        pooled = self.summary[self.summary["folds"] > 0]
        short = pooled[pooled["fold"] < pooled["folds"]]
        names = [f"{r.dataset} {r.label} seed {r.seed} ({r.fold} of {r.folds} folds)" for r in short.itertuples()]
        if not names:
            return []
        return [
            f"WARNING: folds missing, pooled over fewer: {', '.join(names)}; run ./reproduce.sh --profile {self.name}"
        ]

    def _other_code_warnings(self) -> list[str]:
        """A warning per fingerprint of `other_code`, naming its runs (marked `OTHER_CODE` in the tables)."""
        return [
            f"WARNING: runs {made_by_other_code([code])}, marked {OTHER_CODE} in the tables: {', '.join(names)}; "
            f"rerun ./reproduce.sh --profile {self.name}"
            for code, names in self.other_code.items()
        ]


def load_study(profile: str, results_dir: str | os.PathLike | None = None, required: bool = True) -> Study:
    """The results of ``profile`` (a name or a .yaml path) from ``results_dir`` (default: the
    repository's ``results/<name>``, whatever $AOI_RESULTS says). With ``required`` a study
    without runs is a FileNotFoundError, and a metrics.json that `aoi.files.verified_metrics`
    refuses an `aoi.files.UnreadableFile`; without, it comes back empty (the profile not loaded, so
    a profile still to be written is no error), saying why in ``unreadable`` when its results
    could not be read (paths relative to the repository)."""
    name = profile_name(profile)
    directory = Path(results_dir) if results_dir is not None else profile_results_dir(name, REPO_ROOT / "results")
    spec = load_profile(profile) if run_names_under(directory / "runs") else None
    try:
        runs, left_out = load_runs(directory, spec) if spec else ([], [])
    except UnreadableFile as error:
        if required:
            raise
        return Study(name, None, [], directory, unreadable=str(error).replace(f"{REPO_ROOT}{os.sep}", ""))
    study = Study(name, spec if runs else None, runs, directory, left_out)
    if required and not runs:
        raise FileNotFoundError(study.missing)
    return study
