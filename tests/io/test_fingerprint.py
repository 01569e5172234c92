"""Tests of minnorm.io.fingerprint: which source files make up the numerical code."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from minnorm.data.registry import DATASETS
from minnorm.io import fingerprint

TOY_ENTRY = """
DATASETS["toy_line"] = DatasetSpec("toy_line", "minnorm.data.datasets:build_toy_line",
                                   "a toy regression data set", dim=1)
"""


def _fingerprint_of(package: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(fingerprint, "PACKAGE", package)
    return fingerprint.numerics_fingerprint.__wrapped__()  # uncached


def test_registering_a_data_set_keeps_the_fingerprint(tmp_path, monkeypatch):
    package = tmp_path / "minnorm"
    shutil.copytree(fingerprint.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = _fingerprint_of(package, monkeypatch)
    assert before == fingerprint.numerics_fingerprint()  # the copy hashes like the package

    registry = package / "data" / "registry.py"
    registry.write_text(registry.read_text() + TOY_ENTRY)
    spec = importlib.util.spec_from_file_location("copied_registry", registry)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "copied_registry", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    assert "toy_line" in module.DATASETS  # the edit really registers a data set
    assert _fingerprint_of(package, monkeypatch) == before

    datasets = package / "data" / "datasets.py"
    datasets.write_text(datasets.read_text() + "\n\ndef build_toy_line(cfg):\n    return None\n")
    assert _fingerprint_of(package, monkeypatch) != before


def test_every_registered_generator_lives_in_the_numerical_code():
    hashed = {
        f.relative_to(fingerprint.PACKAGE).as_posix() for f in fingerprint.numeric_source_files()
    }
    assert "data/registry.py" not in hashed and "data/datasets.py" in hashed
    for name, spec in DATASETS.items():
        module = importlib.import_module(spec.builder.__module__)
        path = Path(module.__file__).resolve().relative_to(fingerprint.PACKAGE).as_posix()
        assert path in hashed, f"{name}: generator in {path}, which the numerics fingerprint skips"
