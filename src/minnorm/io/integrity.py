"""Cheap structural check of the netCDF-4 files the workflow writes (no netCDF/HDF5 library).

Every file is written to a temporary name and renamed when complete, so a damaged file under a
final name comes from outside (a full disk on another tool's copy, a truncation, a bad sync).
A netCDF-4 file is an HDF5 file whose superblock, at the start, records the address of the
file's end; a file shorter than that, or without the HDF5 signature, is damaged. Reading the
first bytes is enough, so the whole results folder is checked when the workflow is parsed.
"""

from __future__ import annotations

import os
from pathlib import Path

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Bytes of the superblock that hold the addresses read below (8-byte offsets, version 0/1: 24
# or 28 fixed bytes + 3 addresses; version 2/3: 12 fixed bytes + 3 addresses).
_HEAD_BYTES = 64


def _address(head: bytes, at: int, size: int) -> int:
    return int.from_bytes(head[at : at + size], "little")


def netcdf_damage(path: str | os.PathLike[str]) -> str | None:
    """Why the netCDF-4 file at `path` is damaged, or None when its length is whole.

    Raises FileNotFoundError if there is no file.
    """
    size = os.stat(path).st_size
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if not head.startswith(HDF5_SIGNATURE):
        return f"not a netCDF-4 (HDF5) file ({size} bytes)"
    if len(head) < 16:
        return f"truncated: {size} bytes, shorter than the HDF5 superblock"
    version = head[8]
    if version in (0, 1):
        offset_size, first = head[13], 24 + (4 if version == 1 else 0)
    elif version in (2, 3):
        offset_size, first = head[9], 12
    else:
        return f"unknown HDF5 superblock version {version}"
    if offset_size not in (2, 4, 8) or len(head) < first + 3 * offset_size:
        return f"truncated or corrupt HDF5 superblock ({size} bytes)"
    base = _address(head, first, offset_size)
    # version 0/1: base, free-space info, end of file; version 2/3: base, extension, end of file
    end = base + _address(head, first + 2 * offset_size, offset_size)
    if size < end:
        return f"truncated: {size} of {end} bytes"
    return None


def damaged_files(paths: list[str] | list[Path]) -> dict[str, str]:
    """`{path: reason}` for each existing file of `paths` that `netcdf_damage` finds damaged."""
    found = {}
    for path in paths:
        try:
            reason = netcdf_damage(path)
        except FileNotFoundError:
            continue
        if reason is not None:
            found[str(path)] = reason
    return found


def remove_damaged(paths: list[str] | list[Path]) -> dict[str, str]:
    """Delete each damaged file of `paths` (see `damaged_files`); return `{path: reason}`.

    A damaged result is unreadable and fully derived, so removing it loses nothing, and the job
    that makes it then runs again (Snakemake sees a missing output).
    """
    found = damaged_files(paths)
    for path in found:
        Path(path).unlink(missing_ok=True)
    return found
