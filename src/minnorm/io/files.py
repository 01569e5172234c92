"""Atomic file writes, CF helpers, stable float formatting for paths, and provenance attributes for
outputs."""

from __future__ import annotations

import functools
import math
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

# The version of the CF metadata conventions the netCDF outputs follow (global `Conventions`):
# UDUNITS units ("1" for dimensionless numbers, none on flags), `long_name` on every variable,
# `flag_values`/`flag_meanings` on 0/1 flags, coordinates on the dimensions whose index means
# something (`step`, `eig`, the swept values); plain position dims (train, neuron, ...) have none;
# global `title` and `history`, no `_FillValue` on coordinates (`cf_ready`, on every write).
CF_CONVENTIONS = "CF-1.11"

# `git rev-parse` is a local, instant command; a hung git (e.g. a stale lock on a network
# file system) must not stall a training job, so give up after a few seconds.
GIT_TIMEOUT_S = 5.0


def _temp_path(path: Path) -> Path:
    """The temporary sibling `<name>.tmp-<pid>` that a write goes to before the rename."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete `<name>.tmp-<pid>` siblings of `path` left by writers that no longer run.

    A writer killed with SIGKILL (or a machine crash) cannot clean up after itself; the next
    write of the same file removes what it left. Returns the removed paths.
    """
    removed = []
    for temp in path.parent.glob(f"{path.name}.tmp-*"):
        pid = temp.name.rsplit(".tmp-", 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            temp.unlink(missing_ok=True)
            removed.append(temp)
    return removed


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary sibling `<name>.tmp-<pid>` of `path`, then rename it onto
    `path`.

    The one temp-and-rename mechanism of the package: every file writer (netCDF, text, JSON,
    copies, checkpoints, figures) goes through it. `write` must create the file it is given (a
    writer that picks the format from the suffix must be told the format explicitly). Parent
    folders are created, and temporaries left by writers that no longer run are removed first.

    The rename is atomic on POSIX file systems, so `path` either keeps its old content (or stays
    absent) or holds the complete new file: a reader, or a workflow engine deciding whether a job is
    done, never sees half a file. On any exception the temporary file is removed and the exception
    propagates.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)
    tmp = _temp_path(final)
    try:
        write(tmp)
        # Flush the data to disk before the rename, so that a crash of the machine right after
        # the rename cannot leave a complete-looking name with empty content.
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        # BaseException: a KeyboardInterrupt/SystemExit mid-write must not leave the temp behind.
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_all(
    paths: Sequence[str | os.PathLike[str]], write: Callable[[list[Path]], None]
) -> None:
    """``atomic_write`` for files that belong together (a figure's PNG and PDF).

    ``write(temps)`` fills one temporary sibling per path (same order); only after it returned
    are they renamed onto ``paths``. A failure while writing leaves every path as it was and no
    temporary behind.
    """
    finals = [Path(p) for p in paths]

    def nest(done: list[Path]) -> None:
        if len(done) == len(finals):
            write(done)
        else:
            atomic_write(finals[len(done)], lambda tmp: nest([*done, tmp]))

    nest([])


def cf_title(ds: xr.Dataset) -> str:
    """The CF `title` of a file whose writer gave none: its data set for a data file (attribute
    `dataset`), else a general one. Never the file's path, so a file's bytes do not depend on
    where it is written."""
    if "title" in ds.attrs and ds.attrs["title"]:
        return str(ds.attrs["title"])
    if "dataset" in ds.attrs:
        return f"minnorm data set {ds.attrs['dataset']}: training and test points"
    return "minnorm output"


