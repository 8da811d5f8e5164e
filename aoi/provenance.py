"""Where and with what a result was made: git commit, package versions, machine, code fingerprint.

One record format for training (config.json) and analysis (metrics.json), so two results can
be compared by what produced them. Bitwise reproducibility on CPU needs the same torch thread
count (and, across machines, the same CPU model), both part of the machine record.

The code fingerprint (`code_fingerprint`) identifies the code that decides a run's numbers:
every module under ``aoi/`` except `PRESENTATION_MODULES`, plus the code cells of the compute
notebooks that ``./reproduce.sh`` executes per run (`COMPUTE_NOTEBOOKS`). The excluded modules
plan, read back or show runs, or convert your own networks, and never compute a run (none of them
is imported by `aoi.train`, `aoi.evaluate` or `aoi.analysis`, which tests/test_provenance.py
checks), so editing a figure or the study runner does not make every run stale. What they hand to
a run is recorded beside the fingerprint and compared on its own: its TrainConfig values
(`aoi.layout.is_finished`) and torch threads (`staleness`); the profile's analysis sizes are not
(after changing them, rerun with ``--force``). Each source counts
as its syntax tree without docstrings, unparsed: an edit of a comment, docstring or layout keeps
the fingerprint; any code edit changes it, even one that changes no number.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

from aoi.layout import REPO_ROOT

PACKAGES = ("aoi", "torch", "torchvision", "snntorch", "tonic", "numpy", "numba", "pandas")
PRESENTATION_MODULES = (  # under aoi/: modules and folders that never compute a run (see above)
    "__main__.py",
    "executors",
    "explorer.py",
    "interop.py",
    "nir",
    "notebook.py",
    "paired.py",
    "paper_figure.py",
    "plan.py",
    "plots.py",
    "preflight.py",
    "profiles",
    "reproduce.py",
    "results.py",
    "runspec.py",
    "stages.py",
    "table_render.py",
    "tables.py",
)
COMPUTE_NOTEBOOKS = ("notebooks/01_train.ipynb", "notebooks/02_analyse.ipynb")
FINGERPRINT_CHARS = 12  # hex digits kept of the sha256


def git_commit() -> tuple[str, bool | None]:
    """(commit, dirty) of the repository holding this package, or ("unknown", None). Dirty means a
    tracked file differs from the commit, results/ and notebooks/ aside (a study rewrites their
    outputs; ./reproduce.sh checks the notebooks' code against the commit itself)."""
    root = Path(__file__).resolve().parent.parent
    try:
        run = {"cwd": root, "capture_output": True, "text": True, "timeout": 10, "check": True}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        outside = ["--", ".", ":(exclude)results", ":(exclude)notebooks"]
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", *outside], **run).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def package_version(package: str) -> str:
    """The installed version of ``package``, or "not installed"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# CPU features that change which kernels oneDNN and numba pick, hence how sums are rounded
KERNEL_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile")


def cpu_model(cpuinfo: str | None = None, caches: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> str:
    """The CPU as far as it decides a run's rounding: /proc/cpuinfo's model name with its family,
    model and stepping, the `KERNEL_FLAGS` it has and its L2 and L3 sizes, e.g. "AMD EPYC (cpu family 25
    model 1 stepping 1; avx avx2 fma; L2 512K L3 32768K)"; virtual machines often show one model
    name for several generations. Else `platform.processor`, else "unknown"."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        return platform.processor() or "unknown"
    fields = {}
    for line in cpuinfo.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "model name" not in fields:
        return platform.processor() or "unknown"
    flags = [flag for flag in KERNEL_FLAGS if flag in fields.get("flags", "").split()]
    ident = " ".join(f"{key} {fields[key]}" for key in ("cpu family", "model", "stepping") if key in fields)
    return f"{fields['model name']} ({'; '.join(filter(None, [ident, ' '.join(flags), cache_sizes(caches)]))})"


def cache_sizes(caches: Path) -> str:
    """ "L2 512K L3 32768K" from the cache folders of one CPU under /sys ("" where not readable)."""
    sizes = {}
    for index in sorted(Path(caches).glob("index*")):
        try:
            level, size = (index / "level").read_text().strip(), (index / "size").read_text().strip()
        except OSError:
            continue
        if level in ("2", "3"):
            sizes[f"L{level}"] = size
    return " ".join(f"{level} {size}" for level, size in sorted(sizes.items()))


