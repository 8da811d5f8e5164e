"""Where files go, what they carry, and how the presentation reads them back.

Layout (roots from the arguments, else $AOI_RUNS / $AOI_RESULTS, else ``runs/`` and ``results/``
in the repository):

    runs/<profile>/<run_name>/          checkpoint, logits, config.json, final.json, log.csv,
                                        the executed train/evaluate notebooks (not in git)
    results/<profile>/runs/<run_name>/  metrics.json and small CSVs of one run (`analyse_run`)
    results/<profile>/                  figures and tables of the whole profile
    results/paper/                      the paper's own numbers (reported.csv, per_timestep_approx.csv)

``run_name`` is ``aoi.train.TrainConfig.run_name()``, e.g. ``digits/T4-str-a0.1-s0``.
Accuracies in files are fractions; steps are 1-based; energy in picojoules per sample.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset

from aoi.anytime import compare_rules, time_inference
from aoi.atomic import write_json, write_text
from aoi.cutoff import confidence_cutoff
from aoi.distributed import resolve_device
from aoi.energy import count_operations, energy_pj, sum_until_exit
from aoi.evaluate import load_logits, load_model, test_inputs
from aoi.metrics import accuracy_per_step, cutoff_curve, optimal_cutoff_timestep
from aoi.neurons import lif_layers, set_recording
from aoi.regularisers import soft_spike_similarity, stf_from_similarity
from aoi.train import TrainConfig, git_commit, package_version  # the one implementation of both

REPO_ROOT = Path(__file__).resolve().parents[1]
PAPER_DIR = REPO_ROOT / "results" / "paper"
PACKAGES = ("torch", "torchvision", "snntorch", "tonic", "numpy", "pandas", "aoi")


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """Root of the run directories: ``root``, else $AOI_RUNS, else ``<repo>/runs``."""
    return Path(root or os.environ.get("AOI_RUNS") or REPO_ROOT / "runs")


def results_root(root: str | os.PathLike | None = None) -> Path:
    """Root of the results: ``root``, else $AOI_RESULTS, else ``<repo>/results``."""
    return Path(root or os.environ.get("AOI_RESULTS") or REPO_ROOT / "results")


def run_name(params: dict) -> str:
    """The run directory name of TrainConfig values ``params`` (``TrainConfig.run_name()``)."""
    return TrainConfig(**params).run_name()


def run_dir(profile: str, name: str, root=None) -> Path:
    """``runs/<profile>/<run_name>``: checkpoints, logits and executed notebooks of one run."""
    return runs_root(root) / profile / name


def profile_results_dir(profile: str, root=None) -> Path:
    """``results/<profile>``: figures and tables of a profile."""
    return results_root(root) / profile


def run_results_dir(profile: str, name: str, root=None) -> Path:
    """``results/<profile>/runs/<run_name>``: metrics.json and CSVs of one run."""
    return profile_results_dir(profile, root) / "runs" / name


def method_label(method: str, alpha: float | None = None) -> str:
    """Legend label of a method: ``TET`` or ``STR(0.1)`` (alpha as written, like the paper)."""
    return "TET" if method == "tet" else f"STR({float(alpha):g})"


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in ``path``, or None when the file does not exist."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def provenance() -> dict:
    """Where and with what an analysis was made: git commit, package versions, machine, time (UTC)."""
    commit, dirty = git_commit()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": {name: package_version(name) for name in PACKAGES},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "analysed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _canonical(params: dict) -> dict:
    """``params`` as JSON would give them back (so a stored and a fresh dict compare equal)."""
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def params_match(stored: dict | None, params: dict) -> bool:
    """True when every value of ``params`` equals the stored one (stored may hold more keys)."""
    if not stored:
        return False
    stored, params = _canonical(stored), _canonical(params)
    return all(stored.get(key) == value for key, value in params.items())


def is_finished(run_directory: Path, results_directory: Path, params: dict) -> bool:
    """A run is finished when training wrote final.json, the analysis wrote metrics.json, and
    both were made with ``params`` (TrainConfig values)."""
    config = read_json(Path(run_directory) / "config.json") or {}
    metrics = read_json(Path(results_directory) / "metrics.json") or {}
    return (
        (Path(run_directory) / "final.json").is_file()
        and params_match(config.get("config", config), params)
        and params_match(metrics.get("params"), params)
    )


# ---------------------------------------------------------------------------------- analysis


def _stack_inputs(dataset, count: int | None, device: torch.device) -> torch.Tensor:
    """The first ``count`` inputs of ``dataset`` (all when None) as one batch [T, N, ...] on ``device``."""
    if count is not None:
        dataset = Subset(dataset, range(min(count, len(dataset))))
    frames = torch.stack([dataset[i][0] for i in range(len(dataset))])  # [N, T, ...]
    return frames.transpose(0, 1).contiguous().to(device)


def operation_counts(model, dataset, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SOPs and MACs of every sample of ``dataset`` (in order) at every step, on the model's
    device: (synops [T, N], macs [T, N]) on the CPU."""
    device = next(model.parameters()).device
    synops, macs = [], []
    for frames, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        counts = count_operations(model, frames.transpose(0, 1).to(device))
        synops.append(counts.synops.cpu())
        macs.append(counts.macs.cpu())
    return torch.cat(synops, 1), torch.cat(macs, 1)


