"""The cutoff analysis of one trained run: what its per-step logits and its model say about
anytime inference, written to ``results/<profile>/runs/<run_name>/`` (`aoi.layout`).

Accuracies in files are fractions; steps are 1-based; energy in picojoules per sample.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset

from aoi.anytime import compare_rules, time_inference
from aoi.cutoff import confidence_cutoff
from aoi.distributed import resolve_device
from aoi.energy import count_operations, energy_pj, sum_until_exit
from aoi.evaluate import load_logits, load_model, split_dataset
from aoi.files import read_json, sealed_metrics, write_csv, write_json
from aoi.layout import canonical
from aoi.metrics import accuracy_per_step, cutoff_curve, optimal_cutoff_timestep
from aoi.neurons import lif_layers, set_recording
from aoi.provenance import provenance
from aoi.regularisers import soft_spike_similarity, stf_from_similarity


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

    Reads the run's logits (`aoi.evaluate.evaluate` must have run) and its model. Writes
    metrics.json (everything below plus params and provenance, sealed with a digest of its content:
    `aoi.files.verified_metrics` reads it back) and CSVs per_step.csv,
    cutoff_curve.csv, rules.csv, stf.csv. At the stated ``epsilon``: accuracy with cutoff, mean
    exit step, step speed-up, accuracy drop, exit-step histogram (`cutoff_metrics`; the same on
    the held-out validation data when the run has some), SOPs/MACs/energy per sample with and
    without cutoff (over the whole test set), and the measured wall-clock speed-up of streaming
    early exit over full-T inference (on ``timing_samples`` test samples, best of
    ``timing_repeats``; 0 samples: not measured). The model runs on ``device`` ("auto": CUDA when available).

    Returns:
        the metrics dict written to metrics.json.
    """
    run_directory, results_directory = Path(run_directory), Path(results_directory)
    device = resolve_device(device)
    model, config = load_model(run_directory, device)
    dataset = split_dataset(config, "test")
    outputs, targets = load_logits(run_directory, "test")
    train_record = _train_record(run_directory, len(dataset), targets.shape[0])
    synops, macs = operation_counts(model, dataset, config.batch_size)  # same samples, same order as the logits
    scores = cutoff_metrics(outputs, targets, epsilon, epsilons, synops, macs)
    exit_steps = scores.pop("exit_steps")
    train_logits = load_logits(run_directory, "train")
    cs_rows, stf_rows = stf_records(model, stack_inputs(dataset, stf_samples, device), config.beta)
    metrics = {
        "profile": profile,
        "run_name": config.run_name(),
        "params": canonical(train_record["config"]),
        "T": outputs.shape[0],
        "test_samples": int(targets.shape[0]),
        "epsilon": float(epsilon),
        **scores,
        "validation": _validation(run_directory, config, epsilon, epsilons),
        "rules": compare_rules(outputs, targets, *train_logits, epsilons).to_dict("records"),
        "operations": operation_metrics(synops, macs, exit_steps),
        "timing": _timing(
            model, dataset, epsilon, timing_samples, timing_repeats, config.batch_size, device, train_logits[0]
        ),
        "cosine_similarity": cs_rows,
        "stf": stf_rows,
        "provenance": _provenance(run_directory, train_record, device),
    }
    metrics = sealed_metrics(metrics)
    _write(results_directory, metrics)
    return metrics


def _provenance(run_directory: Path, train_record: dict, device) -> dict:
    """What made the run (config.json's record, final.json) and its analysis (`aoi.provenance`)."""
    return {
        "train": train_record.get("provenance"),
        "final": read_json(run_directory / "final.json"),
        "analysis": provenance(device),
    }


def _train_record(run_directory: Path, test_samples: int, logits_samples: int) -> dict:
    """The run's config.json, once the test set and its saved logits agree in size."""
    if test_samples != logits_samples:
        raise ValueError(
            f"{run_directory}: the test set has {test_samples} samples, the saved logits "
            f"{logits_samples}: rerun `python -m aoi evaluate {run_directory}`"
        )
    train_record = read_json(run_directory / "config.json") or {}
    if not train_record.get("config"):
        raise ValueError(f"{run_directory / 'config.json'} holds no 'config': was the run trained with aoi.train?")
    return train_record


def cutoff_metrics(
    outputs: torch.Tensor, targets: torch.Tensor, epsilon: float, epsilons, synops=None, macs=None
) -> dict:
    """What the logits [T, N, K] say at each fixed step and under the confidence cutoff.

    Returns:
        accuracy (at T), accuracy_per_step (records t, accuracy), cutoff (accuracy, mean_exit_step,
        speedup, accuracy_drop, exit_histogram at ``epsilon``), oct (mean, histogram), curve
        (records of the ``epsilons`` sweep, `aoi.metrics.cutoff_curve`; with the per-step
        operation counts ``synops``, ``macs`` [T, N] also the mean SOPs and energy (pJ) per sample
        until exit) and exit_steps ([N] tensor at ``epsilon``).
    """
    T = outputs.shape[0]
    per_step = accuracy_per_step(outputs, targets)
    cutoff = confidence_cutoff(outputs, float(epsilon))
    oct_steps = optimal_cutoff_timestep(outputs, targets)
    accuracy = float(per_step[-1])
    cutoff_accuracy = float((cutoff.predictions == targets).float().mean())
    mean_exit = float(cutoff.exit_steps.float().mean())
    return {
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
        "curve": _curve(outputs, targets, epsilons, synops, macs),
        "exit_steps": cutoff.exit_steps,
    }


