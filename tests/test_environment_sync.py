"""environment.yml (conda) must list exactly the packages and version bounds of pyproject.toml."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from the PyPI names used in pyproject.toml
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for group in project["optional-dependencies"].values():
        lines.extend(group)
    reqs = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): str(r.specifier) for r in reqs}


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    lines = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            lines.extend(line for line in dep["pip"] if not line.startswith("-e"))
        else:
            lines.append(dep)
    result = {}
    for line in lines:
        req = Requirement(line)
        name = CONDA_TO_PYPI.get(req.name, req.name)
        if name not in NOT_PACKAGES:
            result[canonicalize_name(name)] = str(req.specifier)
    return result


def test_same_packages_and_bounds():
    pip, conda = pyproject_requirements(), conda_requirements()
    assert sorted(set(pip) - set(conda)) == [], "in pyproject.toml but not in environment.yml"
    assert sorted(set(conda) - set(pip)) == [], "in environment.yml but not in pyproject.toml"
    differing = {name: (pip[name], conda[name]) for name in pip if pip[name] != conda[name]}
    assert differing == {}, "version bounds differ (pyproject, environment.yml)"


def test_environment_installs_the_library_and_python_version_matches():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert "-e ." in pip_section
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.removeprefix("python") == project["requires-python"]
