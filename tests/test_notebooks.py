"""The notebooks as a new user gets them: ``pytest --nbval-lax notebooks`` on a fresh copy of the
repository (the files git would commit: no runs, the committed results), the kernels importing
that copy's package.

- The compute notebooks (01_train, 02_analyse) run with their defaults, which under nbval are the
  smoke profile's first run in the scratch folder ``runs/scratch/``: nothing under ``results/``
  changes.
- The presentation notebooks run on the committed results; their cells marked
  ``# NBVAL_CHECK_OUTPUT`` must show exactly what is committed in the notebooks, and the figures
  and tables they rebuild must equal the committed files byte for byte (rerun ./reproduce.sh to
  refresh them after a change).
"""

import subprocess
import sys

from repository import environment, fresh_copy, snapshot


def test_nbval_passes_on_a_fresh_copy_and_rebuilds_the_committed_results(tmp_path):
    repo = fresh_copy(tmp_path / "repo")
    committed = snapshot(repo / "results")
    env = environment(repo)
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run([*command, "notebooks"], cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    scratch = repo / "runs" / "scratch"
    assert (scratch / "smoke" / "digits" / "T4-tet-s0" / "final.json").is_file()
    assert (scratch / "results" / "smoke" / "runs" / "digits" / "T4-tet-s0" / "metrics.json").is_file()
    rebuilt = snapshot(repo / "results")
    assert sorted(rebuilt) == sorted(committed)  # nothing added under results/, nothing removed
    assert [name for name in committed if rebuilt[name] != committed[name]] == []
