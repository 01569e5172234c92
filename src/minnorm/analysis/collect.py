"""Collect one experiment's run files into a single Dataset indexed by the swept values, and read it
back."""

from __future__ import annotations

import itertools
import json
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from minnorm.config.run_config import read_section
from minnorm.config.sweep import RUN_SWEEP_KEYS, SETTING_ATTR
from minnorm.io.files import CF_CONVENTIONS

# The swept values every run has, in the order of the collected dims (ARCHITECTURE.md, file 4).
RUN_DIMS: tuple[str, ...] = RUN_SWEEP_KEYS
# A run file without these is not a run file.
REQUIRED_VARIABLES: tuple[str, ...] = ("train_loss", "diverged")


class CollectError(ValueError):
    """A run file is unreadable, malformed, or clashes with another run file."""


def _read_run(path: Path) -> xr.Dataset:
    """Load one run file into memory and check its shape; errors name the file."""
    try:
        ds = xr.load_dataset(path)
    except Exception as exc:  # netCDF4/h5py raise many types for one cause: not a readable file
        raise CollectError(f"run file {path}: cannot be read as netCDF ({exc})") from exc
    if "step" not in ds.dims:
        raise CollectError(f"run file {path}: has no 'step' dimension")
    for name in RUN_DIMS:
        if name not in ds.coords or ds[name].ndim != 0:
            raise CollectError(f"run file {path}: lacks the scalar coordinate {name!r}")
    for name in _setting_coords(ds):
        if ds[name].ndim != 0:
            raise CollectError(f"run file {path}: swept setting {name!r} is not a scalar")
    missing = [name for name in REQUIRED_VARIABLES if name not in ds.data_vars]
    if missing:
        raise CollectError(f"run file {path}: lacks variables {missing}")
    return ds


# Marks a config entry whose value differs between runs (None is a legitimate JSON value).
_DIFFERENT = object()


def _shared_config(configs: list[Any]) -> Any:
    """The part of several JSON config trees equal in all of them (nested dicts intersected)."""
    first = configs[0]
    if all(isinstance(c, dict) for c in configs):
        shared = {}
        for key in first:
            if all(key in c for c in configs):
                value = _shared_config([c[key] for c in configs])
                if value is not _DIFFERENT:
                    shared[key] = value
        return shared
    return first if all(c == first for c in configs) else _DIFFERENT


def _shared_attrs(runs: list[xr.Dataset]) -> dict[str, Any]:
    """Dataset attrs equal across all runs; `config` reduced to its shared part."""
    attrs: dict[str, Any] = {}
    for key, value in runs[0].attrs.items():
        if key == "config":
            continue
        if all(
            key in r.attrs and np.array_equal(np.asarray(r.attrs[key]), np.asarray(value))
            for r in runs
        ):
            attrs[key] = value
    try:
        configs = [json.loads(r.attrs["config"]) for r in runs]
    except (KeyError, TypeError, ValueError):
        return attrs  # no (parsable) config in some run: keep no config rather than a wrong one
    shared = _shared_config(configs)
    if shared is not _DIFFERENT:
        attrs["config"] = json.dumps(shared, sort_keys=True)
    return attrs


def _setting_coords(ds: xr.Dataset) -> list[str]:
    """The coordinates of `ds` that hold a swept setting (attr SETTING_ATTR), sorted by name."""
    return sorted(str(name) for name, c in ds.coords.items() if SETTING_ATTR in c.attrs)


def setting_dims(ds: xr.Dataset) -> tuple[str, ...]:
    """The dims of a collected Dataset that come from swept settings (`model_kappa`, ...)."""
    return tuple(str(d) for d in ds.dims if d in ds.coords and SETTING_ATTR in ds[d].attrs)


def _run_key(ds: xr.Dataset, dims: tuple[str, ...]) -> tuple:
    return tuple(ds[name].item() for name in dims)


