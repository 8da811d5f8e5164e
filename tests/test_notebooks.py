"""The notebooks, as CI runs them: ``pytest --nbval-lax`` in a subprocess.

- Compute notebooks (train, evaluate) run top to bottom on the smoke profile into a temporary
  runs/results root, so CI never touches committed results.
- Presentation notebooks (figure, tables, stf) run on a temporary copy of the committed default
  results; their cells marked ``# NBVAL_CHECK_OUTPUT`` must print exactly what is committed in the
  notebooks, so a stale notebook, table or result fails here (rerun ./reproduce.sh to refresh).
"""

import os
import shutil
import subprocess
import sys

from aoi.layout import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"


def nbval(notebooks, env, tmp_path):
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(tmp_path),
        *[str(NOTEBOOKS / f"{name}.ipynb") for name in notebooks],
    ]
    env = {"AOI_DATA": str(REPO_ROOT / "data"), **os.environ, **env}  # the kernels run in notebooks/
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_compute_notebooks_run_on_the_smoke_profile(tmp_path):
    nbval(
        ["train", "evaluate"],
        {"AOI_PROFILE": "smoke", "AOI_RUNS": str(tmp_path / "runs"), "AOI_RESULTS": str(tmp_path / "results")},
        tmp_path,
    )
    assert (tmp_path / "results" / "smoke" / "runs" / "digits" / "T4-tet-s0" / "metrics.json").is_file()


def test_presentation_notebooks_match_the_committed_default_results(tmp_path):
    shutil.copytree(REPO_ROOT / "results" / "default", tmp_path / "results" / "default")
    nbval(["figure", "tables", "stf"], {"AOI_PROFILE": "default", "AOI_RESULTS": str(tmp_path / "results")}, tmp_path)
    assert (tmp_path / "results" / "default" / "figure_accuracy.png").is_file()
