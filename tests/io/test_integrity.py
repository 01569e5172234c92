"""Tests of the structural check of netCDF-4 files (minnorm.io.integrity)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from minnorm.io import integrity
from minnorm.io.files import atomic_write_netcdf


@pytest.fixture
def whole(tmp_path: Path) -> Path:
    path = tmp_path / "whole.nc"
    atomic_write_netcdf(xr.Dataset({"a": (("x",), np.arange(500.0))}, attrs={"k": "v"}), path)
    return path


def test_whole_file_passes(whole: Path) -> None:
    assert integrity.netcdf_damage(whole) is None


@pytest.mark.parametrize("cut", [1, 1000, -40])
def test_truncated_file_is_damaged(whole: Path, tmp_path: Path, cut: int) -> None:
    size = whole.stat().st_size
    damaged = tmp_path / "cut.nc"
    shutil.copy(whole, damaged)
    keep = -cut if cut < 0 else size - cut  # -40: only the first 40 bytes are left
    os.truncate(damaged, keep)
    reason = integrity.netcdf_damage(damaged)
    assert reason is not None and (f"{keep} of {size} bytes" in reason or "superblock" in reason), (
        reason
    )
    with pytest.raises(OSError):  # what the reader would have met later
        xr.open_dataset(damaged, engine="netcdf4").close()


def test_other_files_are_damaged_and_removed(whole: Path, tmp_path: Path) -> None:
    text = tmp_path / "text.nc"
    text.write_text("not netCDF")
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.nc"
    found = integrity.remove_damaged([whole, text, empty, missing])
    assert set(found) == {str(text), str(empty)} and all(
        "not a netCDF-4" in r for r in found.values()
    )
    assert whole.exists() and not text.exists() and not empty.exists()
