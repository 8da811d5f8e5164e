"""aoi.provenance: the code fingerprint (what it covers, what does not change it), the CPU model,
and why recorded results are stale."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aoi import provenance
from aoi.layout import REPO_ROOT

MODULE = '''"""A module docstring."""

import math


def area(r):
    """A function docstring."""
    return math.pi * r**2  # a comment
'''
CELLS = ["from aoi import notebook\n", "x = 1  # a comment"]


def notebook_json(cells: list[str], markdown: str = "# Title") -> str:
    cell = [{"cell_type": "markdown", "metadata": {}, "source": [markdown]}]
    return json.dumps({"cells": cell + [{"cell_type": "code", "metadata": {}, "source": [c]} for c in cells]})


def tree(root: Path, module: str = MODULE, cells=CELLS, markdown: str = "# Title") -> list[Path]:
    """A repository ``root`` of one module and one notebook; their paths."""
    (root / "aoi").mkdir(parents=True, exist_ok=True)
    (root / "notebooks").mkdir(exist_ok=True)
    (root / "aoi" / "geometry.py").write_text(module)
    (root / "notebooks" / "01.ipynb").write_text(notebook_json(cells, markdown))
    return [root / "aoi" / "geometry.py", root / "notebooks" / "01.ipynb"]


def test_docstrings_comments_layout_and_markdown_keep_the_fingerprint_code_changes_it(tmp_path):
    fingerprint = provenance.fingerprint(tree(tmp_path), tmp_path)
    assert re.fullmatch(r"[0-9a-f]{12}", fingerprint)
    assert provenance.fingerprint(reversed(tree(tmp_path)), tmp_path) == fingerprint  # any order
    same = [
        {"module": MODULE.replace("A function docstring.", "Another one, longer.")},
        {"module": MODULE.replace('"""A module docstring."""\n', "")},
        {"module": MODULE.replace("  # a comment", "").replace("r**2", "r ** 2")},
        {"cells": ["from aoi import notebook", "x = 1"]},
        {"markdown": "# Another title"},
    ]
    for edit in same:
        assert provenance.fingerprint(tree(tmp_path, **edit), tmp_path) == fingerprint, edit
    changed = [
        {"module": MODULE.replace("r**2", "r**3")},
        {"cells": ["from aoi import notebook", "x = 2"]},
    ]
    for edit in changed:
        assert provenance.fingerprint(tree(tmp_path, **edit), tmp_path) != fingerprint, edit
    (tmp_path / "aoi" / "geometry.py").rename(tmp_path / "aoi" / "shapes.py")  # the path counts too
    paths = [tmp_path / "aoi" / "shapes.py", tmp_path / "notebooks" / "01.ipynb"]
    assert provenance.fingerprint(paths, tmp_path) != fingerprint


def test_the_fingerprint_covers_the_compute_modules_and_notebooks_only():
    names = {path.relative_to(REPO_ROOT).as_posix() for path in provenance.fingerprinted_sources()}
    assert {"aoi/train.py", "aoi/analysis.py", "aoi/data/simulator.py", "aoi/models/small.py"} <= names
    assert {"notebooks/01_train.ipynb", "notebooks/02_analyse.ipynb"} <= names
    grid = {"aoi/plan.py", "aoi/stages.py", "aoi/preflight.py", "aoi/executors/local.py", "aoi/executors/slurm.py"}
    assert not {"aoi/results.py", "aoi/reproduce.py", "aoi/nir/export.py", "aoi/profiles/__init__.py", *grid} & names
    assert provenance.code_fingerprint() == provenance.fingerprint(provenance.fingerprinted_sources())


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def excluded(module: str) -> bool:
    """``module`` (aoi.x.y) is one of provenance.PRESENTATION_MODULES or inside one."""
    parts = module.split(".")
    return parts[0] == "aoi" and len(parts) > 1 and parts[1] in {Path(p).stem for p in provenance.PRESENTATION_MODULES}


def imported_names(source: str) -> set[str]:
    """Every module an ``import`` anywhere in ``source`` names (for ``from a import b``: a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_fingerprinted_module_imports_an_excluded_one():
    """The exclusion list is sound: what training, evaluation and analysis run is fingerprinted.
    Checked at import time in a fresh interpreter, and in every import statement (also those inside
    functions) of the fingerprinted modules."""
    modules = [module_name(p) for p in provenance.fingerprinted_sources() if p.suffix == ".py"]
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint(*sorted(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.split()
    assert {"aoi.train", "aoi.evaluate", "aoi.analysis", "aoi.config"} <= set(loaded)
    assert [m for m in loaded if excluded(m)] == []
    for path in provenance.fingerprinted_sources():
        if path.suffix == ".py":
            assert [m for m in imported_names(path.read_text()) if excluded(m)] == [], path


def test_the_machine_record_names_the_cpu_model_of_proc_cpuinfo():
    cpuinfo = Path("/proc/cpuinfo")
    names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M) if cpuinfo.exists() else []
    if not names:
        pytest.skip("no model name in /proc/cpuinfo on this machine")
    assert provenance.machine()["cpu"].startswith(names[0].strip() + " (")


def test_the_cpu_model_tells_apart_generations_that_share_a_model_name(tmp_path):
    def cpu(family, model, flags):  # two logical CPUs, as /proc/cpuinfo lists them
        one = f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        one += f"model name\t: AMD EPYC\nstepping\t: 1\nflags\t\t: fpu sse2 {flags}\n"
        return one + "\n" + one.replace("processor\t: 0", "processor\t: 1")

    for index, (level, size) in enumerate([("1", "32K"), ("2", "512K"), ("3", "32768K")]):
        (tmp_path / f"index{index}").mkdir()
        (tmp_path / f"index{index}" / "level").write_text(level + "\n")
        (tmp_path / f"index{index}" / "size").write_text(size + "\n")
    zen3 = provenance.cpu_model(cpu(25, 1, "avx avx2 fma"), tmp_path)
    zen4 = provenance.cpu_model(cpu(25, 17, "avx avx2 fma avx512f avx512_bf16"), tmp_path)
    assert zen3 == "AMD EPYC (cpu family 25 model 1 stepping 1; avx avx2 fma; L2 512K L3 32768K)"
    assert zen4 == "AMD EPYC (cpu family 25 model 17 stepping 1; avx avx2 fma avx512f avx512_bf16; L2 512K L3 32768K)"
    assert provenance.cpu_model(cpu(23, 49, "avx avx2 fma"), tmp_path / "none") == (
        "AMD EPYC (cpu family 23 model 49 stepping 1; avx avx2 fma)"
    )


def test_stale_says_what_differs_from_the_current_code_and_thread_count():
    current = provenance.code_fingerprint()
    made = {"code_fingerprint": current, "machine": {"torch_threads": 1}}
    assert provenance.staleness([made, made], threads=1) == ""
    assert provenance.staleness([made, None], threads=1) == f"code {current}, none -> {current}; threads 1, none -> 1"
    assert provenance.staleness([made], threads=2) == "threads 1 -> 2"
    assert provenance.staleness([{**made, "code_fingerprint": "0123456789ab"}]) == f"code 0123456789ab -> {current}"
    assert provenance.recorded_code([{}, made]) == f"none, {current}"
    assert provenance.provenance()["code_fingerprint"] == current


def test_the_slurm_record_names_the_job_as_squeue_shows_it():
    assert provenance.slurm_job({}) is None  # not in a Slurm job
    array_task = {"SLURM_JOB_ID": "1042", "SLURM_ARRAY_JOB_ID": "1040", "SLURM_ARRAY_TASK_ID": "2"}
    array_task |= {"SLURM_RESTART_COUNT": "1", "SLURM_CLUSTER_NAME": "c", "SLURM_JOB_NODELIST": "gpu[01-02]"}
    expected = {"job_id": "1040_2", "restart_count": 1, "cluster": "c", "nodes": "gpu[01-02]"}
    assert provenance.slurm_job(array_task) == expected
    plain = {"job_id": "7", "restart_count": 0, "cluster": None, "nodes": None}
    assert provenance.slurm_job({"SLURM_JOB_ID": "7"}) == plain
