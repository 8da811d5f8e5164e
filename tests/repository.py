"""A fresh copy of the repository for the tests that run notebooks as a new user would."""

import functools
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from aoi.layout import REPO_ROOT

STEERING = ("AOI_PROFILE", "AOI_RUNS", "AOI_RESULTS", "AOI_DATA", "AOI_CACHE", "PYTEST_CURRENT_TEST", "PYTHONPATH")


def fresh_copy(destination: Path) -> Path:
    """The repository as a fresh clone of its current state holds it, at ``destination``: the
    tracked files as git would commit them (through its filters: the notebooks as nbstripout
    leaves them; `git stash create` snapshots the working tree without touching it), and the
    untracked files git does not ignore, as they are."""
    git = functools.partial(subprocess.run, cwd=REPO_ROOT, capture_output=True, check=True)
    tree = git(["git", "stash", "create"]).stdout.decode().strip() or "HEAD"
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(git(["git", "archive", tree]).stdout)) as archive:
        archive.extractall(destination, filter="data")
    untracked = git(["git", "ls-files", "--others", "--exclude-standard", "-z"]).stdout.decode()
    for name in filter(None, untracked.split("\0")):
        if (REPO_ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, destination / name)
    return destination


def environment(repo: Path) -> dict[str, str]:
    """This process's environment without what could steer aoi or mark a test, importing ``repo``'s aoi."""
    env = {key: value for key, value in os.environ.items() if key not in STEERING}
    env["PYTHONPATH"] = str(repo)  # kernels start in notebooks/: they import this copy's aoi, not an installed one
    return env


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def git(repo: Path, *args: str) -> str:
    """The output of ``git args`` in ``repo``."""
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def set_up_clone(repo: Path) -> Path:
    """``repo`` (a `fresh_copy`) made a git clone whose .venv (this interpreter's, already
    installed) ./reproduce.sh has set up: the notebook filter in its .git/config, aoi's Jupyter
    server extension enabled in the .venv's Jupyter config folder, which is returned."""
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=aoi", "-c", "user.email=aoi@localhost", "commit", "-q", "-m", "fresh clone")
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (repo / ".venv" / ".aoi-installed").touch()  # newer than pyproject.toml: nothing to install
    subprocess.run(["./reproduce.sh", "--dry-run"], cwd=repo, env=environment(repo), capture_output=True, check=True)
    return repo / ".venv" / "etc" / "jupyter"