def collect_experiment(run_files: list[Path]) -> xr.Dataset:
    """Combine run files into one Dataset with dims (width, seed, label_noise, lr, [settings,]
    step [, eig]).

    Every run variable gets the swept dims in front of its own dims; a swept setting (a scalar
    coordinate with attr SETTING_ATTR, e.g. `model_kappa`) is a dim after lr, sorted by name. Steps
    are the union over
    runs; a run without a step (stopped early) has NaN there. Missing (width, seed, label_noise,
    lr) combinations are NaN too; integer variables keep their dtype only when nothing is
    missing (else float64 with NaN). Attrs are those equal in all runs, plus `n_runs`.
    Raises `CollectError` naming the file for unreadable/malformed files, duplicate runs,
    mismatched variables, or other dims (e.g. `eig`) whose length differs between runs.
    """
    paths = [Path(p) for p in run_files]
    if not paths:
        raise CollectError("collect_experiment: no run files given")
    runs = [_read_run(p) for p in paths]
    settings = _setting_coords(runs[0])
    for path, ds in zip(paths, runs, strict=True):
        if _setting_coords(ds) != settings:
            raise CollectError(
                f"run file {path}: swept settings {_setting_coords(ds)} differ from "
                f"{settings} in {paths[0]}"
            )
    run_dims = RUN_DIMS + tuple(settings)
    seen: dict[tuple, Path] = {}
    for path, ds in zip(paths, runs, strict=True):
        key = _run_key(ds, run_dims)
        if key in seen:
            raise CollectError(
                f"run file {path}: duplicate run {dict(zip(run_dims, key, strict=True))}, "
                f"also in {seen[key]}"
            )
        seen[key] = path

    names = list(runs[0].data_vars)
    other_sizes: dict[Hashable, int] = {
        dim: size for dim, size in runs[0].sizes.items() if dim != "step"
    }
    for path, ds in zip(paths, runs, strict=True):
        if set(ds.data_vars) != set(names):
            diff = sorted(map(str, set(ds.data_vars) ^ set(names)))
            raise CollectError(f"run file {path}: variables differ from {paths[0]} in {diff}")
        for dim, size in ds.sizes.items():
            if dim != "step" and other_sizes.get(dim) != size:
                raise CollectError(
                    f"run file {path}: dimension {dim!r} has length {size}, "
                    f"expected {other_sizes.get(dim)} as in {paths[0]}"
                )

    coords = {dim: np.unique([ds[dim].values for ds in runs]) for dim in run_dims}
    steps = np.unique(np.concatenate([ds["step"].values for ds in runs]))
    grid = tuple(len(coords[d]) for d in run_dims)
    complete = int(np.prod(grid)) == len(runs)
    cells = [tuple(int(np.searchsorted(coords[d], ds[d].values)) for d in run_dims) for ds in runs]
    step_index = [np.searchsorted(steps, ds["step"].values) for ds in runs]

    data_vars = {}
    for name in names:
        template = runs[0][name]
        dims = run_dims + template.dims
        shape = grid + tuple(len(steps) if d == "step" else other_sizes[d] for d in template.dims)
        dtype = template.dtype
        integer = np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_)
        if integer and complete and "step" not in template.dims:
            values = np.zeros(shape, dtype=dtype)
        else:
            values = np.full(
                shape, np.nan, dtype=np.float64 if integer or dtype.kind != "f" else dtype
            )
        for ds, cell, idx in zip(runs, cells, step_index, strict=True):
            var = ds[name].transpose(*template.dims)
            if "step" in template.dims:
                axis = template.dims.index("step")
                where = tuple(idx if i == axis else slice(None) for i in range(var.ndim))
                values[cell + where] = var.values
            else:
                values[cell] = var.values
        var_attrs = dict(template.attrs)
        if (
            "flag_values" in var_attrs
        ):  # CF: flag values have the variable's type (float with NaN holes)
            var_attrs["flag_values"] = np.asarray(var_attrs["flag_values"]).astype(values.dtype)
        data_vars[name] = (dims, values, var_attrs)

    out_coords: dict[Hashable, Any] = {d: (d, coords[d], dict(runs[0][d].attrs)) for d in run_dims}
    out_coords["step"] = ("step", steps, dict(runs[0]["step"].attrs))
    # Other dims (eig) keep the first run's coordinate; equal lengths were checked above.
    for dim in other_sizes:
        if dim in runs[0].coords:
            out_coords[dim] = (dim, runs[0][dim].values, dict(runs[0][dim].attrs))
    attrs = {"Conventions": CF_CONVENTIONS, **_shared_attrs(runs)}
    attrs["n_runs"] = len(runs)
    return xr.Dataset(data_vars, coords=out_coords, attrs=attrs)


