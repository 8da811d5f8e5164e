"""A fresh copy of the repository for the tests that run notebooks as a new user would."""

import os
import shutil
import subprocess
from pathlib import Path

from aoi.layout import REPO_ROOT

STEERING = ("AOI_PROFILE", "AOI_RUNS", "AOI_RESULTS", "AOI_DATA", "AOI_CACHE", "PYTEST_CURRENT_TEST", "PYTHONPATH")


def fresh_copy(destination: Path) -> Path:
    """The repository's files as git would commit them (tracked or not ignored), copied to ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def environment(repo: Path) -> dict[str, str]:
    """This process's environment without what could steer aoi or mark a test, importing ``repo``'s aoi."""
    env = {key: value for key, value in os.environ.items() if key not in STEERING}
    env["PYTHONPATH"] = str(repo)  # kernels start in notebooks/: they import this copy's aoi, not an installed one
    return env


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
