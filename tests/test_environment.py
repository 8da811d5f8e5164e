"""environment.yml and pyproject.toml describe the same pinned environment."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pins_from_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
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
    assert all(version for version in pins_from_pyproject().values())


def test_environment_yml_matches_pyproject():
    assert pins_from_environment() == pins_from_pyproject()


def test_torch_pins_are_the_ones_that_install_from_disk():
    pins = pins_from_pyproject()
    assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")