def machine(device=None, world_size: int = 1) -> dict:
    """Platform, Python, CPU model and count, torch threads, and the torch ``device`` (GPU name on CUDA)."""
    import torch

    device = torch.device(device or "cpu")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "device": str(device),
        "world_size": world_size,
    }


def slurm_job(environ=os.environ) -> dict | None:
    """The Slurm job this process runs in, from its environment ``environ`` (None outside Slurm):
    its id as ``squeue`` shows it (an array task's as ``<array job>_<task>``), how often it was
    requeued (``restart_count``), its cluster and nodes."""
    if "SLURM_JOB_ID" not in environ:
        return None
    array = environ.get("SLURM_ARRAY_JOB_ID")
    return {
        "job_id": f"{array}_{environ['SLURM_ARRAY_TASK_ID']}" if array else environ["SLURM_JOB_ID"],
        "restart_count": int(environ.get("SLURM_RESTART_COUNT", "0")),
        "cluster": environ.get("SLURM_CLUSTER_NAME"),
        "nodes": environ.get("SLURM_JOB_NODELIST"),
    }


def provenance(device=None, world_size: int = 1, **extra) -> dict:
    """git commit and dirtiness, `code_fingerprint`, package versions, `machine`, the Slurm job
    (`slurm_job`, None outside Slurm), the time (UTC, key ``at``), and ``extra``."""
    commit, dirty = git_commit()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "code_fingerprint": code_fingerprint(),
        "versions": {name: package_version(name) for name in PACKAGES},
        "machine": machine(device, world_size),
        "slurm": slurm_job(),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def fingerprinted_sources(root: Path = REPO_ROOT) -> list[Path]:
    """The files `code_fingerprint` covers under repository ``root``: the modules of ``aoi/``
    outside `PRESENTATION_MODULES`, and the `COMPUTE_NOTEBOOKS` there are (none in an installed package)."""
    package = root / "aoi"
    modules = [path for path in package.rglob("*.py") if path.relative_to(package).parts[0] not in PRESENTATION_MODULES]
    return modules + [root / name for name in COMPUTE_NOTEBOOKS if (root / name).is_file()]


def fingerprint(paths, root: Path = REPO_ROOT) -> str:
    """sha256 (first `FINGERPRINT_CHARS` hex digits) of ``paths`` (.py files and notebooks, under
    ``root``) in sorted relative-path order: each path's name and its `code_sources` without
    docstrings (`without_docstrings`)."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: Path(p).relative_to(root).as_posix()):
        digest.update(Path(path).relative_to(root).as_posix().encode() + b"\0")
        for source in code_sources(Path(path)):
            digest.update(without_docstrings(source).encode() + b"\0")
    return digest.hexdigest()[:FINGERPRINT_CHARS]


@functools.cache
def code_fingerprint() -> str:
    """`fingerprint` of the `fingerprinted_sources` of this repository (computed once per process)."""
    return fingerprint(fingerprinted_sources())


def code_sources(path: Path) -> list[str]:
    """The Python sources of ``path``: a .py file's text, or an .ipynb's code cells (what papermill runs)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb":
        return [text]
    return ["".join(cell["source"]) for cell in json.loads(text)["cells"] if cell["cell_type"] == "code"]


def without_docstrings(source: str) -> str:
    """Python ``source`` as its syntax tree unparsed, without docstrings (module, class and
    function first statements that are string constants): comments and layout do not show."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and _docstring(node):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def _docstring(node) -> bool:
    first = node.body[0] if node.body else None
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def recorded_code(records) -> str:
    """The code fingerprints recorded in the provenance ``records`` (say training's and analysis's;
    None where missing), "none" for one without: "1a2b3c4d5e6f", or "none, 1a2b3c4d5e6f" when they differ."""
    return ", ".join(dict.fromkeys((record or {}).get("code_fingerprint") or "none" for record in records))


def staleness(records, threads: int | None = None) -> str:
    """Why results with the provenance ``records`` (None where missing) are not what the current code
    makes with ``threads`` torch threads (None: any count): e.g. "code none -> 1a2b3c4d5e6f; threads
    2 -> 1"; "" when they are."""
    reasons = []
    code = recorded_code(records)
    if code != code_fingerprint():
        reasons.append(f"code {code} -> {code_fingerprint()}")
    machines = [(record or {}).get("machine") or {} for record in records]
    used = ", ".join(dict.fromkeys(str(machine.get("torch_threads", "none")) for machine in machines))
    if threads is not None and used != str(threads):
        reasons.append(f"threads {used} -> {threads}")
    return "; ".join(reasons)
