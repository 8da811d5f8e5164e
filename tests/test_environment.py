"""environment.yml and pyproject.toml describe the same pinned environment."""

import importlib.metadata
import re
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
