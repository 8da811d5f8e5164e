"""The results files read back for presentation: every run's metrics.json as tidy frames, and
the paper's own numbers.

Frames have one row per run (and per step / epsilon / rule / layer), with the columns that
identify a run: dataset, T, method, alpha (None for TET), label (`aoi.methods.method_label`),
detach_reset, width and seed. Accuracies are fractions, energy in picojoules per sample.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from aoi.files import read_json
from aoi.layout import PAPER_DIR, profile_results_dir
from aoi.methods import method_label


def load_runs(profile: str, root=None) -> list[dict]:
    """Every run's metrics.json under ``results/<profile>/runs``, sorted by run name."""
    directory = profile_results_dir(profile, root) / "runs"
    runs = [read_json(path) for path in sorted(directory.rglob("metrics.json"))]
    if not runs:
        raise FileNotFoundError(f"no metrics.json under {directory}: run ./reproduce.sh --profile {profile} first")
    return sorted(runs, key=lambda run: run["run_name"])


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
    }


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
