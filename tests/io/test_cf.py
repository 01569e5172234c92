"""The netCDF outputs (data, target, run, collected files) follow the CF conventions where they
apply.

Read back with netCDF4 itself (no xarray decoding): global `Conventions`, a `long_name` on every
variable, UDUNITS units ("1" for dimensionless numbers, "s" for the wall time) and never the
non-units "step"/"neurons", flag attributes instead of units on the 0/1 flags, and coordinate
variables on the dimensions whose index means something (`step`, `eig`, the swept values).
And every kind passes the IOOS compliance-checker's `cf:1.11` suite (the convention the files
declare) with no error and no warning.
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from helpers.cf import cf_problems
from helpers.training import run_mapping
from minnorm.analysis.collect import collect_experiment
from minnorm.config.run_config import RunConfig
from minnorm.data.datasets import make_dataset, save_dataset
from minnorm.data.settings import DataSettings
from minnorm.data.target_file import build_target_dataset
from minnorm.io.files import atomic_write_netcdf
from minnorm.training.train import train_run

# Units the files use; both are UDUNITS-2 units ("1": dimensionless, "s": second).
UDUNITS_USED = {"1", "s"}
FLAGS = {
    "diverged": "not_diverged diverged",
    "used_pinv": "cholesky_solve pseudo_inverse",
    "diverged_reason": "not_diverged weights_not_finite loss_not_finite loss_above_limit",
}


def run_config(data: DataSettings, seed: int, kappa: float | None = None) -> RunConfig:
    """A 10-step eager run of the CF fixture, with `model.kappa` swept when `kappa` is given."""
    mapping = run_mapping(
        data, width=16, seed=seed, lr=0.1, steps=10, every=5, log_points=0, experiment="cf"
    )
    if kappa is not None:
        mapping["model"]["kappa"] = kappa
        mapping["sweep"] = {"model.kappa": kappa}
    return RunConfig.from_mapping(mapping)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cf")
    data_cfg = DataSettings("digits", n_train=10, n_test=8, seed=0, classes=(0, 1))
    out = {"data": root / "data.nc", "target": root / "target.nc", "collected": root / "cf.nc"}
    runs = []
    for seed in (0, 1):
        data = make_dataset(data_cfg, label_noise=0.0, seed=seed)
        save_dataset(data, out["data"])
        target = build_target_dataset(data, width=16, seed=seed, bias=True, kappa=1.0)
        atomic_write_netcdf(target, out["target"])
        runs.append(root / f"run{seed}.nc")
        atomic_write_netcdf(train_run(data, target, run_config(data_cfg, seed)), runs[-1])
    out["run"] = runs[0]
    atomic_write_netcdf(collect_experiment(runs), out["collected"])
    # A collected file with a swept float setting: one more coordinate variable (model_kappa).
    data = make_dataset(data_cfg, label_noise=0.0, seed=0)
    swept = []
    for kappa in (0.5, 1.0):
        target = build_target_dataset(data, width=16, seed=0, bias=True, kappa=kappa)
        swept.append(root / f"kappa{kappa}.nc")
        run = train_run(data, target, run_config(data_cfg, 0, kappa))
        atomic_write_netcdf(run, swept[-1])
    out["swept"] = root / "swept.nc"
    atomic_write_netcdf(collect_experiment(swept), out["swept"])
    return out


@pytest.mark.parametrize("kind", ["data", "target", "run", "collected", "swept"])
def test_compliance_checker_cf_1_11_finds_nothing(files, kind):
    assert cf_problems(files[kind]) == []
    with netCDF4.Dataset(files[kind]) as nc:
        assert nc.getncattr("title") and "minnorm" in nc.getncattr("history")
        if kind == "swept":
            assert nc.variables["model_kappa"].dimensions == ("model_kappa",)
        for dim in nc.dimensions:
            if dim in nc.variables:
                assert "_FillValue" not in nc.variables[dim].ncattrs(), (kind, dim)


def test_compliance_checker_reports_what_plain_xarray_writes(tmp_path):
    """The check can fail: xarray's own writer gives a float coordinate a _FillValue, and a file
    without title and history draws warnings."""
    ds = xr.Dataset(
        {"v": ("lr", np.arange(2.0), {"long_name": "v", "units": "1"})},
        coords={"lr": ("lr", [0.1, 0.2], {"long_name": "learning rate", "units": "1"})},
        attrs={"Conventions": "CF-1.11"},
    )
    ds.to_netcdf(tmp_path / "plain.nc")
    problems = cf_problems(tmp_path / "plain.nc")
    assert any("'lr' must not have the _FillValue" in p for p in problems), problems
    assert any("title" in p for p in problems) and any("history" in p for p in problems)
    atomic_write_netcdf(ds, tmp_path / "minnorm.nc")
    assert cf_problems(tmp_path / "minnorm.nc") == []


@pytest.mark.parametrize("kind", ["data", "target", "run", "collected", "swept"])
def test_conventions_units_and_flags(files, kind):
    with netCDF4.Dataset(files[kind]) as nc:
        assert nc.getncattr("Conventions") == "CF-1.11"
        for name, var in nc.variables.items():
            attrs = {key: var.getncattr(key) for key in var.ncattrs()}
            assert attrs.get("long_name"), (kind, name)
            if name in FLAGS:
                assert "units" not in attrs, (kind, name)
                values = np.atleast_1d(attrs["flag_values"])
                assert values.dtype == var.dtype, (kind, name)  # CF: the variable's own type
                np.testing.assert_array_equal(values, range(len(FLAGS[name].split())))
                assert attrs["flag_meanings"] == FLAGS[name]
                assert len(attrs["flag_meanings"].split()) == len(values)
            else:
                assert attrs.get("units") in UDUNITS_USED, (kind, name, attrs.get("units"))


@pytest.mark.parametrize(
    ("kind", "dims"),
    [
        ("target", {"eig"}),
        ("run", {"step", "eig"}),
        ("collected", {"step", "eig", "width", "seed", "label_noise", "lr"}),
    ],
)
def test_meaningful_dimensions_have_coordinates(files, kind, dims):
    with netCDF4.Dataset(files[kind]) as nc:
        for dim in dims:
            assert dim in nc.variables and nc.variables[dim].dimensions == (dim,), (kind, dim)
        if "eig" in dims:
            eig = nc.variables["eig"]
            np.testing.assert_array_equal(eig[:], np.arange(len(nc.dimensions["eig"])))
            assert "largest" in eig.getncattr("long_name")
            # The spectrum is stored in descending order, as the coordinate says.
            spectrum = np.asarray(nc.variables["H_eigenvalues"][:]).reshape(
                -1, len(nc.dimensions["eig"])
            )
            assert np.all(np.diff(spectrum, axis=1) <= 0)


def test_run_file_keeps_its_variable_names(files):
    with netCDF4.Dataset(files["run"]) as nc:
        names = set(nc.variables)
    expected = {
        "train_loss",
        "dist_to_target",
        "dist_to_target_range",
        "dist_to_target_perp",
        "dist_from_init",
        "activation_flip_fraction",
        "test_loss",
        "test_error",
        "test_l1",
        "gap_linearized",
        "gap_kernel",
        "lambda_min_G",
        "lambda_min_H",
        "cond_G",
        "yGy",
        "yHy",
        "arora_bound",
        "target_norm",
        "used_pinv",
        "H_eigenvalues",
        "y_projections",
        "wall_time_s",
        "diverged",
        "diverged_step",
        "diverged_reason",
        "final_step",
        "step",
        "eig",
        "width",
        "seed",
        "label_noise",
        "lr",
    }
    assert names == expected
