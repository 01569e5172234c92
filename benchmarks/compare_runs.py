"""Compare the netCDF results of two results folders variable by variable, bit for bit.

Every data, target, run and collected file (`<exp>/{data,target,runs}/**/*.nc` and
`<exp>/<exp>.nc`) present in either folder is compared with its namesake: the same variables,
each with the same dims and values (`numpy.array_equal`, NaN equal to NaN), except
`wall_time_s`, and the same `config` attribute (the settings a file was made from; provenance
attributes such as `git_commit`, `code_sha256` and `run_identity` may differ). Prints one line
per difference and a summary; exit status 1 on any difference or missing file.

    .venv/bin/python benchmarks/compare_runs.py DIR_A DIR_B [--tolerance 1e-12]

With `--tolerance`, float values may differ by that relative amount (another kernel path); the
default 0 asks for identical bits.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

# Variables whose value is a measurement of this machine, not a result.
SKIPPED_VARIABLES = frozenset({"wall_time_s"})
# The one attribute that must agree: the settings a file was made from (JSON).
COMPARED_ATTRS = ("config",)


def result_files(root: Path) -> list[Path]:
    """The data, target, run and collected files under a results folder, relative to it."""
    found = set()
    for exp in sorted(p for p in root.iterdir() if p.is_dir()):
        for stage in ("data", "target", "runs"):
            found.update(exp.glob(f"{stage}/**/*.nc"))
        collected = exp / f"{exp.name}.nc"
        if collected.is_file():
            found.add(collected)
    return sorted(p.relative_to(root) for p in found)


def _values_equal(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    if a.shape != b.shape:
        return False
    if (
        tolerance > 0
        and np.issubdtype(a.dtype, np.floating)
        and np.issubdtype(b.dtype, np.floating)
    ):
        return bool(np.allclose(a, b, rtol=tolerance, atol=0.0, equal_nan=True))
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def file_differences(a: Path, b: Path, tolerance: float = 0.0) -> list[str]:
    """What differs between two netCDF files (variables but SKIPPED_VARIABLES, `config`)."""
    with xr.open_dataset(a, decode_times=False) as da, xr.open_dataset(b, decode_times=False) as db:
        da, db = da.load(), db.load()
    out = []
    names_a = set(da.variables) - SKIPPED_VARIABLES
    names_b = set(db.variables) - SKIPPED_VARIABLES
    for name in sorted(names_a ^ names_b, key=str):
        out.append(f"variable {name} only in {'the first' if name in names_a else 'the second'}")
    for name in sorted(names_a & names_b, key=str):
        va, vb = da[name], db[name]
        if va.dims != vb.dims:
            out.append(f"{name}: dims {va.dims} != {vb.dims}")
        elif not _values_equal(np.asarray(va.values), np.asarray(vb.values), tolerance):
            out.append(f"{name}: values differ")
    for key in COMPARED_ATTRS:
        config_a, config_b = da.attrs.get(key), db.attrs.get(key)
        if (config_a is None) != (config_b is None) or (
            config_a is not None and json.loads(config_a) != json.loads(config_b)
        ):
            out.append(f"attribute {key} differs")
    return out


def compare(root_a: Path, root_b: Path, tolerance: float = 0.0) -> list[str]:
    """Every difference between the result files of two results folders, one line each."""
    files_a, files_b = set(result_files(root_a)), set(result_files(root_b))
    lines = [f"{path}: only in {root_a}" for path in sorted(files_a - files_b)]
    lines += [f"{path}: only in {root_b}" for path in sorted(files_b - files_a)]
    for path in sorted(files_a & files_b):
        lines += [f"{path}: {d}" for d in file_differences(root_a / path, root_b / path, tolerance)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="a results folder")
    parser.add_argument("second", type=Path, help="the results folder to compare with")
    parser.add_argument(
        "--tolerance", type=float, default=0.0, help="relative tolerance for floats (default 0)"
    )
    args = parser.parse_args(argv)
    for root in (args.first, args.second):
        if not root.is_dir():
            parser.error(f"{root} is not a folder")
    differences = compare(args.first, args.second, args.tolerance)
    for line in differences:
        print(line)
    count = len(set(result_files(args.first)) | set(result_files(args.second)))
    print(f"{count} files compared, {len(differences)} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
