"""Profiles: plain YAML files that say which runs make up a study and how to evaluate them.

A profile holds ``datasets`` (each with the TrainConfig values of its runs and the ``methods``
to train), ``seeds``, the stated cutoff ``epsilon`` of the tables, the ``epsilons`` sweep of the
cutoff curves, shared ``train`` values and ``analysis`` sizes, and the ``resources`` a run asks
of a cluster (shared, and per dataset: `run_resources`; site settings such as the partition or
account never: they belong to the command line). A ``methods`` entry is a dict of
TrainConfig values, ``{method: tet}`` or ``{method: str, alpha: A}`` plus any others (e.g.
``detach_reset``, ``width``); a list value stands for each of its values (``{method: str, alpha:
[0.1, 0.5], detach_reset: [false, true]}`` is four entries). One run is one (dataset, entry,
seed), and with ``folds`` = k (cross-validation) one of each fold; `run_grid` lists them as
TrainConfig keyword dicts.

A profile's name (its folders ``runs/<name>`` and ``results/<name>``) is its ``name:`` value,
else its file's stem; a profile file outside ``aoi/profiles`` may not take a built-in profile's
name (its runs would replace the built-in's). Loading checks every key at every level against
its schema (TrainConfig's fields and their types for run values, `aoi.analysis.analyse_run`'s
sizes for ``analysis``) and reports every problem at once, in one line naming the file; the
ranges of run values are TrainConfig's to check.
"""

from __future__ import annotations

import difflib
import itertools
import re
import typing
from pathlib import Path

import yaml

from aoi.config import TrainConfig, _is_integer, _is_number
from aoi.errors import UserError
from aoi.methods import check_method

PROFILE_DIR = Path(__file__).resolve().parent
GRID_KEYS = {  # TrainConfig values the grid sets for each run -> where a profile gives them
    "dataset": "the keys of datasets",
    "method": "a dataset's methods",
    "alpha": "a dataset's methods",
    "seed": "seeds",
    "fold": "folds (one run per fold)",
}
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # profile and dataset names: one folder each
_REQUIRED = ("datasets", "seeds", "epsilon", "epsilons")
_DATASET_REQUIRED = ("model", "T", "epochs", "batch_size", "lr", "methods")
_DATASET_ONLY = ("methods", "paper", "resources")  # dataset keys that are not TrainConfig values


class ProfileError(UserError, ValueError):
    """A profile that cannot be used: the message names its file and every problem."""


def _kind(test, text: str):
    """A value check: None when ``test(value)`` holds, else what was expected."""
    return lambda value: None if test(value) else f"expected {text}, got {value!r}{_quoted_number(value)}"


def _quoted_number(value) -> str:
    """A hint when ``value`` is a number that YAML read as text ("1", 1e-3)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (text: write numbers unquoted, with a dot before any exponent: 1.0e-3)"
    return ""


def _is_positive(value) -> bool:
    return _is_number(value) and value > 0


def _is_fraction(value) -> bool:
    return _is_number(value) and 0 <= value < 1


def _integer(least: int):
    return _kind(lambda v: _is_integer(v) and v >= least, f"an integer >= {least}")


def _non_empty_list(test, text: str):
    return _kind(lambda v: isinstance(v, list) and v and all(test(x) for x in v), f"a non-empty list of {text}")


def _each(check):
    """``check`` of a method entry's value, or of each value of a list (which stands for each of its values)."""

    def check_each(value):
        if not isinstance(value, list):
            return check(value)
        return next(filter(None, map(check, value)), None) if value else "expected a non-empty list, got []"

    return check_each


_TEXT = _kind(lambda v: isinstance(v, str), "text")
_MAPPING = _kind(lambda v: isinstance(v, dict), "a mapping")
_TYPES = {  # TrainConfig field type -> (test, text)
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (_is_integer, "an integer"),
    float: (_is_number, "a number"),
    str: (lambda v: isinstance(v, str), "text"),
}


def _field_check(hint):
    """The check of a TrainConfig field's value, from its type hint (``int | None``: an integer or null)."""
    args = typing.get_args(hint) or (hint,)
    test, text = _TYPES[next(arg for arg in args if arg is not type(None))]
    if type(None) in args:
        return _kind(lambda v: v is None or test(v), f"{text} or null")
    return _kind(test, text)


