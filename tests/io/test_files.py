"""Tests for minnorm.io.files: atomic writes, float formatting and provenance."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from minnorm.io import files
from minnorm.io.files import (
    atomic_write_netcdf,
    format_float,
    provenance_attrs,
    write_text_atomic,
)


def _small_dataset() -> xr.Dataset:
    values = np.arange(12, dtype=np.float64).reshape(3, 4) / 7.0
    return xr.Dataset({"X": (("row", "col"), values)}, attrs={"note": "test"})


def test_atomic_write_netcdf_round_trip_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.nc"
    ds = _small_dataset()
    atomic_write_netcdf(ds, path)
    with xr.open_dataset(path, engine="netcdf4") as back:
        np.testing.assert_array_equal(back["X"].values, ds["X"].values)
        assert back.attrs["note"] == "test"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.nc"]


def test_atomic_write_netcdf_failure_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.nc"
    seen: list[Path] = []

    def half_write(self: xr.Dataset, target: Path, **kwargs: object) -> None:
        # Write some bytes first, like a writer interrupted midway, then fail.
        Path(target).write_bytes(b"\x89HDF\r\n partial")
        seen.append(Path(target))
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", half_write)
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_netcdf(_small_dataset(), path)
    assert seen == [tmp_path / f"out.nc.tmp-{os.getpid()}"]
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_failure_keeps_previous_complete_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.nc"
    atomic_write_netcdf(_small_dataset(), path)
    before = path.read_bytes()

    def fail_replace(src: object, dst: object) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(files.os, "replace", fail_replace)
    with pytest.raises(OSError, match="rename failed"):
        atomic_write_netcdf(_small_dataset().assign(X=lambda d: d["X"] * 2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.nc"]


def test_write_text_atomic_exact_bytes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "table.csv"
    text = "a,b\r\n1,2\nÄ,3\n"
    write_text_atomic(text, path)
    assert path.read_bytes() == text.encode("utf-8")
    write_text_atomic("new\n", path)
    assert path.read_text(encoding="utf-8") == "new\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (0.0, "0"),
        (-0.0, "0"),
        (0.2, "0.2"),
        (0.01, "0.01"),
        (1e-05, "1e-05"),
        (1.0, "1"),
        (2, "2"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e16, "1e+16"),
        (-0.5, "-0.5"),
    ],
)
def test_format_float_examples(value: float, expected: str) -> None:
    assert format_float(value) == expected


def test_format_float_round_trips() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0, 1, 200), 10.0 ** rng.uniform(-8, 3, 200)])
    for value in values:
        text = format_float(float(value))
        assert float(text) == float(value)
        # Same input, same string: no dependence on state.
        assert format_float(float(text)) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_format_float_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        format_float(value)


def test_provenance_attrs_values() -> None:
    import pytorch_lightning
    import torch

    import minnorm

    attrs = provenance_attrs(device="cpu", dtype="float64")
    assert set(attrs) == {
        "minnorm_version",
        "git_commit",
        "torch_version",
        "lightning_version",
        "python_version",
        "device",
        "dtype",
    }
    assert all(type(v) is str for v in attrs.values())
    assert attrs["minnorm_version"] == minnorm.__version__
    assert attrs["torch_version"] == str(torch.__version__)
    assert attrs["lightning_version"] == pytorch_lightning.__version__
    assert attrs["python_version"] == platform.python_version()
    assert attrs["device"] == "cpu" and attrs["dtype"] == "float64"
    package_dir = Path(files.__file__).resolve().parent
    reference = subprocess.run(
        ["git", "-C", str(package_dir), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    expected = reference.stdout.strip() if reference.returncode == 0 else "unknown"
    assert attrs["git_commit"] == expected


def test_provenance_git_commit_unknown_without_git(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    files._git_commit.cache_clear()
    monkeypatch.setattr(files.subprocess, "run", no_git)
    try:
        assert provenance_attrs(device="cuda:0", dtype="float32")["git_commit"] == "unknown"
    finally:
        files._git_commit.cache_clear()


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    # A pid that certainly ran and has ended: a finished child process.
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(child.stdout)
    final = tmp_path / "run.nc"
    stale = tmp_path / f"run.nc.tmp-{dead_pid}"
    stale.write_bytes(b"half a file")
    other = tmp_path / "other.nc.tmp-1"  # another file's temp is not ours to judge
    other.write_bytes(b"x")
    write_text_atomic("complete", final)
    assert final.read_text() == "complete"
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.nc.tmp-1", "run.nc"]
    assert other.exists()


def test_atomic_copy_copies_or_links_and_leaves_no_temp(tmp_path: Path) -> None:
    src = tmp_path / "run.nc"
    src.write_bytes(b"finished run")
    copied, linked = tmp_path / "a" / "copy.nc", tmp_path / "b" / "link.nc"
    files.atomic_copy(src, copied)
    files.atomic_copy(src, linked, hard_link=True)
    assert copied.read_bytes() == linked.read_bytes() == b"finished run"
    assert os.stat(linked).st_ino == os.stat(src).st_ino  # same file system here: a hard link
    assert os.stat(copied).st_ino != os.stat(src).st_ino
    src.unlink()  # as Snakemake removes a job's outputs before rerunning it
    assert linked.read_bytes() == b"finished run"
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_atomic_write_all_replaces_files_together_or_not_at_all(tmp_path: Path) -> None:
    png, pdf = tmp_path / "fig.png", tmp_path / "fig.pdf"

    def write(temps: list[Path]) -> None:
        assert [t.name for t in temps] == [
            f"fig.png.tmp-{os.getpid()}",
            f"fig.pdf.tmp-{os.getpid()}",
        ]
        temps[0].write_bytes(b"png 1")
        temps[1].write_bytes(b"pdf 1")

    files.atomic_write_all([png, pdf], write)
    assert (png.read_bytes(), pdf.read_bytes()) == (b"png 1", b"pdf 1")

    def fail_after_first(temps: list[Path]) -> None:
        temps[0].write_bytes(b"png 2")
        temps[1].write_bytes(b"half a pdf")
        raise RuntimeError("pdf backend failed")

    with pytest.raises(RuntimeError, match="pdf backend"):
        files.atomic_write_all([png, pdf], fail_after_first)
    assert (png.read_bytes(), pdf.read_bytes()) == (b"png 1", b"pdf 1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png"]