def _curve(outputs: torch.Tensor, targets: torch.Tensor, epsilons, synops, macs) -> list[dict]:
    """`aoi.metrics.cutoff_curve` records, each with ``sops`` and ``energy_pj`` per sample when counts are given."""
    curve = cutoff_curve(outputs, targets, epsilons).to_dict("records")
    if synops is not None:
        for row in curve:
            exits = confidence_cutoff(outputs, row["epsilon"]).exit_steps
            used_synops, used_macs = sum_until_exit(synops, exits), sum_until_exit(macs, exits)
            row["sops"] = float(used_synops.double().mean())
            row["energy_pj"] = float(energy_pj(used_synops, used_macs).mean())
    return curve


def _validation(run_directory: Path, config, epsilon: float, epsilons) -> dict | None:
    """`cutoff_metrics` on the held-out validation data (None when the run holds none out)."""
    if not config.validation:
        return None
    outputs, targets = load_logits(run_directory, "val")
    scores = cutoff_metrics(outputs, targets, epsilon, epsilons)
    del scores["exit_steps"], scores["curve"]
    return {"samples": int(targets.shape[0]), **scores}


def operation_metrics(synops: torch.Tensor, macs: torch.Tensor, exit_steps: torch.Tensor) -> dict:
    """Mean SOPs, MACs and energy (pJ) per sample from counts [T, N], at full T and until ``exit_steps`` [N]."""
    synops_full, macs_full = synops.sum(0), macs.sum(0)
    synops_cut, macs_cut = sum_until_exit(synops, exit_steps), sum_until_exit(macs, exit_steps)
    return {
        "sops_full": float(synops_full.double().mean()),
        "sops_cutoff": float(synops_cut.double().mean()),
        "macs_full": float(macs_full.double().mean()),
        "macs_cutoff": float(macs_cut.double().mean()),
        "energy_pj_full": float(energy_pj(synops_full, macs_full).mean()),
        "energy_pj_cutoff": float(energy_pj(synops_cut, macs_cut).mean()),
    }


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


def _timing(
    model, dataset, epsilon: float, samples: int, repeats: int, batch_size: int, device, calibration
) -> dict | None:
    """`aoi.anytime.time_inference` on the first ``samples`` test samples (None when 0), its chunk schedule
    chosen from the exits of ``calibration`` (the run's per-step logits [T, M, K] of its training data)."""
    if not samples:
        return None
    inputs = stack_inputs(dataset, samples, device)
    timing = time_inference(
        model, inputs, float(epsilon), repeats=repeats, batch_size=batch_size, calibration=calibration
    )
    return {**timing, "samples": min(samples, len(dataset)), "repeats": repeats, "device": str(device)}


def stack_inputs(dataset, count: int | None, device: torch.device) -> torch.Tensor:
    """The first ``count`` inputs of ``dataset`` (all when None) as one batch [T, N, ...] on ``device``."""
    if count is not None:
        dataset = Subset(dataset, range(min(count, len(dataset))))
    frames = torch.stack([dataset[i][0] for i in range(len(dataset))])  # [N, T, ...]
    return frames.transpose(0, 1).contiguous().to(device)


def stf_records(model, inputs: torch.Tensor, beta: float) -> tuple[list[dict], list[dict]]:
    """What STR acts on, from one recording forward of inputs [T, N, ...].

    Returns:
        (cs records: layer (1-based), t (1-based), cosine_similarity averaged over samples;
         stf records: layer, stf averaged over samples); empty for a model without LIF layers.
    """
    if not lif_layers(model):
        return [], []
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


def _write(directory: Path, metrics: dict) -> None:
    """metrics.json and the small CSVs beside it."""
    write_csv(directory / "per_step.csv", pd.DataFrame(metrics["accuracy_per_step"]))
    write_csv(directory / "cutoff_curve.csv", pd.DataFrame(metrics["curve"]))
    write_csv(directory / "rules.csv", pd.DataFrame(metrics["rules"]))
    cosine = pd.DataFrame(metrics["cosine_similarity"], columns=["layer", "t", "cosine_similarity"])
    write_csv(directory / "stf.csv", cosine.merge(pd.DataFrame(metrics["stf"], columns=["layer", "stf"]), on="layer"))
    write_json(directory / "metrics.json", metrics)
