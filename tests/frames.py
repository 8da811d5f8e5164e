"""Small hand-made result frames, in the columns of `aoi.results` (for the presentation tests)."""

import pandas as pd

from aoi.provenance import code_fingerprint

METHODS = {"TET": ("tet", None), "STR(0.1)": ("str", 0.1), "STR(0.5)": ("str", 0.5), "STR(0.01)": ("str", 0.01)}
RUNS = (  # dataset, T, method label, seed
    [("digits", 4, "TET", seed) for seed in (0, 1)]
    + [("digits", 4, "STR(0.1)", seed) for seed in (0, 1)]
    + [("ndigits", 10, "TET", 0), ("ndigits", 10, "STR(0.5)", 0)]
)


def ids(
    dataset: str,
    T: int,
    label: str,
    seed: int,
    detach_reset: bool = False,
    width: float = 1.0,
    code: str | None = None,
    fold: int = 0,
    folds: int = 0,
    test_samples: int = 100,
) -> dict:
    """The identifying columns of one run (`aoi.results.run_columns`); ``code`` None: the current code's fingerprint."""
    method, alpha = METHODS[label]
    return {
        "dataset": dataset,
        "T": T,
        "method": method,
        "alpha": alpha,
        "label": label,
        "detach_reset": detach_reset,
        "width": width,
        "seed": seed,
        "folds": folds,
        "fold": fold,
        "test_samples": test_samples,
        "code": code or code_fingerprint(),
    }


def per_step_frame() -> pd.DataFrame:
    """Accuracy 0.5 + 0.1 t for seed 0 and 0.1 more for seed 1 (digits); 0.05 t for ndigits."""
    rows = []
    for dataset, T, label, seed in RUNS:
        for t in range(1, T + 1):
            accuracy = 0.5 + 0.1 * t + 0.1 * seed if dataset == "digits" else 0.05 * t
            rows.append({**ids(dataset, T, label, seed), "t": t, "accuracy": accuracy})
    return pd.DataFrame(rows)


def curve_frame() -> pd.DataFrame:
    """Three epsilons per run: full T, T/2 at the stated 0.01 (accuracy 0.85 + 0.1 seed), step 1 at 0.5."""
    rows = []
    for dataset, T, label, seed in RUNS:
        for epsilon, exit_step, accuracy in ((0.0, T, 0.9), (0.01, T / 2, 0.85 + 0.1 * seed), (0.5, 1.0, 0.6)):
            point = {"epsilon": epsilon, "accuracy": accuracy, "mean_exit_step": exit_step}
            rows.append({**ids(dataset, T, label, seed), **point})
    return pd.DataFrame(rows)


def paper_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reported.csv and per_timestep_approx.csv for the paper's six datasets, made up."""
    reported, per_step = [], []
    for dataset, T, alpha in (
        ("cifar10", 4, 0.1),
        ("cifar100", 4, 0.05),
        ("imagenet", 4, 0.05),
        ("cifar10dvs", 10, 0.5),
        ("ncaltech101", 10, 0.5),
        ("dvsgesture", 16, 0.5),
    ):
        for method, a in (("tet", None), ("str", alpha)):
            for cutoff, accuracy, steps in (("no", 90.0, T), ("yes", 89.0, T / 2)):
                reported.append(
                    {
                        "dataset": dataset,
                        "T": T,
                        "method": method,
                        "alpha": a,
                        "cutoff": cutoff,
                        "accuracy_mean": accuracy,
                        "accuracy_std": 0.5,
                        "avg_timestep_approx": steps,
                    }
                )
            per_step += [
                {"dataset": dataset, "method": method, "t": t, "accuracy_approx": 80.0 + t} for t in range(1, T + 1)
            ]
    return pd.DataFrame(reported), pd.DataFrame(per_step)


def summary_row(label: str, seed: int, accuracy: float, **values) -> dict:
    """One `summary_frame` row of digits T=4 with the given accuracy; other columns fixed."""
    row = {
        **ids("digits", 4, label, seed),
        "epsilon": 0.01,
        "accuracy": accuracy,
        "cutoff_accuracy": accuracy - 0.01,
        "mean_exit_step": 2.0,
        "speedup": 2.0,
        "accuracy_drop": 0.01,
        "mean_oct": 1.5,
        "sops_full": 2e6,
        "sops_cutoff": 1e6,
        "energy_pj_full": 3e6,
        "energy_pj_cutoff": 1.5e6,
        "wallclock_speedup": 1.5,
        "val_accuracy": float("nan"),
        "val_cutoff_accuracy": float("nan"),
        "val_mean_exit_step": float("nan"),
    }
    return {**row, **values}
