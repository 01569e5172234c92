import math

import numpy as np
import pytest
import torch
import xarray as xr

from minnorm.core.model import augment_inputs, init_weights
from minnorm.data.datasets import sphere_quadratic
from minnorm.data.target_file import TARGET_VARIABLES, build_target_dataset, load_target

EXPECTED_VARIABLES = {
    "W0",
    "a",
    "W_star",
    "a_star",
    "G",
    "H",
    "H_test",
    "H_eigenvalues",
    "y_projections",
    "lambda_min_G",
    "lambda_min_H",
    "cond_G",
    "yGy",
    "yHy",
    "arora_bound",
    "target_norm",
    "used_pinv",
}


def small_data(seed: int = 0):
    return sphere_quadratic(15, 4, 3, data_seed=seed)


@pytest.mark.parametrize("bias", [True, False])
def test_target_dataset_contents(bias):
    data = small_data()
    ds = build_target_dataset(data, width=64, seed=1, bias=bias, kappa=0.5)
    assert set(ds.data_vars) == EXPECTED_VARIABLES == set(TARGET_VARIABLES)
    assert ds.attrs == {
        "bias": int(bias),
        "kappa": 0.5,
        "width": 64,
        "seed": 1,
        "activation": "relu",
        "leak": 0.0,
        "train_output": 0,
        "Conventions": "CF-1.11",
    }
    for name, var in ds.data_vars.items():
        assert var.attrs["long_name"] and (
            var.attrs.get("units") == "1" or "flag_values" in var.attrs
        ), name
        assert var.dtype == (np.int8 if name == "used_pinv" else np.float64), name
    p = 3 + int(bias)
    assert (
        ds["W0"].shape == (64, p)
        and ds["G"].shape == (15, 15)
        and ds["H_eigenvalues"].shape == (15,)
    )
    W0, a = init_weights(64, p, 0.5, seed=1)
    np.testing.assert_array_equal(ds["W0"].values, W0.numpy())
    np.testing.assert_array_equal(ds["a"].values, a.numpy())
    # Theory numbers against numpy on the stored matrices.
    y = data.y_train.numpy()
    G, H = ds["G"].values, ds["H"].values
    assert float(ds.yHy) == pytest.approx(y @ np.linalg.solve(H, y), rel=1e-9)
    assert float(ds.arora_bound) == pytest.approx(math.sqrt(2 * float(ds.yHy) / 15), rel=1e-12)
    assert float(ds.lambda_min_G) == pytest.approx(np.linalg.eigvalsh(G)[0], rel=1e-9)
    assert float(ds.lambda_min_H) == pytest.approx(np.linalg.eigvalsh(H)[0], rel=1e-9)
    np.testing.assert_allclose(
        ds["H_eigenvalues"].values, np.linalg.eigvalsh(H)[::-1], rtol=1e-10, atol=1e-14
    )
    assert float(ds.target_norm) ** 2 == pytest.approx(float(ds.yGy), rel=1e-10)
    assert float(ds.target_norm) == pytest.approx(
        np.linalg.norm(ds["W_star"].values - ds["W0"].values), rel=1e-12
    )
    assert int(ds.used_pinv) == 0


def test_load_target_round_trip_through_netcdf(tmp_path):
    data = small_data()
    ds = build_target_dataset(data, width=50, seed=2, bias=True, kappa=1.0)
    path = tmp_path / "target.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as reread:
        target = load_target(reread, data)
    np.testing.assert_array_equal(target.W_star.numpy(), ds["W_star"].values)
    fitted = target.linearized_predict(augment_inputs(data.X_train, True), target.W_star)
    torch.testing.assert_close(fitted, data.y_train, rtol=0, atol=1e-8)


def test_load_target_rejects_mismatched_inputs():
    data = small_data()
    ds = build_target_dataset(data, width=40, seed=0, bias=True, kappa=1.0)
    with pytest.raises(ValueError, match="W_star"):
        load_target(ds, small_data(seed=1))  # same shapes, different points and labels
    edited = ds.copy(deep=True)
    edited["W0"].values[0, 0] += 0.5
    with pytest.raises(ValueError, match="W_star"):
        load_target(edited, data)
    with pytest.raises(ValueError, match="yHy"):
        load_target(ds.drop_vars("yHy"), data)
    with pytest.raises(ValueError, match="weight_dim"):
        load_target(ds.assign_attrs(bias=0), data)
    with pytest.raises(ValueError, match="train points"):
        load_target(ds, sphere_quadratic(10, 4, 3, data_seed=0))


@pytest.mark.parametrize(("activation", "trained"), [("tanh", True), ("leaky_relu", False)])
def test_family_target_file_holds_theta_star_and_the_limit_kernels(activation, trained):
    from minnorm.core.activations import get_activation
    from minnorm.core.family_target import FamilyTarget, family_min_norm_target
    from minnorm.core.limit_kernels import limit_kernel

    data = small_data()
    ds = build_target_dataset(
        data, width=64, seed=1, bias=True, kappa=0.5, activation=activation, leak=0.2,
        train_output=trained,
    )  # fmt: skip
    assert ds.attrs["activation"] == activation and ds.attrs["train_output"] == int(trained)
    assert ds.attrs["leak"] == (0.2 if activation == "leaky_relu" else 0.0)
    act = get_activation(activation, leak=0.2)
    Xt = augment_inputs(data.X_train.to(torch.float64), True)
    Xt_test = augment_inputs(data.X_test.to(torch.float64), True)
    W0, a = init_weights(64, 4, 0.5, seed=1)
    target = family_min_norm_target(Xt, data.y_train, W0, a, act, train_output=trained)
    np.testing.assert_array_equal(ds["W_star"].values, target.W_star.numpy())
    a_star = ds["a_star"].values
    if trained:
        assert target.a_star is not None
        np.testing.assert_array_equal(a_star, target.a_star.numpy())
        assert not np.array_equal(a_star, a.numpy())
    else:
        np.testing.assert_array_equal(a_star, a.numpy())
    H = limit_kernel(Xt, None, act, kappa=0.5, train_output=trained)
    H_test = limit_kernel(Xt_test, Xt, act, kappa=0.5, train_output=trained)
    np.testing.assert_array_equal(ds["H"].values, H.numpy())
    np.testing.assert_array_equal(ds["H_test"].values, H_test.numpy())
    assert math.isnan(float(ds["arora_bound"]))
    assert float(ds["target_norm"]) ** 2 == pytest.approx(float(ds["yGy"]), rel=1e-9)
    loaded = load_target(ds, data)
    assert isinstance(loaded, FamilyTarget) and loaded.train_output == trained
    edited = ds.copy(deep=True)
    edited["a_star"].values[0] += 1.0
    if trained:
        with pytest.raises(ValueError, match="a_star recomputed"):
            load_target(edited, data)


def test_the_papers_network_target_is_unchanged_by_the_family_settings():
    data = small_data()
    plain = build_target_dataset(data, width=32, seed=2, bias=True, kappa=0.5)
    leaky_name = build_target_dataset(
        data, width=32, seed=2, bias=True, kappa=0.5, activation="relu", leak=0.3
    )
    for name in TARGET_VARIABLES:
        np.testing.assert_array_equal(plain[name].values, leaky_name[name].values)
    assert float(plain["arora_bound"]) > 0
