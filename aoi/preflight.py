"""What stops a study before anything starts: every problem of the plan at once, one line each.

`problems` asks, in order: is every notebook the study executes committed (`aoi.stages.code_changes`)?
can every run's files be read? does TrainConfig accept every run's values? are the files of the
datasets placed by hand there (the data registry's own checks, under the data root the notebooks
use)? and can the executor run the plan (`problems` of `aoi.executors`: CUDA for ``device: cuda``
on local processes; the Slurm client and each job's resources for Slurm)? A plan with a problem
runs nothing and deletes nothing. Imports torch (TrainConfig's ranges, the dataset checks): a dry
run does not ask.
"""

from __future__ import annotations

from aoi import stages
from aoi.errors import UserError
from aoi.notebook import data_root
from aoi.plan import Run


def problems(planned: list[Run], todo: list[Run], presentation: list[str], executor) -> list[str]:
    """Every problem that stops the study of ``planned`` runs (``todo`` to run, then the
    ``presentation`` notebooks) on ``executor``, one line each; empty when it can start."""
    edited = [stages.code_changes(stages.NOTEBOOK_DIR / f"{stem}.ipynb") for stem in [*stages.STAGES, *presentation]]
    unreadable = [run.note for run in planned if run.status == "unreadable"]
    return [
        *filter(None, edited),
        *unreadable,
        *config_problems(todo),
        *dataset_problems(todo),
        *executor.problems(todo),
    ]


def config_problems(runs: list[Run]) -> list[str]:
    """What TrainConfig refuses in the values of ``runs`` (their ranges), one line per distinct
    problem naming its first run."""
    from aoi.config import TrainConfig

    found = {}
    for run in runs:
        try:
            TrainConfig(**run.params)
        except ValueError as error:
            found.setdefault(str(error), run.name)
    return [f"{name}: {message}" for message, name in found.items()]


def dataset_problems(runs: list[Run]) -> list[str]:
    """The datasets of ``runs`` placed by hand whose files are not under the data root, one line
    each naming the layout expected (`aoi.data.events.check_files` for event data, ImageNet's
    folder check). Embedded data need nothing; CIFAR and Fashion-MNIST download on first use."""
    from aoi.data import get_dataset
    from aoi.data.events import LAYOUTS, check_files

    found, root = {}, data_root()
    for name in dict.fromkeys(run.params["dataset"] for run in runs):
        try:
            if name in LAYOUTS:
                for split in ("train", "test"):
                    check_files(name, root, split)
            elif name == "imagenet":
                get_dataset(name, "test", root=root)
        except UserError as error:
            found[name] = f"{error} (set AOI_DATA to the data root)"
    return list(found.values())
