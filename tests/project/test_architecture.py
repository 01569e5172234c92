"""ARCHITECTURE.md stays true: its module tables list exactly the modules of src/minnorm and name
real objects, its layer diagram is the import-linter contract, and its recipes name real files."""

from __future__ import annotations

import importlib
import re
import tomllib

import pytest

from helpers import REPO

PACKAGE = REPO / "src" / "minnorm"
# Package markers with nothing but a docstring are not modules of their own in the table.
DOCSTRING_ONLY = {
    "__init__.py",
    "core/__init__.py",
    "data/__init__.py",
    "training/__init__.py",
    "io/__init__.py",
    "analysis/__init__.py",
    "workflow/__init__.py",
}


def _table_rows() -> list[tuple[str, str]]:
    """(module path, main public names cell) of each row of the module table."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Library modules (src/minnorm)", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_/]+\.py)` \|[^|]*\|(.*)\|$", section, flags=re.M)
    assert rows, "no module rows found in ARCHITECTURE.md"
    return rows


def test_module_table_lists_exactly_the_package_modules():
    listed = [path for path, _ in _table_rows()]
    present = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")} - DOCSTRING_ONLY
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert set(listed) == present, (
        f"missing from ARCHITECTURE.md: {sorted(present - set(listed))}; "
        f"listed but absent: {sorted(set(listed) - present)}"
    )


@pytest.mark.parametrize("path,names", _table_rows(), ids=[p for p, _ in _table_rows()])
def test_public_names_in_the_table_exist(path, names):
    module = importlib.import_module(
        "minnorm." + path[: -len(".py")].replace("/", ".").removesuffix(".__init__")
    )
    # Attributes in parentheses after a class (`MinNormTarget` (`W_star`, ...)) belong to it, and
    # `make_*_file(s)`-style patterns or `python -m ...` commands are not names.
    top_level = names
    while re.search(r"\([^()]*\)", top_level):
        top_level = re.sub(r"\([^()]*\)", "", top_level)
    for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)(?=[`(:\[])", top_level):
        assert hasattr(module, name), f"ARCHITECTURE.md names {path}:{name}, which does not exist"


def _section(title: str) -> str:
    """The text of the ARCHITECTURE.md section `## <title>` (up to the next `## `)."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_layer_diagram_is_the_import_linter_contract():
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "importlinter"
    ]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    diagram = _section("Layers").split("```", 2)[1]
    drawn = [line.split()[0] for line in diagram.splitlines() if line.strip()]
    assert [f"minnorm.{name}" for name in drawn] == layers  # top to bottom in both
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    top_modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert set(drawn) == subpackages | top_modules


def test_recipes_name_files_that_exist():
    recipes = _section("To add X, edit Y")
    rows = [line for line in recipes.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows[1:]] == [
        "a figure",
        "a data set",
        "a theorem check",
        "a swept setting",
        "a setting of a data set",
        "a model or training setting",
        "an activation",
    ]
    named = re.findall(r"`((?:src|config|tests)/[^`<> ]+\.(?:py|yaml|rst))`", recipes)
    assert len(named) >= 8, named
    missing = [path for path in named if not (REPO / path).is_file()]
    assert not missing, f"ARCHITECTURE.md's recipes name files that do not exist: {missing}"
    folders = re.findall(r"`(src/minnorm/[a-z_/]+/)`", recipes)
    assert folders and all((REPO / folder).is_dir() for folder in folders), folders