# ---- reading a collected Dataset (shared by checks and figures) ----


def first_values(collected: xr.Dataset, keep: tuple[str, ...] = ()) -> xr.Dataset:
    """The collected Dataset at the first (smallest) lr, label noise and value of every swept
    setting (`setting_dims`), except the dims in `keep`; the chosen values stay scalar coords."""
    dims = ("lr", "label_noise", *setting_dims(collected))
    index = {d: 0 for d in dims if d in collected.dims and d not in keep}
    return collected.isel(index) if index else collected


def first_lr(collected: xr.Dataset) -> xr.Dataset:
    """The collected Dataset at its first (smallest) learning rate and at the first value of
    every swept setting; label noise is kept.

    The paper's figures and checks read one slice like this; the studies of swept settings
    (minnorm.analysis.beyond) read the whole grid.
    """
    return first_values(collected, keep=("label_noise",))


def final_by_width(da: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Final values of `da` (dims width, seed [, step]; mask diverged runs first, `converged`):
    widths (k,), values (k, seeds), every width kept (NaN where a run has no value)."""
    final = (final_values(da) if "step" in da.dims else da).transpose("width", ...)
    return final["width"].values, final.values.reshape(final.sizes["width"], -1)


def diverged_mask(collected: xr.Dataset) -> xr.DataArray:
    """True for runs flagged diverged; dims: the swept dims present. Missing runs are False."""
    return collected["diverged"].fillna(0) > 0


def converged(da: xr.DataArray, collected: xr.Dataset) -> xr.DataArray:
    """`da` with the diverged runs set to NaN (same dims as `da`)."""
    return da.where(~diverged_mask(collected))


def final_values(da: xr.DataArray) -> xr.DataArray:
    """The last finite value along `step` for each run; dims: `da`'s dims without `step`.

    NaN for a run with no finite value.
    """
    values = np.moveaxis(da.values, da.dims.index("step"), -1)
    finite = np.isfinite(values)
    last = values.shape[-1] - 1 - np.argmax(finite[..., ::-1], axis=-1)
    picked = np.take_along_axis(values, last[..., None], axis=-1)[..., 0]
    picked = np.where(finite.any(axis=-1), picked, np.nan)
    dims = tuple(d for d in da.dims if d != "step")
    coords = {k: v for k, v in da.coords.items() if "step" not in v.dims}
    return xr.DataArray(picked, dims=dims, coords=coords, name=da.name, attrs=da.attrs)


def initial_values(da: xr.DataArray) -> xr.DataArray:
    """The first finite value along `step` for each run (dims without `step`)."""
    return final_values(da.isel(step=slice(None, None, -1)))


def diverged_runs(collected: xr.Dataset) -> list[dict[str, Any]]:
    """One dict per diverged run: its swept values and `diverged_step`."""
    mask = diverged_mask(collected)
    stacked = mask.stack(run=mask.dims) if mask.dims else mask.expand_dims(run=[0])
    out = []
    for i in np.flatnonzero(stacked.values):
        where = {d: stacked[d].values[i].item() for d in mask.dims}
        sel = collected["diverged_step"].sel(where)
        entry: dict[str, Any] = {str(d): value for d, value in where.items()}
        entry["diverged_step"] = int(sel.values)
        out.append(entry)
    return out


# ---- data draws and the combinations of swept values a check runs over ----

# The swept setting that draws a new data set (points, labels, beta): `sweep: {data.seed: [...]}`.
# Its values are the *data draws* of an experiment; every other swept value is a setting.
DRAW_DIM = "data_seed"


def draw_dim(collected: xr.Dataset) -> str | None:
    """DRAW_DIM when the experiment sweeps data.seed, else None (one draw: the config's)."""
    return DRAW_DIM if DRAW_DIM in collected.dims else None


def config_data_seed(collected: xr.Dataset) -> int | None:
    """data.seed of the shared config (attrs["config"]) when it is the same for every run."""
    try:
        return int(read_section(json.loads(collected.attrs["config"]), "data")["seed"])
    except (KeyError, TypeError, ValueError):
        return None


def combinations(
    collected: xr.Dataset, exclude: tuple[str, ...] = ()
) -> list[tuple[str, dict[str, int]]]:
    """Every combination of the swept values other than width, seed, the data draws and
    `exclude`: [(label, isel indexers)], one per combination, in coordinate order.

    The label names each swept value with more than one value ("lr=0.01, model_kappa=0.1"); ""
    when nothing else is swept. A check over widths runs once per combination, never on runs
    pooled across them.
    """
    skip = {"width", "seed", DRAW_DIM, *exclude}
    dims = [d for d in ("lr", "label_noise", *setting_dims(collected)) if d in collected.dims]
    dims = [d for d in dims if d not in skip]
    out = []
    for index in itertools.product(*(range(collected.sizes[d]) for d in dims)):
        indexers = dict(zip(dims, index, strict=True))
        label = ", ".join(
            f"{d}={value_text(collected[d].values[i])}"
            for d, i in indexers.items()
            if collected.sizes[d] > 1
        )
        out.append((label, indexers))
    return out


def value_text(value: Any) -> str:
    """A swept value as shown in tables: 0.01, 1, center, true."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, bytes):
        return value.decode()
    return str(value.item() if hasattr(value, "item") else value)


@dataclass(frozen=True)
class WidthData:
    """Final values of one variable over widths, in long form (one row per run).

    m, values, draw: (N,) width, final value (NaN: diverged or missing) and data-draw label;
    seed: (N,) the init seed (a (draw, seed) pair is one cluster); n_draws, n_seeds: counts.
    """

    m: np.ndarray
    values: np.ndarray
    draw: np.ndarray
    seed: np.ndarray

    @property
    def n_draws(self) -> int:
        return int(np.unique(self.draw).size)

    @property
    def n_seeds(self) -> int:
        return int(np.unique(self.seed).size)

    def subset(self, mask: np.ndarray) -> WidthData:
        return WidthData(self.m[mask], self.values[mask], self.draw[mask], self.seed[mask])


def width_data(sel: xr.Dataset, values: xr.DataArray) -> WidthData:
    """Long-form final values of `values` (dims width, seed [, data_seed] [, step]; diverged
    runs are masked here) for a slice `sel` of a collected Dataset where every other swept dim
    has been selected. Missing and diverged runs stay as NaN rows."""
    da = converged(values, sel)
    da = final_values(da) if "step" in da.dims else da
    if DRAW_DIM not in da.dims:
        seed = config_data_seed(sel)
        da = da.expand_dims({DRAW_DIM: [0 if seed is None else seed]})
    extra = [d for d in da.dims if d not in ("width", "seed", DRAW_DIM)]
    if extra:
        raise ValueError(f"width_data: dims {extra} must be selected first")
    da = da.transpose(DRAW_DIM, "seed", "width")
    draws, seeds, widths = (da[d].values for d in (DRAW_DIM, "seed", "width"))
    grid = np.meshgrid(draws, seeds, widths, indexing="ij")
    return WidthData(
        grid[2].ravel().astype(np.float64),
        da.values.ravel().astype(np.float64),
        grid[0].ravel(),
        grid[1].ravel(),
    )
