"""Tests that the install files agree: pyproject.toml, environment.yml, Makefile and .ci/run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# Conda-only entries of environment.yml that are not Python dependencies of the package.
CONDA_TOOLING = {"python", "pip"}
TORCH_PIN = "torch==2.13.0"


def _requirement(text: str) -> tuple[str, str]:
    """(normalised name, version specifier without spaces) of a requirement string."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", text)
    assert match, f"cannot parse requirement {text!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def _pyproject() -> dict:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def _environment() -> dict:
    with open(REPO / "environment.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _conda_requirements() -> tuple[dict[str, str], list[str]]:
    """Conda (name -> spec, `=` pins written as `==`) and pip requirement lists of environment.yml."""
    conda: dict[str, str] = {}
    pip: list[str] = []
    for entry in _environment()["dependencies"]:
        if isinstance(entry, dict):
            pip.extend(entry["pip"])
            continue
        name, spec = _requirement(entry)
        conda[name] = re.sub(r"^=(?!=)", "==", spec)
    return conda, pip


def test_environment_lists_the_same_direct_dependencies_as_pyproject() -> None:
    project = _pyproject()["project"]
    # The run dependencies and the SLURM executor plugin (the `slurm` extra), pinned alike.
    declared = dict(_requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["slurm"])
    conda, pip = _conda_requirements()
    listed = {name: spec for name, spec in conda.items() if name not in CONDA_TOOLING}
    listed.update(_requirement(r) for r in pip)
    assert listed == declared


def test_torch_is_pinned_the_same_everywhere() -> None:
    _, pip = _conda_requirements()
    assert TORCH_PIN in _pyproject()["project"]["dependencies"]
    assert TORCH_PIN in pip
    for script in ("Makefile", ".ci/run"):
        assert TORCH_PIN in (REPO / script).read_text(encoding="utf-8"), script


def test_python_version_agrees() -> None:
    conda, _ = _conda_requirements()
    assert conda["python"] == "==3.11"
    assert _pyproject()["project"]["requires-python"] == ">=3.11,<3.12"


def test_ci_installs_the_test_and_slurm_extras_and_runs_the_readme_command() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"dev", "slurm"} <= set(extras)
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in ci
    assert ".[dev,slurm]" in ci
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme
    assert re.search(r"^make test$", ci, flags=re.MULTILINE)


def test_root_environment_is_the_workflow_environment() -> None:
    # One file: the rules' conda environment travels with workflow/ when only it is copied.
    assert (REPO / "environment.yml").resolve() == (REPO / "workflow" / "envs" / "minnorm.yaml").resolve()