def cf_ready(ds: xr.Dataset, title: str | None = None) -> xr.Dataset:
    """A shallow copy of `ds` with what CF-1.11 asks of every file (compliance-checker `cf:1.11`
    reports neither errors nor warnings for the outputs: tests/io/test_cf.py).

    - global `title`: `title`, else `cf_title(ds)`;
    - global `history`: the dataset's own lines, then "minnorm <version>" unless that is already
      the last line (no date and no path, so two writes of one dataset give identical files);
    - no `_FillValue` on coordinate variables (CF 2.5.1; xarray adds one to float coordinates
      such as `lr` and `label_noise` unless told not to).
    """
    from minnorm import __version__

    out = ds.copy(deep=False)
    out.attrs = dict(ds.attrs)
    out.attrs["title"] = title or cf_title(ds)
    line = f"minnorm {__version__}"
    lines = [x for x in str(ds.attrs.get("history") or "").splitlines() if x]
    out.attrs["history"] = "\n".join(lines if lines[-1:] == [line] else [*lines, line])
    for dim in out.dims:
        if dim in out.variables:
            out[dim].encoding = {**out[dim].encoding, "_FillValue": None}
    return out


def atomic_write_netcdf(
    ds: xr.Dataset, path: str | os.PathLike[str], *, title: str | None = None
) -> None:
    """Write `ds` to `path` as netCDF4 atomically (temporary `<path>.tmp-<pid>`, then `os.replace`),
    with the CF attributes of `cf_ready` (`title` names what the file holds).

    Parent folders are created. On failure nothing is left at `path` that was not there before.
    """
    ready = cf_ready(ds, title)
    atomic_write(path, lambda tmp: ready.to_netcdf(tmp, engine="netcdf4"))


def atomic_copy(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, hard_link: bool = False
) -> None:
    """Put a copy of file `src` at `dst` atomically; `hard_link` links instead of copying where
    the file system allows it (same inode: no extra space, and `src` may be deleted later)."""

    def write(tmp: Path) -> None:
        if hard_link:
            try:
                os.link(src, tmp)
                return
            except OSError:  # another file system, or links not supported: copy instead
                pass
        shutil.copy2(src, tmp)

    atomic_write(dst, write)


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> None:
    """Write `text` (UTF-8) to `path` atomically, for CSV, markdown and other text outputs."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)

    atomic_write(path, write)


def flag_attrs(meanings: tuple[str, ...], dtype: np.dtype | type = np.int8) -> dict[str, Any]:
    """CF attributes of a flag variable holding 0, 1, ...: ``flag_values`` (of the variable's
    dtype) and ``flag_meanings`` (blank-separated words, meaning of 0 first)."""
    return {
        "flag_values": np.arange(len(meanings)).astype(dtype),
        "flag_meanings": " ".join(meanings),
    }


def format_float(x: float) -> str:
    """Format a float for file names and wildcards: shortest string that reads back to `x`.

    Uses Python's `repr` (the shortest round-trip representation, identical on every platform and
    Python >= 3.1), dropping a trailing ".0" so integral values look like ints and 0.0 / -0.0 give
    "0". Examples: 0 -> "0", 0.2 -> "0.2", 0.01 -> "0.01", 1e-5 -> "1e-05", 2.0 -> "2".
    `float(format_float(x)) == x` always holds. NaN and infinities raise ValueError.
    """
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"cannot format non-finite value {value!r} for a file name")
    if value == 0.0:
        return "0"
    text = repr(value)
    if text.endswith(".0"):
        text = text[:-2]
    return text


@functools.lru_cache(maxsize=1)
def _git_commit() -> str:
    """Commit hash of the git repository holding this package, or "unknown" (never raises)."""
    package_dir = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(package_dir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    if result.returncode != 0 or not commit:
        return "unknown"
    return commit


def provenance_attrs(*, device: str, dtype: str) -> dict[str, str]:
    """String attributes recording what produced an output file.

    Keys: `minnorm_version`, `git_commit` (of the repository holding the package, "unknown" if it
    is not in one or git is unavailable), `torch_version`, `lightning_version` (pytorch_lightning),
    `python_version`, `device`, `dtype`.
    """
    # Imported here so that importing minnorm.io.files stays cheap for scripts that only write text.
    import pytorch_lightning
    import torch

    from minnorm import __version__

    return {
        "minnorm_version": __version__,
        "git_commit": _git_commit(),
        "torch_version": str(torch.__version__),
        "lightning_version": str(pytorch_lightning.__version__),
        "python_version": platform.python_version(),
        "device": str(device),
        "dtype": str(dtype),
    }