def stf_records(model, inputs: torch.Tensor, beta: float) -> tuple[list[dict], list[dict]]:
    """What STR acts on, from one recording forward of inputs [T, N, ...].

    Returns:
        (cs records: layer (1-based), t (1-based), cosine_similarity averaged over samples;
         stf records: layer, stf averaged over samples).
    """
    set_recording(model, True)
    try:
        with torch.no_grad():
            model(inputs)
        cs_rows, stf_rows = [], []
        for layer, lif in enumerate(lif_layers(model), start=1):
            similarity = soft_spike_similarity(lif.soft_spikes, beta)  # [T, N]
            cs_rows += [
                {"layer": layer, "t": t, "cosine_similarity": float(v)} for t, v in enumerate(similarity.mean(1), 1)
            ]
            stf_rows.append({"layer": layer, "stf": float(stf_from_similarity(similarity).mean())})
    finally:
        set_recording(model, False)
    return cs_rows, stf_rows


def _histogram(steps: torch.Tensor, T: int) -> list[int]:
    """Counts of 1-based steps [N] at t = 1..T."""
    return torch.bincount(steps - 1, minlength=T).tolist()


def analyse_run(
    run_directory: str | os.PathLike,
    results_directory: str | os.PathLike,
    epsilon: float,
    epsilons,
    profile: str,
    stf_samples: int = 256,
    timing_samples: int = 256,
    timing_repeats: int = 3,
    device: str = "auto",
) -> dict:
    """The cutoff analysis of one finished, evaluated run, written to ``results_directory``.

    Reads the run's test/train logits (`aoi.evaluate.evaluate` must have run) and its model.
    Writes metrics.json (everything below plus params and provenance) and CSVs per_step.csv,
    cutoff_curve.csv, rules.csv, stf.csv. At the stated ``epsilon``: accuracy with cutoff, mean
    exit step, step speed-up, accuracy drop, exit-step histogram, SOPs/MACs/energy per sample with
    and without cutoff (over the whole test set), and the measured wall-clock speed-up of streaming
    early exit over full-T inference (on ``timing_samples`` test samples, best of ``timing_repeats``).
    The model runs on ``device`` ("auto": CUDA when available).

    Returns:
        the metrics dict written to metrics.json.
    """
    run_directory, results_directory = Path(run_directory), Path(results_directory)
    outputs, targets = load_logits(run_directory, "test")
    outputs_train, targets_train = load_logits(run_directory, "train")
    device = resolve_device(device)
    model, config = load_model(run_directory, device)
    dataset = test_inputs(run_directory)
    T = outputs.shape[0]

    per_step = accuracy_per_step(outputs, targets)
    curve = cutoff_curve(outputs, targets, epsilons)
    cutoff = confidence_cutoff(outputs, float(epsilon))
    oct_steps = optimal_cutoff_timestep(outputs, targets)
    rules = compare_rules(outputs, targets, outputs_train, targets_train, epsilons)

    synops, macs = operation_counts(model, dataset, config.batch_size)  # same samples, same order as the logits
    if synops.shape[1] != targets.shape[0]:
        raise ValueError(
            f"{run_directory}: the test set has {synops.shape[1]} samples, the saved logits "
            f"{targets.shape[0]}: rerun `python -m aoi evaluate {run_directory}`"
        )
    synops_full, macs_full = synops.sum(0), macs.sum(0)
    synops_cut, macs_cut = sum_until_exit(synops, cutoff.exit_steps), sum_until_exit(macs, cutoff.exit_steps)
    timing = time_inference(
        model,
        _stack_inputs(dataset, timing_samples, device),
        float(epsilon),
        repeats=timing_repeats,
        batch_size=config.batch_size,
    )
    cs_rows, stf_rows = stf_records(model, _stack_inputs(dataset, stf_samples, device), config.beta)

    accuracy = float(per_step[-1])
    cutoff_accuracy = float((cutoff.predictions == targets).float().mean())
    mean_exit = float(cutoff.exit_steps.float().mean())
    train_record = read_json(run_directory / "config.json") or {}
    metrics = {
        "profile": profile,
        "run_name": config.run_name(),
        "params": _canonical(train_record.get("config", {})),
        "T": T,
        "test_samples": int(targets.shape[0]),
        "epsilon": float(epsilon),
        "accuracy": accuracy,
        "accuracy_per_step": [{"t": t, "accuracy": float(a)} for t, a in enumerate(per_step, 1)],
        "cutoff": {
            "accuracy": cutoff_accuracy,
            "mean_exit_step": mean_exit,
            "speedup": T / mean_exit,
            "accuracy_drop": accuracy - cutoff_accuracy,
            "exit_histogram": _histogram(cutoff.exit_steps, T),
        },
        "oct": {"mean": float(oct_steps.float().mean()), "histogram": _histogram(oct_steps, T)},
        "operations": {
            "sops_full": float(synops_full.double().mean()),
            "sops_cutoff": float(synops_cut.double().mean()),
            "macs_full": float(macs_full.double().mean()),
            "macs_cutoff": float(macs_cut.double().mean()),
            "energy_pj_full": float(energy_pj(synops_full, macs_full).mean()),
            "energy_pj_cutoff": float(energy_pj(synops_cut, macs_cut).mean()),
        },
        "timing": {
            **timing,
            "samples": min(timing_samples, len(dataset)),
            "repeats": timing_repeats,
            "device": str(device),
        },
        "curve": curve.to_dict("records"),
        "rules": rules.to_dict("records"),
        "cosine_similarity": cs_rows,
        "stf": stf_rows,
        "provenance": {
            "train": train_record.get("provenance"),
            "final": read_json(run_directory / "final.json"),
            "analysis": provenance(),
        },
    }
    if not metrics["params"]:
        raise ValueError(f"{run_directory / 'config.json'} holds no 'config': was the run trained with aoi.train?")
    write_csv(results_directory / "per_step.csv", pd.DataFrame(metrics["accuracy_per_step"]))
    write_csv(results_directory / "cutoff_curve.csv", curve)
    write_csv(results_directory / "rules.csv", rules)
    write_csv(
        results_directory / "stf.csv",
        pd.DataFrame(cs_rows, columns=["layer", "t", "cosine_similarity"]).merge(
            pd.DataFrame(stf_rows, columns=["layer", "stf"]), on="layer"
        ),
    )
    write_json(results_directory / "metrics.json", _finite(metrics))
    return metrics


