"""ARCHITECTURE.md's module table lists exactly the modules of src/minnorm, and names real
objects."""

from __future__ import annotations

import importlib
import re

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