_FIELD_CHECKS = {name: _field_check(hint) for name, hint in typing.get_type_hints(TrainConfig).items()}
_RUN_VALUES = {name: check for name, check in _FIELD_CHECKS.items() if name not in GRID_KEYS}
SCHEMA = {  # key -> value check; train, analysis and datasets are checked key by key below
    "name": _TEXT,
    "description": _TEXT,
    "jobs": _integer(1),
    "threads": _integer(1),
    "presentation": _non_empty_list(lambda v: isinstance(v, str), "notebook names"),
    "epsilon": _kind(_is_fraction, "a number in [0, 1)"),
    "epsilons": _non_empty_list(_is_fraction, "numbers in [0, 1)"),
    "seeds": _non_empty_list(lambda v: _is_integer(v) and v >= 0, "integers >= 0"),
    "train": _MAPPING,
    "analysis": _MAPPING,
    "resources": _MAPPING,
    "datasets": _kind(lambda v: isinstance(v, dict) and v, "a non-empty mapping of dataset names to runs"),
}
ANALYSIS = {  # the aoi.analysis.analyse_run arguments of analysis: (the others come from the profile)
    "stf_samples": _integer(1),
    "timing_samples": _integer(0),
    "timing_repeats": _integer(1),
    "device": _TEXT,
}
RESOURCES = {  # what one run's Slurm job asks for (aoi.executors.slurm); site settings never go here
    "gpus": _integer(0),  # GPUs per node, one task (a DDP process) each
    "tasks": _integer(1),  # tasks (DDP processes) per node without GPUs; with GPUs, one per GPU
    "nodes": _integer(1),
    "cpus": _integer(1),  # CPU cores per task
    "mem_gb": _kind(_is_positive, "a number of GB > 0"),  # memory per node
    "hours": _kind(_is_positive, "a number of hours > 0"),  # the job's time limit
}
RESOURCE_DEFAULTS = {"gpus": 0, "nodes": 1, "cpus": 1}
_METHOD = {name: _each(check) for name, check in _FIELD_CHECKS.items() if name not in ("dataset", "seed", "fold")}
_DATASET = {
    **_RUN_VALUES,
    "methods": _non_empty_list(lambda v: isinstance(v, dict), "method entries such as {method: tet}"),
    "paper": _non_empty_list(lambda v: isinstance(v, str), "dataset names of the paper"),
    "resources": _MAPPING,
}


def profile_names() -> list[str]:
    """The profiles shipped with the package, sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _is_path(profile: str) -> bool:
    return str(profile).endswith((".yaml", ".yml"))


def profile_path(profile: str) -> Path:
    """The file of ``profile``: a built-in profile's name (``smoke``, ``default``, ...) or a .yaml path."""
    path = Path(profile) if _is_path(profile) else PROFILE_DIR / f"{profile}.yaml"
    if not (path.is_file() if _is_path(profile) else profile in profile_names()):
        raise ProfileError(
            f"unknown profile {profile!r}: known profiles are {', '.join(profile_names())} "
            f"(or pass the path of a .yaml file)"
        )
    return path


def profile_name(profile: str) -> str:
    """The name of ``profile`` (a built-in's name or a .yaml path: its ``name:``, else the file's
    stem), unchecked: `load_profile` checks it."""
    if not _is_path(profile):
        return str(profile)
    path = Path(profile)
    values = _read(path) if path.is_file() else None
    return str(values.get("name", path.stem)) if isinstance(values, dict) else path.stem


def load_profile(profile: str) -> dict:
    """Load and check a profile by name (``smoke``, ``default``, ...) or by path to a ``.yaml`` file.

    Returns the profile as a dict with ``name`` set (`profile_name`); a `ProfileError` names the
    file and every problem found.
    """
    path = profile_path(profile)
    values = _read(path)
    problems = _problems(values)
    if isinstance(values, dict):
        problems += _name_problems(values.get("name", path.stem), path, "name" in values)
        values.setdefault("name", path.stem)
    if problems:
        raise ProfileError(f"profile {path}: {'; '.join(problems)}")
    return values


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (not the last kept)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                mark = node.value[i][0].start_mark
                raise yaml.constructor.ConstructorError(problem=f"key {key!r} given twice", problem_mark=mark)
        return super().construct_mapping(node, deep)


def _read(path: Path):
    """The YAML document in ``path``; invalid YAML is a `ProfileError` naming the file and line."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ProfileError(f"profile {path}: not valid YAML: {getattr(error, 'problem', error)}{where}") from None


def _name_problems(name, path: Path, explicit: bool) -> list[str]:
    """What is wrong with a profile's name: it must name a folder, and only a built-in's own file
    may take a built-in's name."""
    if not isinstance(name, str):
        return []  # reported by the schema
    fix = "change its `name:`" if explicit else "add `name: <another name>` to it"
    if not FOLDER_NAME.fullmatch(name):
        return [f"name {name!r} cannot name a folder (letters, digits, '_', '-', '.' not first): {fix}"]
    if name in profile_names() and path.resolve() != (PROFILE_DIR / f"{name}.yaml"):
        return [
            f"name {name!r} is the built-in profile's: its runs/{name} and results/{name} would be "
            f"replaced by this file's; {fix}"
        ]
    return []


