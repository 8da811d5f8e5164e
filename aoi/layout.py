"""Where a study's files go, what its runs are called, and whether a run is finished.

    runs/<profile>/<run_name>/          checkpoint, logits, config.json, final.json, log.csv,
                                        the executed notebooks (not in git)
    results/<profile>/runs/<run_name>/  metrics.json and small CSVs of one run (`aoi.analysis`)
    results/<profile>/                  figures and tables of the whole profile
    results/paper/                      the paper's own numbers (reported.csv, per_timestep_approx.csv)

Roots come from the arguments, else $AOI_RUNS / $AOI_RESULTS, else ``runs/`` and ``results/``
in the repository. Pure Python: planning a study (``./reproduce.sh --dry-run``) imports no torch.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from aoi.files import read_json, verified_metrics

REPO_ROOT = Path(__file__).resolve().parents[1]
PAPER_DIR = REPO_ROOT / "results" / "paper"
_RUN_FOLDER = re.compile(r"T\d+-(tet|str)(-\S+)?-s\d+")  # the second part of `run_name`


def run_name(params: dict) -> str:
    """``<dataset>/T<T>-<method>[-a<alpha>][-w<width>][-detached][-f<fold>of<folds>]-s<seed>`` of
    TrainConfig values.

    E.g. ``ndigits/T10-str-a0.5-s0``; ``-w2`` for a model of twice the width, ``-detached``
    for snnTorch's reset gradient (`aoi.lif_scan`), ``-f2of5`` for the run that tests fold 2 of
    a 5-fold cross-validation.
    """
    alpha = f"-a{float(params['alpha']):g}" if params["method"] == "str" else ""
    width = f"-w{float(params['width']):g}" if params.get("width", 1.0) != 1.0 else ""
    detached = "-detached" if params.get("detach_reset", False) else ""
    fold = f"-f{params.get('fold', 0)}of{params['folds']}" if params.get("folds", 0) else ""
    return f"{params['dataset']}/T{params['T']}-{params['method']}{alpha}{width}{detached}{fold}-s{params['seed']}"


def run_names_under(folder: str | os.PathLike) -> list[str]:
    """The names (`run_name`) of the run folders ``<dataset>/<run>`` under ``folder`` (a profile's
    runs or results/<profile>/runs), sorted; other folders (logs, say) are not runs."""
    folder = Path(folder)
    found = folder.glob("*/*") if folder.is_dir() else []
    return sorted(p.relative_to(folder).as_posix() for p in found if p.is_dir() and _RUN_FOLDER.fullmatch(p.name))


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """Root of the run directories: ``root``, else $AOI_RUNS, else ``<repo>/runs``."""
    return Path(root or os.environ.get("AOI_RUNS") or REPO_ROOT / "runs")


def results_root(root: str | os.PathLike | None = None) -> Path:
    """Root of the results: ``root``, else $AOI_RESULTS, else ``<repo>/results``."""
    return Path(root or os.environ.get("AOI_RESULTS") or REPO_ROOT / "results")


def run_dir(profile: str, name: str, root=None) -> Path:
    """``runs/<profile>/<run_name>``: checkpoints, logits and executed notebooks of one run."""
    return runs_root(root) / profile / name


def profile_results_dir(profile: str, root=None) -> Path:
    """``results/<profile>``: figures and tables of a profile."""
    return results_root(root) / profile


def run_results_dir(profile: str, name: str, root=None) -> Path:
    """``results/<profile>/runs/<run_name>``: metrics.json and CSVs of one run."""
    return profile_results_dir(profile, root) / "runs" / name


def canonical(params: dict) -> dict:
    """``params`` as JSON would give them back (so a stored and a fresh dict compare equal)."""
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def params_match(stored: dict | None, params: dict) -> bool:
    """True when every value of ``params`` equals the stored one (stored may hold more keys)."""
    if not stored:
        return False
    stored, params = canonical(stored), canonical(params)
    return all(stored.get(key) == value for key, value in params.items())


def is_finished(run_directory: Path, results_directory: Path, params: dict) -> bool:
    """A run is finished when training wrote final.json, the analysis wrote metrics.json, and
    both were made with ``params`` (TrainConfig values). A metrics.json that does not hold what aoi
    wrote (`aoi.files.verified_metrics`) is an `aoi.files.UnreadableFile`."""
    config = read_json(Path(run_directory) / "config.json") or {}
    if not (Path(run_directory) / "final.json").is_file() or not params_match(config.get("config", config), params):
        return False
    metrics = verified_metrics(Path(results_directory) / "metrics.json") or {}
    return params_match(metrics.get("params"), params)
