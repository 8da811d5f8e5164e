"""The full specification of one run, as the compute notebooks (01_train, 02_analyse) take it.

`./reproduce.sh` passes every value as a papermill parameter: the profile (its name or .yaml
path), the run's TrainConfig values (``config``), the `aoi.analysis.analyse_run` settings
(``analysis``), the run and results folders, and the torch CPU thread count. A notebook run by
hand with its defaults fills each missing value from the profile (its first run, its analysis
settings, its threads) and writes to the scratch folder ``runs/scratch/`` (in git's ignore
list), never to a study's run folder or to committed results. Pure Python: planning a study
imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aoi import layout
from aoi.files import read_json
from aoi.profiles import load_profile, run_grid

# runs by hand: scratch/<profile>/<run> and their analyses: scratch/results/<profile>/runs/<run>
SCRATCH = layout.REPO_ROOT / "runs" / "scratch"


def profile_threads(profile: dict) -> int:
    """Torch CPU threads of every run of ``profile``: its ``threads`` value, default 1. A run
    reproduces bit for bit on CPU only with the same count (`aoi.provenance` records it)."""
    return profile.get("threads", 1)


def analysis_settings(profile: dict) -> dict:
    """`aoi.analysis.analyse_run` keyword values of ``profile``'s runs: epsilon, epsilons,
    profile (its name) and the ``analysis`` sizes."""
    return {
        "epsilon": float(profile["epsilon"]),
        "epsilons": [float(e) for e in profile["epsilons"]],
        "profile": profile["name"],
        **profile.get("analysis", {}),
    }


@dataclass(frozen=True)
class RunSpec:
    """One run: its TrainConfig values, analysis settings, folders and torch threads.
    ``scratch`` says the run folder is the scratch one (emptied before training)."""

    config: dict
    analysis: dict
    run_dir: Path
    results_dir: Path
    threads: int
    scratch: bool

    @property
    def name(self) -> str:
        return layout.run_name(self.config)


def resolve(
    profile: str = "default",
    config: dict | None = None,
    run_dir: str | None = None,
    results_dir: str | None = None,
    analysis: dict | None = None,
    threads: int | None = None,
) -> RunSpec:
    """A `RunSpec` from a compute notebook's parameters, each None filled in: ``config`` with
    the config.json of ``run_dir`` if it holds one, else the first run of ``profile`` (a name
    or .yaml path); ``run_dir`` and ``results_dir`` with scratch folders; ``analysis`` and
    ``threads`` with the profile's."""
    spec = load_profile(profile)
    stored = (read_json(Path(run_dir) / "config.json") or {}).get("config") if run_dir is not None else None
    config = dict(config if config is not None else stored or run_grid(spec)[0])
    name = layout.run_name(config)
    threads = profile_threads(spec) if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return RunSpec(
        config=config,
        analysis=dict(analysis) if analysis is not None else analysis_settings(spec),
        run_dir=Path(run_dir) if run_dir is not None else layout.run_dir(spec["name"], name, SCRATCH),
        results_dir=(
            Path(results_dir)
            if results_dir is not None
            else layout.run_results_dir(spec["name"], name, SCRATCH / "results")
        ),
        threads=threads,
        scratch=run_dir is None,
    )


def notebook_parameters(profile: str, spec: dict, params: dict, run_folder: Path, results_folder: Path) -> dict:
    """The papermill parameters of 01_train and 02_analyse for one run of a study: ``profile``
    (name or path) and its loaded ``spec``, the run's TrainConfig ``params`` and its folders.
    Returns {notebook stem: parameters}."""
    train = {"profile": profile, "config": params, "run_dir": str(run_folder), "threads": profile_threads(spec)}
    analyse = {**train, "analysis": analysis_settings(spec), "results_dir": str(results_folder)}
    return {"01_train": train, "02_analyse": analyse}
