"""The netCDF outputs (data, target, run, collected files) follow the CF conventions where they
apply.

Read back with netCDF4 itself (no xarray decoding): global `Conventions`, a `long_name` on every
variable, UDUNITS units ("1" for dimensionless numbers, "s" for the wall time) and never the
non-units "step"/"neurons", flag attributes instead of units on the 0/1 flags, and coordinate
variables on the dimensions whose index means something (`step`, `eig`, the swept values).
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest

from helpers.training import run_config
from minnorm.analysis.collect import collect_experiment
from minnorm.data.datasets import make_dataset, save_dataset
from minnorm.data.settings import DataSettings
from minnorm.data.target_file import build_target_dataset
from minnorm.io.files import atomic_write_netcdf
from minnorm.training.train import train_run

# Units the files use; both are UDUNITS-2 units ("1": dimensionless, "s": second).
UDUNITS_USED = {"1", "s"}
FLAGS = {"diverged": "not_diverged diverged", "used_pinv": "cholesky_solve pseudo_inverse"}


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
        cfg = run_config(
            data_cfg, width=16, seed=seed, lr=0.1, steps=10, every=5, log_points=0, experiment="cf"
        )
        atomic_write_netcdf(train_run(data, target, cfg), runs[-1])
    out["run"] = runs[0]
    atomic_write_netcdf(collect_experiment(runs), out["collected"])
    return out


@pytest.mark.parametrize("kind", ["data", "target", "run", "collected"])
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
                np.testing.assert_array_equal(values, [0, 1])
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
        "final_step",
        "step",
        "eig",
        "width",
        "seed",
        "label_noise",
        "lr",
    }
    assert names == expected
