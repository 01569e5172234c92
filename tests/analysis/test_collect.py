"""Tests for minnorm.analysis.collect on synthetic run files with known values."""

import json

import numpy as np
import pytest
import xarray as xr

from helpers.runs import synthetic_run, write_runs
from minnorm.analysis.collect import (
    CollectError,
    collect_experiment,
    diverged_runs,
    final_values,
    first_lr,
    initial_values,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    special = {
        (200, 1, 0.0, 0.01): {"diverge_at": 500, "truncate": True},
        (100, 0, 0.5, 0.01): {"diverge_at": 300},
    }
    return write_runs(
        root, widths=(100, 200), seeds=(0, 1), label_noises=(0.0, 0.5), special=special
    )


@pytest.fixture(scope="module")
def collected(runs):
    return collect_experiment(runs)


def test_dims_and_coords(collected):
    assert dict(collected.sizes) == {
        "width": 2,
        "seed": 2,
        "label_noise": 2,
        "lr": 1,
        "step": 11,
        "eig": 8,
    }
    np.testing.assert_array_equal(collected.width, [100, 200])
    np.testing.assert_array_equal(collected.seed, [0, 1])
    np.testing.assert_array_equal(collected.label_noise, [0.0, 0.5])
    np.testing.assert_array_equal(collected.lr, [0.01])
    np.testing.assert_array_equal(collected.step, np.arange(0, 1001, 100))
    assert collected.dist_to_target.dims == ("width", "seed", "label_noise", "lr", "step")
    assert collected.H_eigenvalues.dims == ("width", "seed", "label_noise", "lr", "eig")
    assert collected.yHy.dims == ("width", "seed", "label_noise", "lr")


def test_values_match_each_run(collected):
    ref = synthetic_run(200, 0, 0.5, 0.01)
    got = collected.sel(width=200, seed=0, label_noise=0.5, lr=0.01)
    for name in ("dist_to_target", "train_loss", "test_error", "y_projections"):
        np.testing.assert_array_equal(got[name].values, ref[name].values)
    assert got.yHy.item() == ref.yHy.item() == pytest.approx(8 * 0.55**2 / 2)
    assert got.dist_to_target.attrs == {"long_name": "||W - W*||", "units": "1"}


def test_diverged_runs_padded_with_nan(collected):
    short = collected.sel(width=200, seed=1, label_noise=0.0, lr=0.01)
    assert np.isfinite(short.train_loss.sel(step=slice(0, 500))).all()
    assert np.isnan(short.train_loss.sel(step=slice(600, None))).all()
    assert short.diverged.item() == 1 and short.diverged_step.item() == 500
    assert short.final_step.item() == 500
    # the complete grid keeps integer scalars as integers
    assert collected.diverged.dtype == np.int8
    found = diverged_runs(collected)
    assert sorted((r["width"], r["seed"], r["label_noise"], r["diverged_step"]) for r in found) == [
        (100, 0, 0.5, 300),
        (200, 1, 0.0, 500),
    ]


def test_attrs_keep_only_shared_part(collected):
    assert collected.attrs["experiment"] == "synth"
    assert collected.attrs["torch_version"] == "2.13.0"
    assert collected.attrs["n_runs"] == 8
    config = json.loads(collected.attrs["config"])
    assert config["data"]["n_train"] == 8 and config["model"] == {"bias": True, "kappa": 1.0}
    # swept values differ between runs, so they are not in the shared config; lr is shared here
    assert "width" not in config and "seed" not in config and "label_noise" not in config
    assert config["lr"] == 0.01 and config["training"]["lr"] == 0.01


def test_roundtrip_through_netcdf(collected, tmp_path):
    path = tmp_path / "synth.nc"
    collected.to_netcdf(path)
    back = xr.open_dataset(path)
    xr.testing.assert_identical(back.load(), collected)
    back.close()


def test_final_and_initial_values(collected):
    final = final_values(collected.train_loss)
    assert final.dims == ("width", "seed", "label_noise", "lr")
    # the truncated run ends at step 500: loss = 1e-4 + (1 - 1e-4) exp(-2 * 500 / 100)
    assert final.sel(width=200, seed=1, label_noise=0.0).item() == pytest.approx(
        1e-4 + (1 - 1e-4) * np.exp(-10.0)
    )
    assert (initial_values(collected.train_loss) == 1.0).all()


def test_first_lr_selects_smallest(tmp_path):
    paths = write_runs(tmp_path, widths=(100,), seeds=(0,), lrs=(0.02, 0.01))
    ds = collect_experiment(paths)
    assert first_lr(ds).lr.item() == 0.01


def test_missing_run_fills_nan_and_floats_ints(tmp_path):
    paths = write_runs(tmp_path, widths=(100, 200), seeds=(0, 1))
    ds = collect_experiment(paths[:-1])  # drop (200, 1)
    assert np.isnan(ds.diverged.sel(width=200, seed=1)).all()
    assert ds.diverged.sel(width=100, seed=0).item() == 0


def test_duplicate_run_names_both_files(tmp_path):
    paths = write_runs(tmp_path, widths=(100,), seeds=(0,))
    copy = tmp_path / "copy.nc"
    copy.write_bytes(paths[0].read_bytes())
    with pytest.raises(CollectError, match=r"copy\.nc: duplicate run .*'width': 100"):
        collect_experiment([paths[0], copy])


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "broken.nc"
    bad.write_bytes(b"not a netcdf file")
    with pytest.raises(CollectError, match="broken.nc"):
        collect_experiment([bad])


def test_file_without_swept_coord_is_named(tmp_path):
    path = tmp_path / "nolr.nc"
    synthetic_run(100, 0).drop_vars("lr").to_netcdf(path)
    with pytest.raises(CollectError, match=r"nolr\.nc: lacks the scalar coordinate 'lr'"):
        collect_experiment([path])


def test_eig_length_mismatch_is_named(tmp_path):
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    synthetic_run(100, 0).to_netcdf(a)
    synthetic_run(100, 1, n_train=9).to_netcdf(b)
    with pytest.raises(CollectError, match=r"b\.nc: dimension 'eig' has length 9"):
        collect_experiment([a, b])


def test_no_files_is_an_error():
    with pytest.raises(CollectError, match="no run files"):
        collect_experiment([])
