"""Profiles: plain YAML files that say which runs make up a study and how to evaluate them.

A profile holds ``datasets`` (each with the TrainConfig values of its runs and the ``methods``
to train), ``seeds``, the stated cutoff ``epsilon`` of the tables, the ``epsilons`` sweep of the
cutoff curves, shared ``train`` values and ``analysis`` sizes. A ``methods`` entry is a dict of
TrainConfig values, ``{method: tet}`` or ``{method: str, alpha: A}`` plus any others (e.g.
``detach_reset``, ``width``); a list value stands for each of its values (``{method: str, alpha:
[0.1, 0.5], detach_reset: [false, true]}`` is four entries). One run is one (dataset, entry,
seed); `run_grid` lists them as TrainConfig keyword dicts. Loading checks every key against
`aoi.config.TrainConfig` and says what is wrong in one line.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import yaml

from aoi.config import TrainConfig
from aoi.methods import check_method

PROFILE_DIR = Path(__file__).resolve().parent
_REQUIRED = ("datasets", "seeds", "epsilon", "epsilons")
_DATASET_REQUIRED = ("model", "T", "epochs", "batch_size", "lr", "methods")
_DATASET_ONLY = ("methods", "paper")  # dataset keys that are not TrainConfig values
FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def profile_names() -> list[str]:
    """The profiles shipped with the package, sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name: str) -> dict:
    """Load and check a profile by name (``smoke``, ``default``, ...) or by path to a ``.yaml`` file.

    Returns the profile as a dict with ``name`` set (the file's stem).
    """
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown profile {name!r}: known profiles are {', '.join(profile_names())} "
            f"(or pass the path of a .yaml file)"
        )
    profile = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    profile["name"] = path.stem
    _check(profile, path)
    return profile


def expand(entry: dict) -> list[dict]:
    """A ``methods`` entry as the runs it stands for: one dict per combination of its list values."""
    keys = list(entry)
    choices = [value if isinstance(value, list) else [value] for value in entry.values()]
    return [dict(zip(keys, combination)) for combination in itertools.product(*choices)]


def _check(profile: dict, path: Path) -> None:
    """Raise a one-line ValueError for the first thing wrong in ``profile``."""

    def fail(what: str):
        raise ValueError(f"profile {path}: {what}")

    for key in _REQUIRED:
        if key not in profile:
            fail(f"missing key {key!r}")
    seeds = profile["seeds"]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        fail("'seeds' must be a non-empty list of integers")
    epsilons = [float(e) for e in profile["epsilons"]]
    if any(not 0.0 <= e < 1.0 for e in epsilons):
        fail("every value of 'epsilons' must lie in [0, 1)")
    if float(profile["epsilon"]) not in epsilons:
        fail(f"the stated epsilon {profile['epsilon']} must be one of 'epsilons' (its curve point)")
    if not profile["datasets"]:
        fail("'datasets' is empty")
    unknown = sorted(set(profile.get("train", {})) - set(FIELDS))
    if unknown:
        fail(f"'train' has unknown keys {unknown}: use TrainConfig fields ({', '.join(FIELDS)})")
    for dataset, entry in profile["datasets"].items():
        problem = _dataset_problem(entry)
        if problem:
            fail(f"dataset {dataset!r}: {problem}")


def _dataset_problem(entry: dict) -> str | None:
    """What is wrong with one dataset entry of a profile, or None."""
    missing = [key for key in _DATASET_REQUIRED if key not in entry]
    if missing:
        return f"missing {missing[0]!r}"
    unknown = sorted(set(entry) - set(FIELDS) - set(_DATASET_ONLY))
    if unknown:
        return f"unknown keys {unknown}: use TrainConfig fields ({', '.join(FIELDS)})"
    for method in entry["methods"]:
        unknown = sorted(set(method) - set(FIELDS))
        if unknown:
            return f"method entry {method} has unknown keys {unknown}"
        for run in expand(method):
            problems = check_method(run.get("method"), run.get("alpha", 0.0))
            if not isinstance(run.get("detach_reset", False), bool):
                problems.append(f"detach_reset must be true or false, got {run['detach_reset']!r}")
            if problems:
                return f"method entry {method}: {problems[0]}"
    return None


def run_params(
    profile: dict,
    dataset: str | None = None,
    method: str = "tet",
    alpha: float | None = None,
    seed: int | None = None,
    T: int | None = None,
    **overrides,
) -> dict:
    """TrainConfig keyword values of one run of ``profile``; ``overrides`` are further TrainConfig values.

    None picks the profile's first dataset, first seed, the first STR alpha of the dataset (for
    method "str") and the dataset's T.
    """
    datasets = profile["datasets"]
    dataset = next(iter(datasets)) if dataset is None else dataset
    if dataset not in datasets:
        raise ValueError(f"dataset {dataset!r} is not in profile {profile['name']!r}: use one of {', '.join(datasets)}")
    if method == "str" and alpha is None:
        alphas = [run["alpha"] for m in datasets[dataset]["methods"] for run in expand(m) if run["method"] == "str"]
        if not alphas:
            raise ValueError(f"profile {profile['name']!r} has no STR run for {dataset!r}: pass alpha")
        alpha = alphas[0]
    problems = check_method(method, float(alpha) if method == "str" else 0.0)
    if problems:
        raise ValueError(problems[0])
    entry = {k: v for k, v in datasets[dataset].items() if k not in _DATASET_ONLY}
    params = {
        **profile.get("train", {}),
        **entry,
        **overrides,
        "dataset": dataset,
        "method": method,
        "alpha": float(alpha) if method == "str" else 0.0,
        "seed": int(profile["seeds"][0] if seed is None else seed),
    }
    if T is not None:
        params["T"] = int(T)
    return params


def run_grid(profile: dict) -> list[dict]:
    """Every run of ``profile`` as TrainConfig keyword dicts, by dataset, method entry, then seed."""
    grid = []
    for dataset, entry in profile["datasets"].items():
        for method in entry["methods"]:
            for run in expand(method):
                extra = {k: v for k, v in run.items() if k not in ("method", "alpha")}
                for seed in profile["seeds"]:
                    grid.append(run_params(profile, dataset, run["method"], run.get("alpha"), seed, **extra))
    return grid
