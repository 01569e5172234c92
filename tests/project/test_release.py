"""A release names one version everywhere, and the workflow refuses a package of another release.

The one source is `minnorm.__version__`; pyproject.toml reads it, and the workflow's Snakefile,
CITATION.cff, the jobs' conda environment and the top entry of CHANGELOG.md must say the same
(docs/releases.md). The repository's URL is the same in every file that names it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

import minnorm
from helpers import REPO
from helpers.workflow import copy_workflow, snakemake

SNAKEFILE = REPO / "workflow" / "Snakefile"


def _pyproject() -> dict:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def _snakefile_constant(name: str, text: str | None = None) -> str:
    text = SNAKEFILE.read_text(encoding="utf-8") if text is None else text
    (value,) = re.findall(rf'^{name} = "([^"]+)"$', text, flags=re.M)
    return value


def test_every_file_names_the_package_version():
    version = minnorm.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "minnorm.__version__"}
    assert _snakefile_constant("WORKFLOW_VERSION") == version
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(citation["version"]) == version
    env = (REPO / "workflow" / "envs" / "minnorm.yaml").read_text(encoding="utf-8")
    assert env.rstrip().endswith(f"@v{version}")
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    top = re.findall(r"^## (\d+\.\d+\.\d+)\b", changelog, flags=re.M)
    assert top and top[0] == version, "the top CHANGELOG.md entry is another version"
    assert "v<version>" in changelog and "vX.Y.Z" in (REPO / "docs" / "releases.md").read_text()


def test_every_file_names_the_same_repository():
    repository = _pyproject()["project"]["urls"]["Repository"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["repository-code"] == repository
    assert _snakefile_constant("REPOSITORY") == repository
    mkdocs = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert mkdocs["repo_url"] == repository
    owner_name = repository.removeprefix("https://github.com/")
    for path in ("README.md", "docs/own-project.md", ".snakemake-workflow-catalog.yml"):
        text = (REPO / path).read_text(encoding="utf-8")
        assert f'github("{owner_name}", path="workflow/Snakefile", tag="v' in text or (
            f"snakedeploy deploy-workflow {repository} ." in text
        ), path


def test_citation_cites_the_papers():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    years = sorted(ref["year"] for ref in citation["references"])
    assert years == [2019, 2021]


@pytest.mark.slow
def test_a_package_of_another_release_is_refused_at_parse_time(tmp_path):
    """The workflow of release 0.0.1 against the installed package: no job runs, and the message
    names both versions and how to install the matching package."""
    root = copy_workflow(tmp_path)
    snakefile = root / "workflow" / "Snakefile"
    text = snakefile.read_text(encoding="utf-8")
    snakefile.write_text(
        text.replace(f'WORKFLOW_VERSION = "{minnorm.__version__}"', 'WORKFLOW_VERSION = "0.0.1"'),
        encoding="utf-8",
    )
    assert _snakefile_constant("WORKFLOW_VERSION", snakefile.read_text()) == "0.0.1"
    proc = snakemake(root, "-n")
    assert proc.returncode != 0
    message = " ".join((proc.stdout + proc.stderr).split())
    assert "this workflow is release 0.0.1" in message, message[-2000:]
    assert f"the installed minnorm package is release {minnorm.__version__}" in message
    assert 'pip install "minnorm @ git+https://github.com/minnorm/minnorm@v0.0.1"' in message
    assert not (root / "results").exists()


@pytest.mark.slow
def test_no_package_is_refused_with_the_install_command(tmp_path):
    """A Python without minnorm: the same refusal, before any `import minnorm...` fails."""
    (tmp_path / "wf").mkdir()
    root = copy_workflow(tmp_path / "wf")
    shadow = tmp_path / "shadow"
    (shadow / "minnorm").mkdir(parents=True)
    # This interpreter has minnorm installed; a package of that name whose import fails, first
    # on the path, stands in for an environment without it.
    (shadow / "minnorm" / "__init__.py").write_text("raise ModuleNotFoundError('minnorm')\n")
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    message = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    assert "no minnorm package is installed for" in message, message[-2000:]
    assert f"git+https://github.com/minnorm/minnorm@v{minnorm.__version__}" in message


@pytest.mark.slow
def test_catalog_test_config_dry_run_and_rule_graph(tmp_path):
    """The workflow catalog's checks on .test/: a dry run and the rule graph, from .test/ as the
    working directory (its config/config.yaml is the default config there)."""
    root = copy_workflow(tmp_path)
    shutil.copytree(REPO / ".test", root / ".test")
    dry = snakemake(root, "--directory", ".test", "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "train_catalog_tiny" in dry.stdout + dry.stderr
    graph = snakemake(root, "--directory", ".test", "--rulegraph")
    assert graph.returncode == 0, graph.stderr[-3000:]
    assert graph.stdout.lstrip().startswith("digraph") and "ss_fig1" in graph.stdout
