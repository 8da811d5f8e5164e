"""What the notebooks share: their papermill parameters checked, the compute run set up
(scratch folder, torch threads, the smoke profile under nbval), tables and text displayed, and
what JupyterLab saves of them.

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
import subprocess
from pathlib import Path

from aoi import layout
from aoi.files import verified_metrics
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
    """Whether ``metrics`` (just analysed into ``results_dir``) reproduce the repository's committed
    results of the same run (the same final weights, sha256), and when not, why: what differs of
    the conditions the weights are promised with (`aoi.results.REPRODUCIBLE_WITH`) and the
    parameters, both sides named; "as expected" when one differs, "not expected" when none does."""
    committed_path = layout.run_results_dir(metrics["profile"], metrics["run_name"], layout.REPO_ROOT / "results")
    if Path(results_dir).resolve() == committed_path.resolve():
        return f"written to the committed results {committed_path}"
    committed = verified_metrics(committed_path / "metrics.json")
    if committed is None:
        return f"no committed results of {metrics['run_name']} in profile {metrics['profile']!r} to compare with"
    from aoi.results import REPRODUCIBLE_WITH, condition_differences  # pandas: not at import

    where = committed_path / "metrics.json"
    records = [(run.get("provenance") or {}) for run in (metrics, committed)]
    differences = condition_differences(*(record.get("train") for record in records))
    differences += [
        (f"parameter {key}", metrics["params"].get(key), committed["params"].get(key))
        for key in dict.fromkeys([*metrics["params"], *committed["params"]])
        if metrics["params"].get(key) != committed["params"].get(key)
    ]
    named = "; ".join(f"{what}: {ours!r} here, {theirs!r} committed" for what, ours, theirs in differences)
    accuracy = f"accuracy at T {100 * metrics['accuracy']:.2f} % here, {100 * committed['accuracy']:.2f} % committed"
    weights = [(record.get("final") or {}).get("weights_sha256") for record in records]
    if weights[0] is not None and weights[0] == weights[1]:
        return f"the same final weights as the committed {where} (bit for bit); {accuracy}" + (
            f"; though {named}" if differences else ""
        )
    if differences:
        return (
            f"other final weights than the committed {where}, as expected: the weights are the same bit for bit "
            f"only with {REPRODUCIBLE_WITH}, and here {named}. {accuracy}: other rounding, amplified "
            "over epochs; compare them within the spread over seeds (table_accuracy.md)."
        )
    return (
        f"other final weights than the committed {where} with {REPRODUCIBLE_WITH}: "
        f"not expected; please report it with both metrics.json files. {accuracy}"
    )


def show_table(table, caption: str, key: str) -> None:
    """Display a table as HTML (`aoi.table_render.html_table`; ``key`` keeps its bytes the same on every run)."""
    from IPython.display import HTML, display

    from aoi.table_render import html_table

    display(HTML(html_table(table, caption, key)))


def show_markdown(text: str) -> None:
    """Display Markdown (captions, notes)."""
    from IPython.display import Markdown, display

    display(Markdown(text))


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # an output that shows a live widget (ipywidgets)


def without_widget_views(notebook: dict, every: bool = False) -> dict:
    """``notebook`` (nbformat JSON) with the widget view taken out of every output that also
    carries an image of it (the epsilon explorer's static figure, `aoi.explorer.show`): saved,
    such an output shows the image, where the view would show "model not found" once its kernel
    is gone. Other outputs, and views without an image, are left as they are. With ``every`` (an
    executed record, whose model ids no kernel serves later), every view goes, and the notebook's
    widget state with them; the outputs' other forms (PNG, text) stay."""
    if every:
        notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and (every or any(key.startswith("image/") for key in data)):
                del data[WIDGET_VIEW]
    return notebook


def as_git_keeps_it(notebook: dict, path: Path) -> dict:
    """``notebook`` (nbformat JSON) as git keeps it at ``path`` in its repository: through the clean
    filter that the repository's attributes name for ``path`` (nbstripout, .gitattributes; set up
    by ./reproduce.sh), as git runs it; unchanged outside a repository or without one."""
    where = {"cwd": path.parent, "capture_output": True, "text": True}
    attribute = subprocess.run(["git", "check-attr", "filter", "--", path.name], **where).stdout.strip()
    driver = attribute.rsplit(": ", 1)[-1] if attribute else "unspecified"
    command = subprocess.run(["git", "config", "--get", f"filter.{driver}.clean"], **where)
    if driver in ("unspecified", "unset") or command.returncode != 0:
        return notebook
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], **where).stdout.strip()
    cleaned = subprocess.run(command.stdout.strip(), shell=True, input=json.dumps(notebook), **{**where, "cwd": top})
    if cleaned.returncode != 0:
        raise RuntimeError(f"git's filter {command.stdout.strip()!r} failed on {path}: {cleaned.stderr.strip()}")
    return json.loads(cleaned.stdout)


def before_save(model: dict, path: str = "", contents_manager=None, **_) -> None:
    """Jupyter's pre-save hook: a notebook is saved without the widget views that have an image
    beside them (`without_widget_views`; the live widget stays live in the open notebook), and as
    git keeps it (`as_git_keeps_it`: no execution counts or run metadata, outputs where the
    notebook keeps them), so saving changes what git sees only when the content changed."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    without_widget_views(model["content"])
    root = getattr(contents_manager, "root_dir", None)
    if root is not None:
        model["content"] = as_git_keeps_it(model["content"], Path(root) / path)


def _jupyter_server_extension_points() -> list[dict]:
    """This module is a Jupyter server extension (enabled in the .venv by ./reproduce.sh)."""
    return [{"module": "aoi.notebook"}]


def _load_jupyter_server_extension(server_app) -> None:
    """Register `before_save` with the server's contents manager: what JupyterLab saves."""
    server_app.contents_manager.register_pre_save_hook(before_save)
