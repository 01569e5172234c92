"""Fingerprint of the numerical code: the source that can change a run's numbers.

A finished run (or a checkpoint) is reused only when this fingerprint is unchanged. Plotting,
checks, collection, config handling, logging and the workflow are deliberately left out, so that
editing them never retrains anything.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

# Paths relative to the package: folders are hashed recursively (every file below them whose
# suffix is in SOURCE_SUFFIXES: the Python modules and the C++ kernel's sources, training/csrc/).
NUMERIC_SOURCES: tuple[str, ...] = (
    "core",
    "data",
    "training",
)
SOURCE_SUFFIXES: tuple[str, ...] = (".py", ".cpp", ".h")
# Files inside NUMERIC_SOURCES that cannot change a number: memory estimates and allocator
# settings (training/resources.py), where torch.compile keeps its cache
# (training/compile_cache.py), the terminal progress lines (training/progress.py); the data-set
# registry (data/registry.py: names, config
# checks, class counts and input dimensions for validation and planning; its generators live in
# data/datasets.py, which is hashed), so registering a new data set retrains nothing by itself.
NON_NUMERIC_FILES: frozenset[str] = frozenset(
    {
        "training/resources.py",
        "training/compile_cache.py",
        "training/progress.py",
        "data/registry.py",
    }
)


def numeric_source_files() -> list[Path]:
    """The source files (*.py, *.cpp, *.h) that make up the numerical code, sorted by their
    package-relative path."""
    files: list[Path] = []
    for entry in NUMERIC_SOURCES:
        path = PACKAGE / entry
        if path.is_dir():
            files.extend(f for f in path.rglob("*") if f.suffix in SOURCE_SUFFIXES and f.is_file())
        else:
            files.append(path)
    return sorted(
        (f for f in files if f.relative_to(PACKAGE).as_posix() not in NON_NUMERIC_FILES),
        key=lambda f: f.relative_to(PACKAGE).as_posix(),
    )


@functools.cache
def numerics_fingerprint() -> str:
    """SHA-256 over the numerical source files (names and bytes): 64 hex digits."""
    digest = hashlib.sha256()
    for path in numeric_source_files():
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