def _finite(obj):
    """``obj`` with NaN floats replaced by None (valid JSON)."""
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_finite(value) for value in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write ``frame`` to ``path`` as CSV (no index, floats to 6 significant digits), atomically."""
    write_text(path, frame.to_csv(index=False, float_format="%.6g"))


# ---------------------------------------------------------------------------------- loading


def load_runs(profile: str, root=None) -> list[dict]:
    """Every run's metrics.json under ``results/<profile>/runs``, sorted by run name."""
    directory = profile_results_dir(profile, root) / "runs"
    runs = [read_json(path) for path in sorted(directory.rglob("metrics.json"))]
    if not runs:
        raise FileNotFoundError(f"no metrics.json under {directory}: run ./reproduce.sh --profile {profile} first")
    return sorted(runs, key=lambda run: run["run_name"])


def _run_columns(run: dict) -> dict:
    """The columns that identify a run in the tidy frames."""
    params = run["params"]
    return {
        "dataset": params["dataset"],
        "T": run["T"],
        "method": params["method"],
        "alpha": params.get("alpha") if params["method"] == "str" else None,
        "label": method_label(params["method"], params.get("alpha")),
        "seed": params["seed"],
    }


def records_frame(runs: list[dict], key: str) -> pd.DataFrame:
    """The per-run records under ``key`` (accuracy_per_step, curve, rules, cosine_similarity, stf)
    of every run, one row each, with the run's dataset, T, method, alpha, label and seed."""
    return pd.DataFrame([{**_run_columns(run), **record} for run in runs for record in run[key]])


def summary_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per run with the scalar results (accuracies as fractions, energy in pJ)."""
    rows = []
    for run in runs:
        cutoff, ops = run["cutoff"], run["operations"]
        rows.append(
            {
                **_run_columns(run),
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
                "wallclock_speedup": run["timing"]["wallclock_speedup"],
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
