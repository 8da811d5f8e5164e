"""environment.yml and pyproject.toml describe the same pinned environment; reproduce.sh refuses a
Python older than pyproject.toml's requires-python before it makes .venv."""

import importlib.metadata
import os
import re
import shutil
import subprocess
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


INSTALLED_EXTRAS = ("test", "nir")  # what the test command installs (reproduce.sh)


def pins_from_pyproject(extras=None):
    """{package: version} of the dependencies and of ``extras`` (default: every extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    requirements = project["dependencies"] + [r for extra in (extras or optional) for r in optional[extra]]
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", r).groups() for r in requirements)


def pins_from_environment():
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pins = {}
    for dep in deps:
        if isinstance(dep, dict):
            for req in dep["pip"]:
                if "==" in req:
                    name, version = req.split("==")
                    pins[name] = version
        elif "=" in dep and not dep.startswith("python="):
            name, version = dep.split("=")
            pins[name] = version
    return pins


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    loose = [r for r in requirements if not re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+-]*", r)]
    assert loose == []


def test_environment_yml_matches_pyproject():
    assert pins_from_environment() == pins_from_pyproject()


def test_the_test_command_installs_the_test_and_nir_extras():
    assert f'pip install --quiet -e ".[{",".join(INSTALLED_EXTRAS)}]"' in (ROOT / "reproduce.sh").read_text()


def test_the_installed_packages_are_the_pinned_ones():
    pins = pins_from_pyproject(INSTALLED_EXTRAS)
    installed = {name: importlib.metadata.version(name) for name in pins}
    assert installed == pins


def test_the_promised_python_is_the_one_the_pins_install_on():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"  # numpy 2.4 has no release for 3.10
    conda = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    (python,) = [dep.split("=")[1] for dep in conda if isinstance(dep, str) and dep.startswith("python=")]
    assert tuple(map(int, python.split("."))) >= (3, 11)


def fake_python(path: Path, version: str) -> Path:
    """An executable that answers every call with ``version``, as `python -c 'print(version)'` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def reproduce_sh(folder: Path, python: Path | None = None) -> subprocess.CompletedProcess:
    for name in ("reproduce.sh", "pyproject.toml"):
        shutil.copy(ROOT / name, folder)
    env = {**os.environ, "PYTHON": str(python)} if python else os.environ
    return subprocess.run(["bash", str(folder / "reproduce.sh"), "--dry-run"], env=env, capture_output=True, text=True)


def test_reproduce_sh_refuses_an_older_python_before_making_the_venv(tmp_path):
    python = fake_python(tmp_path / "bin" / "python3.10", "3.10")
    run = reproduce_sh(tmp_path, python)
    assert run.returncode == 1 and not (tmp_path / ".venv").exists()
    fix = "rerun with PYTHON=/path/to/python3.11 or newer"
    assert run.stderr == f"error: aoi needs Python >= 3.11; {python} is Python 3.10: {fix}\n"


def test_reproduce_sh_refuses_a_venv_made_with_an_older_python_and_keeps_it(tmp_path):
    venv_python = fake_python(tmp_path / ".venv" / "bin" / "python", "3.10")
    run = reproduce_sh(tmp_path)
    assert run.returncode == 1
    assert "aoi needs Python >= 3.11, and .venv was made with Python 3.10: remove .venv and rerun" in run.stderr
    assert venv_python.read_text() == "#!/bin/sh\necho 3.10\n"
