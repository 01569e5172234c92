"""The one module:function resolver (minnorm.io.resolve): what the registries name, resolved; a
bad reference named in the error; no other module of the package imports by name."""

from __future__ import annotations

import re

import pytest

from helpers import REPO
from minnorm.config.figure_registry import FIGURES
from minnorm.data.registry import DATASETS
from minnorm.io.resolve import resolve, split_reference


def test_every_registered_reference_resolves_to_its_function():
    for spec in DATASETS.values():
        if isinstance(spec.build, str):
            module, name = split_reference(spec.build)
            function = resolve(spec.build)
            assert function.__module__ == module and function.__name__ == name
            assert spec.builder is function
    for spec in FIGURES.values():
        assert spec.function is resolve(spec.plot)
        assert spec.function.__name__ == f"plot_{spec.name}"


def test_a_callable_is_its_own_reference():
    assert resolve(len) is len


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("minnorm.data.datasets", "not a 'package.module:function' reference"),
        (":build_digits", "not a 'package.module:function' reference"),
        ("minnorm.data.datasets:nope", "has no function 'nope'"),
        ("minnorm.data.datasets:DATASETS", "has no function 'DATASETS'"),
    ],
)
def test_bad_references_are_named(reference, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve(reference)


def test_no_other_module_imports_by_name():
    package = REPO / "src" / "minnorm"
    users = sorted(
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if "import_module(" in path.read_text(encoding="utf-8")
    )
    assert users == ["io/resolve.py"]