def _problems(profile) -> list[str]:
    """Every problem of a profile's values (the YAML document), at every level."""
    if not isinstance(profile, dict):
        return [f"expected a mapping with the keys {', '.join(_REQUIRED)}, got {profile!r}"]
    problems = _mapping_problems(profile, SCHEMA, "", _REQUIRED)
    epsilon, epsilons = profile.get("epsilon"), profile.get("epsilons")
    if SCHEMA["epsilon"](epsilon) is None and SCHEMA["epsilons"](epsilons) is None and epsilon not in epsilons:
        problems.append(f"the stated epsilon {epsilon} must be one of epsilons (its curve point)")
    for key, schema in (("train", _RUN_VALUES), ("analysis", ANALYSIS), ("resources", RESOURCES)):
        if isinstance(profile.get(key), dict):
            problems += _mapping_problems(profile[key], schema, key)
    if isinstance(profile.get("resources"), dict):
        problems += _resource_problems(profile["resources"], "resources")
    if isinstance(profile.get("datasets"), dict):
        for dataset, entry in profile["datasets"].items():
            problems += _dataset_problems(dataset, entry)
    return problems


def _at(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def _mapping_problems(values: dict, schema: dict, where: str, required=()) -> list[str]:
    """A required key missing, an unknown key (with the key likely meant) or a wrong value in the
    mapping ``values`` at ``where`` (e.g. ``datasets.digits``)."""
    problems = [f"missing key {_at(where, key)}" for key in required if key not in values]
    for key, value in values.items():
        if key in GRID_KEYS and key not in schema:
            problems.append(f"{_at(where, key)}: not here, {key} is given by {GRID_KEYS[key]}")
        elif key not in schema:
            meant = difflib.get_close_matches(str(key), list(schema), 1)
            hint = f"did you mean {meant[0]}?" if meant else f"use {', '.join(schema)}"
            problems.append(f"{_at(where, key)}: unknown key, {hint}")
        elif problem := schema[key](value):
            problems.append(f"{_at(where, key)}: {problem}")
    return problems


def _dataset_problems(dataset, entry) -> list[str]:
    """Every problem of one dataset entry and of its method entries."""
    where = f"datasets.{dataset}"
    if not isinstance(dataset, str) or not FOLDER_NAME.fullmatch(dataset):
        return [f"{where}: a dataset name must name a folder (letters, digits, '_', '-', '.' not first)"]
    if not isinstance(entry, dict):
        return [f"{where}: expected a mapping of TrainConfig values and methods, got {entry!r}"]
    problems = _mapping_problems(entry, _DATASET, where, _DATASET_REQUIRED)
    if isinstance(entry.get("resources"), dict):
        problems += _mapping_problems(entry["resources"], RESOURCES, f"{where}.resources")
        problems += _resource_problems(entry["resources"], f"{where}.resources")
    if _DATASET["methods"](entry.get("methods")) is None:
        for i, method in enumerate(entry["methods"]):
            problems += _method_problems(method, f"{where}.methods[{i}]")
    return problems


def _resource_problems(resources: dict, where: str) -> list[str]:
    """With GPUs a job runs one task per GPU: ``tasks`` may not say otherwise."""
    gpus, tasks = resources.get("gpus"), resources.get("tasks")
    if _is_integer(gpus) and _is_integer(tasks) and 0 < gpus != tasks:
        return [f"{where}: tasks {tasks} with gpus {gpus}: a job runs one task per GPU, leave tasks out"]
    return []


def run_resources(profile: dict, dataset: str) -> dict:
    """What one run of ``dataset`` asks of a cluster: the profile's ``resources``, then the dataset's
    own, over `RESOURCE_DEFAULTS`; ``tasks`` (per node) is ``gpus`` when the run has GPUs, else 1
    unless given. ``mem_gb`` and ``hours`` have no default (`aoi.executors.slurm` asks for them)."""
    own = profile["datasets"][dataset].get("resources", {})
    resources = {**RESOURCE_DEFAULTS, **profile.get("resources", {}), **own}
    resources["tasks"] = resources["gpus"] or resources.get("tasks", 1)
    return resources


def _method_problems(method: dict, where: str) -> list[str]:
    """The problems of one method entry: its keys and values (each value of a list), else the
    first (method, alpha) of it that `aoi.methods.check_method` refuses."""
    problems = _mapping_problems(method, _METHOD, where, ("method",))
    if problems:
        return problems
    refused = [problem for run in expand(method) for problem in check_method(run["method"], run.get("alpha", 0.0))]
    return [f"{where}: {refused[0]}"] if refused else []


def expand(entry: dict) -> list[dict]:
    """A ``methods`` entry as the runs it stands for: one dict per combination of its list values."""
    keys = list(entry)
    choices = [value if isinstance(value, list) else [value] for value in entry.values()]
    return [dict(zip(keys, combination)) for combination in itertools.product(*choices)]


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
    """Every run of ``profile`` as TrainConfig keyword dicts, by dataset, method entry, seed, then
    fold (with ``folds`` = k, one run for each fold 0 .. k-1)."""
    grid = []
    for dataset, entry in profile["datasets"].items():
        for method in entry["methods"]:
            for run in expand(method):
                extra = {k: v for k, v in run.items() if k not in ("method", "alpha")}
                for seed in profile["seeds"]:
                    params = run_params(profile, dataset, run["method"], run.get("alpha"), seed, **extra)
                    grid += [{**params, "fold": f} for f in range(params["folds"])] if params.get("folds") else [params]
    return grid
