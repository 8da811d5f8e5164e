"""Profiles: plain YAML files that say which runs make up a study and how to evaluate them.

A profile holds ``datasets`` (each with the TrainConfig values of its runs and the ``methods``
to train: ``{method: tet}`` or ``{method: str, alpha: A}``), ``seeds``, the stated cutoff
``epsilon`` of the tables, the ``epsilons`` sweep of the cutoff curves, shared ``train`` values
and ``analysis`` sizes. One run is one (dataset, method, alpha, seed); `run_grid` lists them as
TrainConfig keyword dicts.
"""

from __future__ import annotations

from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).resolve().parent
_REQUIRED = ("datasets", "seeds", "epsilon", "epsilons")
_DATASET_REQUIRED = ("model", "T", "epochs", "batch_size", "lr", "methods")


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
    for dataset, entry in profile["datasets"].items():
        for key in _DATASET_REQUIRED:
            if key not in entry:
                fail(f"dataset {dataset!r} is missing {key!r}")
        for method in entry["methods"]:
            kind = method.get("method")
            if kind == "tet" and method.get("alpha") is not None:
                fail(f"dataset {dataset!r}: method tet takes no alpha")
            if kind == "str" and not (isinstance(method.get("alpha"), (int, float)) and method["alpha"] > 0):
                fail(f"dataset {dataset!r}: method str needs a positive alpha")
            if kind not in ("tet", "str"):
                fail(f"dataset {dataset!r}: unknown method {kind!r} (use tet or str)")


def run_params(
    profile: dict,
    dataset: str | None = None,
    method: str = "tet",
    alpha: float | None = None,
    seed: int | None = None,
    T: int | None = None,
) -> dict:
    """TrainConfig keyword values of one run of ``profile``.

    None picks the profile's first dataset, first seed, the first STR alpha of the dataset (for
    method "str") and the dataset's T.
    """
    datasets = profile["datasets"]
    dataset = next(iter(datasets)) if dataset is None else dataset
    if dataset not in datasets:
        raise ValueError(f"dataset {dataset!r} is not in profile {profile['name']!r}: use one of {', '.join(datasets)}")
    if method not in ("tet", "str"):
        raise ValueError(f"unknown method {method!r}: use tet or str")
    if method == "str" and alpha is None:
        alphas = [m["alpha"] for m in datasets[dataset]["methods"] if m["method"] == "str"]
        if not alphas:
            raise ValueError(f"profile {profile['name']!r} has no STR run for {dataset!r}: pass alpha")
        alpha = alphas[0]
    entry = {k: v for k, v in datasets[dataset].items() if k not in ("methods", "paper")}
    params = {
        **profile.get("train", {}),
        **entry,
        "dataset": dataset,
        "method": method,
        "alpha": float(alpha) if method == "str" else 0.0,
        "seed": int(profile["seeds"][0] if seed is None else seed),
    }
    if T is not None:
        params["T"] = int(T)
    return params


def run_grid(profile: dict) -> list[dict]:
    """Every run of ``profile`` as TrainConfig keyword dicts, by dataset, method, then seed."""
    return [
        run_params(profile, dataset, m["method"], m.get("alpha"), seed)
        for dataset, entry in profile["datasets"].items()
        for m in entry["methods"]
        for seed in profile["seeds"]
    ]
