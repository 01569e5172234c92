"""The install files agree: pyproject.toml, the lock file, the conda environments, the Makefile,
.ci/run and the README's commands."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import minnorm
from helpers import REPO

LOCK = REPO / "requirements.lock"
RULE_ENV = REPO / "workflow" / "envs" / "minnorm.yaml"
# Conda-only entries of the environment files that are not Python dependencies of the package.
CONDA_TOOLING = {"python", "pip"}
TORCH_PIN = "torch==2.13.0"
# Snakemake's own installation instructions: conda-forge, then bioconda; no anaconda defaults.
CHANNELS = ["conda-forge", "bioconda", "nodefaults"]


def _requirement(text: str) -> tuple[str, str]:
    """(normalised name, version specifier without spaces) of a requirement string."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", text)
    assert match, f"cannot parse requirement {text!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def _pyproject() -> dict:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def _declared(*extras: str) -> dict[str, str]:
    project = _pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return dict(_requirement(r) for r in requirements)


def _environment(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _env_requirements(path: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """Conda (name -> spec, `=` pins written as `==`), pip requirements, and how minnorm itself
    is installed (pip `-e` paths and direct references `name @ url`)."""
    conda: dict[str, str] = {}
    pip: list[str] = []
    package: list[str] = []
    for entry in _environment(path)["dependencies"]:
        if isinstance(entry, dict):
            for line in entry["pip"]:
                if line.startswith("-e "):
                    package.append(line[3:].strip())
                elif " @ " in line:
                    package.append(line)
                else:
                    pip.append(line)
            continue
        name, spec = _requirement(entry)
        conda[name] = re.sub(r"^=(?!=)", "==", spec)
    return conda, pip, package


def _listed(path: Path) -> dict[str, str]:
    conda, pip, _ = _env_requirements(path)
    listed = {name: spec for name, spec in conda.items() if name not in CONDA_TOOLING}
    listed.update(_requirement(r) for r in pip)
    return listed


def _lock_pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (exact version, [sha256 hashes]) of every package in requirements.lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    # One requirement per entry: "name==version \" then its "--hash=sha256:..." lines.
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text(encoding="utf-8")):
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block)
        if match:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
            pins[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return pins


def test_root_environment_has_the_dependencies_extras_and_the_package() -> None:
    env = REPO / "environment.yml"
    assert not env.is_symlink()
    assert _environment(env)["channels"] == CHANNELS
    assert _listed(env) == _declared("dev", "slurm")
    # pip runs in the environment file's folder: `.` is this repository.
    _, _, editable = _env_requirements(env)
    assert editable == ["."]


def test_rule_environment_has_the_run_dependencies_and_installs_minnorm_at_the_release() -> None:
    assert _environment(RULE_ENV)["channels"] == CHANNELS
    assert _listed(RULE_ENV) == _declared()
    # minnorm at the workflow's own release, from its tag: never a relative path (Snakemake
    # builds the env from a copy of the file in <workdir>/.snakemake/conda/, which for a module
    # or an installed workflow is not the workflow's folder).
    _, _, package = _env_requirements(RULE_ENV)
    repository = _pyproject()["project"]["urls"]["Repository"]
    assert package == [f"minnorm @ git+{repository}@v{minnorm.__version__}"]


def test_every_rule_uses_the_checked_conda_environment() -> None:
    common = (REPO / "workflow" / "rules" / "common.smk").read_text(encoding="utf-8")
    (env,) = re.findall(r'^CONDA_ENV = "([^"]+)"', common, flags=re.M)
    assert (REPO / "workflow" / "rules" / env).resolve() == RULE_ENV
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text(encoding="utf-8")
        rules = len(re.findall(r"^\s*rule \w+:|^\s*rule:", text, flags=re.M))
        directives = re.findall(r"^\s*conda:\s*\n\s*(\S+)", text, flags=re.M)
        assert set(directives) <= {"CONDA_ENV"}, smk.name
        # Every rule that runs a script (not the target rule `all`) has the environment.
        scripts = len(re.findall(r"^\s*script:", text, flags=re.M))
        assert len(directives) == scripts, f"{smk.name}: {rules} rules, {scripts} scripts"


def test_lock_pins_every_requirement_exactly_with_hashes() -> None:
    pins = _lock_pins()
    project = _pyproject()
    requirements = [Requirement(r) for r in project["project"]["dependencies"]]
    for extra in ("dev", "slurm"):
        requirements += [Requirement(r) for r in project["project"]["optional-dependencies"][extra]]
    # The build backend too: `make venv` installs the package without build isolation.
    requirements += [Requirement(r) for r in project["build-system"]["requires"]]
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock (run `make lock`)"
        version, hashes = pins[name]
        assert requirement.specifier.contains(Version(version), prereleases=True), (
            f"{name}=={version} in requirements.lock does not satisfy "
            f"pyproject.toml's {requirement}"
        )
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash"
    # torch: the pinned release (here the CPU build, local version label +cpu).
    assert Version(pins["torch"][0]).public == TORCH_PIN.split("==")[1]


def test_running_environment_is_the_lock() -> None:
    """The interpreter running the tests (CI: the `make venv` of a fresh clone) has every locked
    package at its locked version."""
    wrong = {}
    for name, (version, _) in _lock_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or Version(installed) != Version(version):
            wrong[name] = (version, installed)
    assert not wrong, f"locked vs installed (run `make venv`): {wrong}"


def test_make_venv_installs_exactly_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "$(LOCK) pyproject.toml setup.py" in recipe.splitlines()[0]
    assert "pip install --require-hashes --no-deps -r $(LOCK)" in recipe
    assert "pip install --no-deps --no-build-isolation -e ." in recipe
    assert "pip check" in recipe
    assert re.search(r"^LOCK := requirements.lock$", makefile, flags=re.M)
    # The lock says how it was made and how to remake it.
    assert "make lock" in LOCK.read_text(encoding="utf-8").split("\n", 6)[4]
    assert re.search(r"^lock:", makefile, flags=re.M) and "pip-compile" in makefile


def test_torch_is_pinned_the_same_everywhere() -> None:
    assert TORCH_PIN in _pyproject()["project"]["dependencies"]
    for env in (REPO / "environment.yml", RULE_ENV):
        assert TORCH_PIN in _env_requirements(env)[1], env.name


def test_python_version_agrees() -> None:
    for env in (REPO / "environment.yml", RULE_ENV):
        assert _env_requirements(env)[0]["python"] == "==3.11", env.name
    assert _pyproject()["project"]["requires-python"] == ">=3.11,<3.12"
    assert "Python 3.11" in LOCK.read_text(encoding="utf-8").split("\n", 3)[1]


def _command_lines(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_ci_runs_the_readme_commands_and_nothing_else_of_substance() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in ci
    commands = _command_lines(ci.split("\n", 1)[1])
    # No installation of its own: the README's set-up (make venv) installs what the tests need.
    assert not [c for c in commands if "pip " in c or " -m venv" in c]
    make_calls = [c for c in commands if c.startswith("make ")]
    assert make_calls == ["make venv", "make lint", "make test"]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for command in ("make venv", "make test", "make lint"):
        assert re.search(rf"^{command}\b", quick_start, flags=re.M), command
    # The tests' needs (the SLURM executor, snakefmt, pytest) come with the README's set-up.
    pins = _lock_pins()
    for needed in ("snakemake-executor-plugin-slurm", "snakefmt", "pytest"):
        assert needed in pins, needed


def test_lint_is_snakemake_lint_and_snakefmt_check() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/snakemake --lint" in recipe and "$(BIN)/snakefmt --check ." in recipe


def test_workflow_catalog_layout() -> None:
    assert (REPO / "workflow" / "Snakefile").is_file()
    top = (REPO / "Snakefile").read_text(encoding="utf-8")
    assert 'include: "workflow/Snakefile"' in top
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text(encoding="utf-8"))
    assert catalog["usage"]["mandatory-flags"]["flags"]
    config_readme = (REPO / "config" / "README.md").read_text(encoding="utf-8")
    # Every top-level block of an experiment in the default config is explained.
    with open(REPO / "config" / "config.yaml", encoding="utf-8") as handle:
        default = yaml.safe_load(handle)
    blocks = {key for experiment in default["experiments"].values() for key in experiment}
    for block in sorted(blocks | {"experiments"}):
        assert f"`{block}`" in config_readme, block
