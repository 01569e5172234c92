"""The documentation: README is a short entry point, the MkDocs site builds strictly, and its
reference pages, the catalog's schema and `minnorm --help` list everything the schema and the
registries declare."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from helpers import REPO
from minnorm.analysis.checks import CHECKS
from minnorm.cli import cli
from minnorm.data.registry import DATASETS
from minnorm.figures import FIGURES
from minnorm.workflow import reference

README_MAX_LINES = 220  # "about 200 lines" (issue 27)


def _schema_setting_paths() -> set[str]:
    """Every setting of an experiment in the schema file and the data sets' own keys, walked
    here by hand (key paths below `experiments.<name>`)."""
    schema = yaml.safe_load(
        (REPO / "src" / "minnorm" / "config" / "config.schema.yaml").read_text(encoding="utf-8")
    )

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            name = node["$ref"].split("/")[-1]
            node = {**schema["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    paths: set[str] = set()

    def walk(node: dict, prefix: str) -> None:
        for key, child in node.get("properties", {}).items():
            child = resolve(child)
            paths.add(prefix + key)
            walk(child, f"{prefix}{key}.")
        if node.get("patternProperties"):
            paths.add(prefix + "<section>.<key>")

    walk(resolve(schema["$defs"]["experiment"]), "")
    paths |= {f"data.{key}" for spec in DATASETS.values() for key in (spec.schema or {})}
    return paths


def test_configuration_reference_lists_every_setting_with_type_default_and_description():
    table = reference.configuration_markdown()
    rows = {
        m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \|(.*)\|$", table, flags=re.M)
    }
    expected = _schema_setting_paths()
    assert set(rows) == expected
    for path, cells in rows.items():
        kind, default, description = [c.strip() for c in cells.split(" | ")][:3]
        assert kind and description, path
    # Spot checks against the schema file itself.
    assert "`10000`" in rows["training.steps"] and "integer" in rows["training.steps"]
    assert "`[0.0]`" in rows["sweep.label_noise"]
    assert "required" in rows["sweep.width"]
    assert "`cube`" in rows["data.inputs"] and "`gaussian`" in rows["data.inputs"]


def test_catalog_schema_is_current_and_lists_every_setting_under_properties():
    path = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert not path.is_symlink()
    assert path.read_text(encoding="utf-8") == reference.catalog_schema_text(), (
        "workflow/schemas/config.schema.yaml is stale: run `make schema`"
    )
    # The catalog's parameter table follows `properties` only, from the top.
    catalog = yaml.safe_load(path.read_text(encoding="utf-8"))
    rows: set[str] = set()

    def walk(props: dict, prefix: str) -> None:
        for name, details in props.items():
            rows.add(prefix + name)
            walk(details.get("properties", {}), f"{prefix}{name}.")

    walk(catalog["properties"], "")
    listed = {r.removeprefix("experiments.<name>.") for r in rows if r.startswith("experiments.<")}
    expected = {p for p in _schema_setting_paths() if "<section>" not in p}
    assert expected <= listed
    # The documentation entry cannot be an experiment: the name pattern refuses it.
    pattern = catalog["properties"]["experiments"]["propertyNames"]["pattern"]
    assert not re.fullmatch(pattern, reference.EXPERIMENT_PLACEHOLDER)


def test_help_lists_experiments_figures_data_sets_and_checks():
    result = CliRunner().invoke(cli, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for names in (FIGURES, DATASETS, CHECKS):
        for name in names:
            assert re.search(rf"^\s+{re.escape(name)}\s", result.output, flags=re.M), name
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    for experiment in config["experiments"]:
        assert experiment in result.output
    for command in ("init", "run", "report", "status", "archive"):
        assert re.search(rf"^\s+{command}\s", result.output, flags=re.M), command


def test_readme_is_an_entry_point():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    for needed in (
        "Quick start",
        "Use in your own project",
        "Results at a glance",
        "Where to read on",
    ):
        assert needed in headings, needed
    glance = readme.split("## Results at a glance", 1)[1].split("\n## ", 1)[0]
    assert glance.count("<!-- results:begin -->") == glance.count("<!-- results:end -->") == 1
    assert glance.index("<!-- results:begin -->") < glance.index("<!-- results:end -->")
    own = readme.split("## Use in your own project", 1)[1].split("\n## ", 1)[0]
    for needed in ("pip install", "minnorm run", "prefix:", "module minnorm:", "profiles/slurm"):
        assert needed in own, needed
    assert "30 to 126 min" in own
    # Every relative link of README points at a file of the repository.
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme):
        assert (REPO / target).exists(), target


def test_results_moved_to_the_docs():
    results = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    beyond = (REPO / "docs" / "beyond.md").read_text(encoding="utf-8")
    assert "\n# Results of the default run\n" in results
    assert "\n# Results beyond the paper\n" in beyond
    for page in (results, beyond):
        for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", page):
            assert (REPO / "docs" / image).is_file(), image


@pytest.mark.slow
def test_mkdocs_builds_strictly_with_generated_reference_pages(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    def page(name: str) -> str:
        return html.unescape((site / name / "index.html").read_text(encoding="utf-8"))

    configuration = page("reference/configuration")
    for path in _schema_setting_paths():
        assert f"<code>{path}</code>" in configuration, path
    for folder, names in (
        ("reference/figures", FIGURES),
        ("reference/checks", CHECKS),
        ("reference/datasets", DATASETS),
    ):
        text = page(folder)
        for name in names:
            assert f"<code>{name}</code>" in text, (folder, name)
    assert "minnorm run --help" in page("reference/command-line")
    assert not list(Path(site).rglob("reference_pages.py"))  # the hook is not published
