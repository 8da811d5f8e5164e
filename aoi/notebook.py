"""What the notebooks share: their papermill parameters checked, the compute run set up
(scratch folder, torch threads, the smoke profile under nbval), tables and text displayed.

Every notebook's first code cell after its parameters calls `check_parameters`, so a parameter
that papermill injects but the notebook does not declare is an error naming it (papermill
itself only warns). The compute notebooks call `compute_run`; under pytest (nbval) their
defaults become the smoke profile's first run, still in the scratch folder. The parameter
parsing (`declared_parameters`) is also what ``./reproduce.sh`` checks its own parameters
against before it executes a notebook. No torch at import (``./reproduce.sh --dry-run``).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

from aoi import layout
from aoi.files import read_json
from aoi.runspec import RunSpec, resolve

PAPERMILL_HEADER = "# Parameters"  # the first line of the cell papermill injects
TEST_PROFILE = "smoke"  # what the compute notebooks run under nbval


def assigned_names(source: str) -> list[str]:
    """Names assigned at the top level of Python ``source`` (a parameters cell), in order."""
    names = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names += [target.id for target in targets if isinstance(target, ast.Name)]
    return names


def declared_parameters(path: str | os.PathLike) -> dict:
    """The parameters a notebook file declares in its cell tagged "parameters": name -> default
    value (None where the default is not a literal)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise ValueError(f"{path} has no cell tagged 'parameters': papermill cannot pass it values")
    source = tagged[0]["source"]
    defaults = {}
    for node in ast.parse(source if isinstance(source, str) else "".join(source)).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                defaults[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                defaults[node.targets[0].id] = None
    return defaults


def check_parameters(history: list[str] | None = None) -> None:
    """Raise ValueError when papermill injected a parameter the notebook does not declare.

    ``history`` is IPython's ``In`` (cell sources in execution order; default: this kernel's):
    the injected cell starts with "# Parameters" and follows the notebook's parameters cell.
    """
    if history is None:
        from IPython import get_ipython

        shell = get_ipython()
        history = shell.user_ns.get("In", []) if shell else []
    injected = [i for i, source in enumerate(history) if source.startswith(PAPERMILL_HEADER)]
    if not injected or injected[-1] == 0:
        return
    declared = assigned_names(history[injected[-1] - 1])
    unknown = [name for name in assigned_names(history[injected[-1]]) if name not in declared]
    if unknown:
        raise ValueError(
            f"unknown notebook parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
            f"this notebook takes {', '.join(declared)}"
        )


def under_test() -> bool:
    """True in a kernel that pytest started (nbval): pytest sets PYTEST_CURRENT_TEST."""
    return "PYTEST_CURRENT_TEST" in os.environ


def compute_run(profile: str = "default", config: dict | None = None, **parameters) -> RunSpec:
    """The run of a compute notebook (`aoi.runspec.resolve` of its parameters), set up in this
    kernel: torch uses the run's threads, the data root defaults to the repository's ``data/``,
    and under nbval a notebook left at its defaults runs the smoke profile. Prints what runs where."""
    if config is None and under_test():
        profile = TEST_PROFILE
    run = resolve(profile, config, **parameters)
    set_threads(run.threads)
    os.environ["AOI_DATA"] = str(data_root())  # not ./data of wherever Jupyter started
    where = "scratch folder" if run.scratch else "run folder"
    print(f"run {run.name} ({run.threads} torch thread{'s' if run.threads > 1 else ''}); {where} {run.run_dir}")
    return run


def data_root() -> Path:
    """The data root of the compute notebooks: $AOI_DATA, else the repository's ``data/``."""
    return Path(os.environ.get("AOI_DATA") or layout.REPO_ROOT / "data")


def set_threads(threads: int) -> None:
    """Torch (and with it the LIF's numba kernels) use ``threads`` CPU threads."""
    import torch

    torch.set_num_threads(threads)


def clear_scratch(run: RunSpec) -> None:
    """Empty ``run``'s folder when it is the scratch one, so a run by hand starts afresh; a
    study's run folder is kept (training resumes from its checkpoint)."""
    if run.scratch and run.run_dir.exists():
        shutil.rmtree(run.run_dir)


def compare_with_committed(metrics: dict, results_dir: Path) -> str:
    """Whether ``metrics`` (just analysed into ``results_dir``) reproduce the repository's
    committed results of the same run: same final weights (sha256), and the torch threads of both."""
    committed_path = layout.run_results_dir(metrics["profile"], metrics["run_name"], layout.REPO_ROOT / "results")
    if Path(results_dir).resolve() == committed_path.resolve():
        return f"written to the committed results {committed_path}"
    committed = read_json(committed_path / "metrics.json")
    if committed is None:
        return f"no committed results of {metrics['run_name']} in profile {metrics['profile']!r} to compare with"
    ours, theirs = (_weights_and_threads(m) for m in (metrics, committed))
    verdict = "the same final weights" if ours[0] == theirs[0] else "other final weights"
    return (
        f"{verdict} as the committed {committed_path / 'metrics.json'} (torch threads: here {ours[1]}, "
        f"committed {theirs[1]}; accuracy {100 * metrics['accuracy']:.2f} % vs {100 * committed['accuracy']:.2f} %)"
    )


def _weights_and_threads(metrics: dict) -> tuple[str | None, object]:
    provenance = metrics.get("provenance") or {}
    machine = (provenance.get("train") or {}).get("machine") or {}
    return (provenance.get("final") or {}).get("weights_sha256"), machine.get("torch_threads", "not recorded")


def show_table(table, caption: str, key: str) -> None:
    """Display a table as HTML (`aoi.tables.html_table`; ``key`` keeps its bytes the same on every run)."""
    from IPython.display import HTML, display

    from aoi.tables import html_table

    display(HTML(html_table(table, caption, key)))


def show_markdown(text: str) -> None:
    """Display Markdown (captions, notes)."""
    from IPython.display import Markdown, display

    display(Markdown(text))
