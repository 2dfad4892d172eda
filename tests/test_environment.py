"""The conda route (environment.yml) and the pip route (pyproject.toml) install the same thing."""

import importlib.metadata
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
ENVIRONMENT = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
COURSE_STACK = {"tensorflow", "keras", "jupyterlab", "matplotlib", "plotly", "seaborn",
                "scikit-learn", "nbval"}


def _pyproject_requirements():
    project = PYPROJECT["project"]
    listed = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {canonicalize_name(req.name): req for req in map(Requirement, listed)}


def _environment_entries():
    conda, pip = [], []
    for entry in ENVIRONMENT["dependencies"]:
        if isinstance(entry, dict):
            pip.extend(entry.get("pip", []))
        else:
            conda.append(entry)
    return conda, pip


def test_the_course_stack_is_declared_with_bounded_ranges():
    requirements = _pyproject_requirements()
    assert set(requirements) >= COURSE_STACK
    for name, requirement in requirements.items():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {">=", "~=", "=="}, f"{name} has no lower bound"
        assert operators & {"<", "~=", "=="}, f"{name} has no upper bound"


def test_environment_installs_this_package_with_its_dev_extra_from_conda_forge():
    _, pip = _environment_entries()
    assert ENVIRONMENT["channels"] == ["conda-forge"]
    assert "-e .[dev]" in pip, "environment.yml must install the project as the pip route does"


def test_environment_python_satisfies_requires_python():
    conda, _ = _environment_entries()
    pins = [entry.split("=", 1)[1] for entry in conda if entry.startswith("python=")]
    assert len(pins) == 1
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(pins[0] + ".0")


def test_environment_pins_no_package_of_its_own():
    # Drift is impossible by construction: every package reaches the conda environment through
    # `-e .[dev]`, i.e. from pyproject.toml. A package listed here too could disagree with it.
    conda, pip = _environment_entries()
    extra_conda = [entry for entry in conda if entry.split("=")[0] not in {"python", "pip"}]
    extra_pip = [entry for entry in pip if entry != "-e .[dev]"]
    assert extra_conda == [] and extra_pip == [], (
        f"environment.yml lists {extra_conda + extra_pip}; declare them in pyproject.toml instead"
    )


def test_installed_versions_satisfy_the_declared_ranges():
    for name, requirement in _pyproject_requirements().items():
        version = importlib.metadata.version(name)
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name} {version} is installed but pyproject.toml asks for {requirement.specifier}"
        )
