"""Tests for minnorm.data.datasets: generated data sets, label noise, dispatch and the netCDF data
file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.datasets import load_digits

from minnorm.core.seeding import make_generator
from minnorm.data.datasets import (
    DataFileError,
    Dataset,
    apply_label_noise,
    digits,
    load_dataset,
    make_dataset,
    save_dataset,
    sphere_quadratic,
)
from minnorm.data.settings import DataSettings

# float64 row scaling and standardisation are exact to a few ulps; 1e-12 leaves ample room.
EXACT_TOL = 1e-12

SPHERE_CFG = {"name": "sphere_quadratic", "n_train": 50, "n_test": 30, "dim": 5, "seed": 3}
DIGITS_CFG = {"name": "digits", "n_train": 100, "n_test": 60, "classes": [3, 8], "seed": 1}


def test_sphere_quadratic_shapes_norms_and_standardisation() -> None:
    ds = sphere_quadratic(100, 200, 5, data_seed=0)
    assert ds.X_train.shape == (100, 5) and ds.X_test.shape == (200, 5)
    assert ds.y_train.shape == (100,) and ds.y_test.shape == (200,)
    assert all(t.dtype == torch.float64 for t in (ds.X_train, ds.y_train, ds.X_test, ds.y_test))
    np.testing.assert_allclose(ds.X_train.norm(dim=1).numpy(), 1.0, rtol=0, atol=EXACT_TOL)
    np.testing.assert_allclose(ds.X_test.norm(dim=1).numpy(), 1.0, rtol=0, atol=EXACT_TOL)
    y = ds.y_train.numpy()
    assert abs(y.mean()) < EXACT_TOL
    assert abs(y.std(ddof=0) - 1.0) < EXACT_TOL
    assert ds.meta["pm1_labels"] is False and ds.meta["name"] == "sphere_quadratic"


def test_sphere_quadratic_labels_follow_beta_and_train_statistics() -> None:
    ds = sphere_quadratic(40, 500, 4, data_seed=7)
    beta = np.asarray(ds.meta["beta"])
    assert beta.shape == (4,) and np.all(np.abs(beta) <= 1)
    raw_train = (ds.X_train.numpy() @ beta) ** 2
    raw_test = (ds.X_test.numpy() @ beta) ** 2
    mean, std = raw_train.mean(), raw_train.std(ddof=0)
    assert ds.meta["y_mean"] == pytest.approx(mean, abs=EXACT_TOL)
    assert ds.meta["y_std"] == pytest.approx(std, abs=EXACT_TOL)
    np.testing.assert_allclose(ds.y_train.numpy(), (raw_train - mean) / std, rtol=0, atol=EXACT_TOL)
    np.testing.assert_allclose(ds.y_test.numpy(), (raw_test - mean) / std, rtol=0, atol=EXACT_TOL)
    # The test labels were not standardised with their own statistics.
    own = (raw_test - raw_test.mean()) / raw_test.std(ddof=0)
    assert np.abs(ds.y_test.numpy() - own).max() > 1e-3


def test_sphere_quadratic_draw_order_from_data_generator() -> None:
    # Documented order from make_generator("data", seed): beta, train points, test points.
    gen = make_generator("data", 5)
    beta = torch.rand(3, generator=gen, dtype=torch.float64) * 2 - 1
    train = torch.rand(10, 3, generator=gen, dtype=torch.float64) * 2 - 1
    test = torch.rand(6, 3, generator=gen, dtype=torch.float64) * 2 - 1
    ds = sphere_quadratic(10, 6, 3, data_seed=5)
    np.testing.assert_array_equal(np.asarray(ds.meta["beta"]), beta.numpy())
    torch.testing.assert_close(
        ds.X_train, train / train.norm(dim=1, keepdim=True), rtol=0, atol=EXACT_TOL
    )
    torch.testing.assert_close(
        ds.X_test, test / test.norm(dim=1, keepdim=True), rtol=0, atol=EXACT_TOL
    )
    # More test points leave the train set unchanged (train is drawn first).
    bigger = sphere_quadratic(10, 60, 3, data_seed=5)
    assert torch.equal(bigger.X_train, ds.X_train) and torch.equal(bigger.y_train, ds.y_train)


def test_generated_sets_deterministic_and_seed_dependent() -> None:
    a, b, c = (
        make_dataset(DataSettings.from_mapping(SPHERE_CFG), label_noise=0.0, seed=s)
        for s in (0, 0, 1)
    )
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    # The run seed only drives label noise: sphere data depend on data.seed alone.
    assert torch.equal(a.X_train, c.X_train)
    other = make_dataset(
        DataSettings.from_mapping({**SPHERE_CFG, "seed": 4}), label_noise=0.0, seed=0
    )
    assert not torch.allclose(a.X_train, other.X_train)
    d1 = digits([0, 1], 50, 50, data_seed=0)
    d2 = digits([0, 1], 50, 50, data_seed=0)
    d3 = digits([0, 1], 50, 50, data_seed=1)
    assert torch.equal(d1.X_train, d2.X_train) and torch.equal(d1.y_test, d2.y_test)
    assert not torch.equal(d1.X_train, d3.X_train)


def _digit_lookup() -> dict[bytes, int]:
    """Map each unit-normalised digit image (as bytes after rounding) to its class."""
    images, labels = load_digits(return_X_y=True)
    unit = images / np.linalg.norm(images, axis=1, keepdims=True)
    return {
        np.round(row, 12).tobytes(): int(label) for row, label in zip(unit, labels, strict=True)
    }


def test_digits_labels_classes_and_split() -> None:
    ds = digits([3, 8], 150, 100, data_seed=2)
    assert ds.X_train.shape == (150, 64) and ds.X_test.shape == (100, 64)
    np.testing.assert_allclose(ds.X_train.norm(dim=1).numpy(), 1.0, rtol=0, atol=EXACT_TOL)
    lookup = _digit_lookup()
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        classes = [lookup[np.round(row, 12).tobytes()] for row in X.numpy()]
        expected = np.where(np.asarray(classes) == 3, 1.0, -1.0)
        assert set(classes) == {3, 8}
        np.testing.assert_array_equal(y.numpy(), expected)
    # The 357 bundled 3s and 8s are pairwise distinct, so disjoint draws share no row.
    rows = {r.tobytes() for r in np.round(ds.X_train.numpy(), 12)}
    assert len(rows) == 150
    assert not any(r.tobytes() in rows for r in np.round(ds.X_test.numpy(), 12))
    assert ds.meta["classes"] == [3, 8] and ds.meta["pm1_labels"] is True


def test_digits_too_many_requested_names_key_and_count() -> None:
    # load_digits holds 178 zeros and 182 ones: 360 examples of classes 0 and 1.
    with pytest.raises(ValueError, match=r"data\.n_test.*360"):
        digits([0, 1], 300, 61, data_seed=0)
    with pytest.raises(ValueError, match=r"data\.n_train.*360"):
        digits([0, 1], 361, 1, data_seed=0)
    digits([0, 1], 300, 60, data_seed=0)  # exactly all of them is fine
    with pytest.raises(ValueError, match=r"data\.classes"):
        digits([2, 2], 10, 10, data_seed=0)
    with pytest.raises(ValueError, match=r"data\.classes"):
        digits([0, 10], 10, 10, data_seed=0)


@pytest.mark.parametrize(
    ("fraction", "n", "expected"),
    [(0.0, 10, 0), (0.2, 10, 2), (0.25, 10, 2), (0.35, 10, 4), (1.0, 7, 7), (0.5, 101, 50)],
)
def test_apply_label_noise_exact_count(fraction: float, n: int, expected: int) -> None:
    y = torch.ones(n, dtype=torch.float64)
    noisy, n_replaced = apply_label_noise(y, fraction, make_generator("t", n))
    assert n_replaced == expected == round(fraction * n)
    assert noisy.dtype == torch.float64
    assert set(noisy.tolist()) <= {-1.0, 1.0}
    # Only replaced positions can change, and a replaced +1 stays +1 with probability 1/2.
    assert int((noisy != y).sum()) <= n_replaced
    assert torch.equal(y, torch.ones(n, dtype=torch.float64))  # input untouched


def test_apply_label_noise_positions_uniform_and_half_flipped() -> None:
    # n = 10, 3 replaced: each position is replaced w.p. 0.3 and then flipped w.p. 0.5.
    n, trials = 10, 4000
    y = torch.tensor([1.0, -1.0] * 5, dtype=torch.float64)
    changed = np.zeros(n)
    for t in range(trials):
        noisy, k = apply_label_noise(y, 0.3, make_generator("noise-test", t))
        diff = (noisy != y).numpy()
        assert k == 3 and diff.sum() <= 3
        changed += diff
    rate = changed / trials
    # Binomial(4000, 0.15) per position: std of the rate ~0.0056; 5 sigma ~ 0.028.
    np.testing.assert_allclose(rate, 0.15, atol=0.028)


def test_apply_label_noise_rejects_bad_input() -> None:
    gen = make_generator("x", 0)
    with pytest.raises(ValueError, match=r"\+-1"):
        apply_label_noise(torch.tensor([1.0, 0.5], dtype=torch.float64), 0.5, gen)
    with pytest.raises(ValueError, match="label_noise"):
        apply_label_noise(torch.ones(4, dtype=torch.float64), 1.5, gen)


def test_make_dataset_label_noise_train_and_test() -> None:
    clean = make_dataset(DataSettings.from_mapping(DIGITS_CFG), label_noise=0.0, seed=0)
    noisy = make_dataset(DataSettings.from_mapping(DIGITS_CFG), label_noise=0.3, seed=0)
    assert noisy.meta["n_replaced_train"] == 30 and noisy.meta["n_replaced_test"] == 18
    assert clean.meta["n_replaced_train"] == 0 and noisy.meta["label_noise"] == 0.3
    assert torch.equal(clean.X_train, noisy.X_train) and torch.equal(clean.X_test, noisy.X_test)
    assert 0 < int((clean.y_train != noisy.y_train).sum()) <= 30
    assert 0 < int((clean.y_test != noisy.y_test).sum()) <= 18
    # Same (data.seed, seed): same noise; another run seed: other noise on the same points.
    again = make_dataset(DataSettings.from_mapping(DIGITS_CFG), label_noise=0.3, seed=0)
    other = make_dataset(DataSettings.from_mapping(DIGITS_CFG), label_noise=0.3, seed=1)
    assert torch.equal(again.y_train, noisy.y_train) and torch.equal(again.y_test, noisy.y_test)
    assert torch.equal(other.X_train, noisy.X_train)
    assert not torch.equal(other.y_train, noisy.y_train)
    # Reference: the documented generator, train first then test.
    gen = make_generator("label_noise", DIGITS_CFG["seed"], 0)
    ref_train, _ = apply_label_noise(clean.y_train, 0.3, gen)
    ref_test, _ = apply_label_noise(clean.y_test, 0.3, gen)
    assert torch.equal(ref_train, noisy.y_train) and torch.equal(ref_test, noisy.y_test)


def test_make_dataset_errors() -> None:
    with pytest.raises(
        ValueError, match=r"data\.name.*sphere_quadratic.*digits.*mnist.*cifar10.*'imagenet'"
    ):
        make_dataset(
            DataSettings.from_mapping({**DIGITS_CFG, "name": "imagenet"}), label_noise=0.0, seed=0
        )
    with pytest.raises(ValueError, match="sphere_quadratic"):
        make_dataset(DataSettings.from_mapping(SPHERE_CFG), label_noise=0.1, seed=0)
    with pytest.raises(ValueError, match="label_noise"):
        make_dataset(DataSettings.from_mapping(DIGITS_CFG), label_noise=-0.1, seed=0)
    with pytest.raises(ValueError, match=r"data\.path"):
        make_dataset(
            DataSettings.from_mapping({**DIGITS_CFG, "name": "mnist", "path": None}),
            label_noise=0.0,
            seed=0,
        )
    with pytest.raises(ValueError, match=r"data\.dim"):
        make_dataset(
            DataSettings.from_mapping({k: v for k, v in SPHERE_CFG.items() if k != "dim"}),
            label_noise=0.0,
            seed=0,
        )
    with pytest.raises(ValueError, match=r"data\.n_train"):
        make_dataset(
            DataSettings.from_mapping({**SPHERE_CFG, "n_train": 0}), label_noise=0.0, seed=0
        )
    with pytest.raises(ValueError, match=r"data\.seed"):
        make_dataset(DataSettings.from_mapping({**SPHERE_CFG, "seed": -1}), label_noise=0.0, seed=0)
    with pytest.raises(ValueError, match=r"^seed"):
        make_dataset(DataSettings.from_mapping(DIGITS_CFG), label_noise=0.1, seed=1.5)  # type: ignore[arg-type]


def test_save_load_round_trip_exact(tmp_path: Path) -> None:
    ds = make_dataset(DataSettings.from_mapping(DIGITS_CFG), label_noise=0.2, seed=4)
    path = tmp_path / "data" / "s4_p0.2.nc"
    save_dataset(ds, path)
    back = load_dataset(path)
    for name in ("X_train", "y_train", "X_test", "y_test"):
        assert torch.equal(getattr(back, name), getattr(ds, name))
    assert back.meta == ds.meta
    with xr.open_dataset(path) as raw:
        assert raw.attrs["dataset"] == "digits" and raw.attrs["pm1_labels"] == 1
        assert raw.attrs["seed"] == 4 and raw.attrs["label_noise"] == 0.2
        assert raw["X_train"].dims == ("train", "feature") and raw["y_test"].dims == ("test",)
    sphere = sphere_quadratic(20, 10, 3, data_seed=0)
    save_dataset(sphere, tmp_path / "sphere.nc")
    assert load_dataset(tmp_path / "sphere.nc").meta == sphere.meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "sphere.nc"]


def test_load_dataset_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.nc"
    with pytest.raises(DataFileError, match="nope.nc"):
        load_dataset(missing)
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"not a netcdf file at all")
    with pytest.raises(DataFileError, match="garbage.nc"):
        load_dataset(garbage)
    partial = tmp_path / "partial.nc"
    xr.Dataset({"X_train": (("train", "feature"), np.ones((2, 3)))}).to_netcdf(partial)
    with pytest.raises(DataFileError, match="partial.nc.*y_train"):
        load_dataset(partial)


def test_save_dataset_failure_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: xr.Dataset, target: Path, **kwargs: object) -> None:
        Path(target).write_bytes(b"half")
        raise OSError("quota exceeded")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="quota"):
        save_dataset(sphere_quadratic(5, 5, 2, data_seed=0), tmp_path / "d.nc")
    assert list(tmp_path.iterdir()) == []
    assert not os.path.exists(tmp_path / "d.nc")


def test_dataset_rejects_wrong_dtype_and_shapes() -> None:
    X = torch.zeros(3, 2, dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="X_train"):
        Dataset(X.float(), y, X, y, {})
    with pytest.raises(ValueError, match="y_train"):
        Dataset(X, y[:2], X, y, {})


# ---- the data-set registry (minnorm.data.registry) ----

from minnorm.data.registry import DATASETS, DatasetSpec  # noqa: E402

W = "experiments.e.data"


def _block(name: str, **keys) -> DataSettings:
    """Data settings of `name` with small default sizes, `keys` written over them."""
    return DataSettings.from_mapping({"name": name, "n_train": 3, "n_test": 3, "seed": 0, **keys})


def test_digits_counts_match_sklearn() -> None:
    counts = np.bincount(load_digits().target)
    assert DATASETS["digits"].counts == {"all": tuple(int(c) for c in counts)}
    assert DATASETS["digits"].size(_block("digits", classes=[3, 8])) == {
        "total": int(counts[3] + counts[8])
    }


def test_sizes_of_image_files_follow_the_chosen_classes() -> None:
    assert DATASETS["mnist"].size(_block("mnist", classes=[0, 1])) == {
        "train": 5923 + 6742,
        "test": 980 + 1135,
    }
    assert sum(DATASETS["mnist"].counts["train"]) == 60000
    assert sum(DATASETS["mnist"].counts["test"]) == 10000
    assert DATASETS["cifar10"].size(_block("cifar10", classes=[2, 9])) == {
        "train": 10000,
        "test": 2000,
    }
    assert DATASETS["sphere_quadratic"].size(DataSettings.from_mapping(SPHERE_CFG)) is None
    assert DATASETS["digits"].size(_block("digits", classes=[3, 3])) is None  # invalid pair


def test_registry_attributes() -> None:
    assert [n for n, s in DATASETS.items() if s.pm1_labels] == ["digits", "mnist", "cifar10"]
    assert [n for n, s in DATASETS.items() if s.needs_path] == ["mnist", "cifar10"]
    dims = {n: s.input_dim(_block(n, dim=7)) for n, s in DATASETS.items()}
    assert dims == {"sphere_quadratic": 7, "digits": 64, "mnist": 784, "cifar10": 3072}
    for name, spec in DATASETS.items():
        assert spec.name == name and callable(spec.builder)


@pytest.mark.parametrize(
    ("name", "cfg", "expected"),
    [
        ("sphere_quadratic", {"dim": 1, "n_train": 10, "n_test": 5}, f"{W}.dim: 1 is out of range"),
        (
            "sphere_quadratic",
            {"dim": 3, "n_train": 1, "n_test": 5},
            f"{W}.n_train: 1 is out of range",
        ),
        (
            "sphere_quadratic",
            {"n_train": 10, "n_test": 5},
            f"{W}.dim: required for sphere_quadratic",
        ),
        (
            "sphere_quadratic",
            {"dim": 3, "classes": [0, 1], "n_train": 10, "n_test": 5},
            f"{W}.classes: only for digits, mnist, cifar10",
        ),
        (
            "digits",
            {"classes": [3, 8], "n_train": 300, "n_test": 100},
            f"{W}.n_train: n_train + n_test = 400 exceeds the 357 examples of classes [3, 8]",
        ),
        ("digits", {"classes": [3, 10], "n_train": 3, "n_test": 3}, f"{W}.classes[1]: class 10"),
        (
            "digits",
            {"classes": [3, 8], "dim": 4, "n_train": 3, "n_test": 3},
            f"{W}.dim: only for sphere_quadratic (digits has d=64)",
        ),
        (
            "digits",
            {"classes": [3, 8], "path": "x", "n_train": 3, "n_test": 3},
            f"{W}.path: only for mnist, cifar10",
        ),
        ("mnist", {"classes": [0, 1], "path": "", "n_train": 3, "n_test": 3}, f"{W}.path: empty"),
        (
            "mnist",
            {"classes": [0, 1], "path": ".", "n_train": 3, "n_test": 2500},
            f"{W}.n_test: 2500 exceeds the 2115 test examples of classes [0, 1] in mnist",
        ),
    ],
)
def test_problems_name_the_key(name: str, cfg: dict, expected: str, tmp_path: Path) -> None:
    if cfg.get("path") == ".":  # a folder holding (empty stand-ins of) the data set's files
        cfg = {**cfg, "path": str(_with_files(name, tmp_path))}
    problems = DATASETS[name].problems(W, _block(name, **cfg))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def _with_files(name: str, folder: Path) -> Path:
    """`folder` with an empty file at each path the data set's reader opens there."""
    for path in DATASETS[name].files(_block(name, classes=[0, 1], path=str(folder))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return folder


def test_valid_blocks_have_no_problems(tmp_path: Path) -> None:
    assert DATASETS["sphere_quadratic"].problems(W, DataSettings.from_mapping(SPHERE_CFG)) == []
    assert DATASETS["digits"].problems(W, DataSettings.from_mapping(DIGITS_CFG)) == []
    folder = str(_with_files("cifar10", tmp_path))
    cifar = _block("cifar10", classes=[0, 1], path=folder, n_train=10000, n_test=2000)
    assert DATASETS["cifar10"].problems(W, cifar) == []
    # The same folder without its files: refused naming data.path and each missing file.
    (problem,) = DATASETS["mnist"].problems(W, _block("mnist", classes=[0, 1], path=folder))
    assert problem.startswith(f"{W}.path: folder {folder!r} holds none of the 4 mnist files")
    assert "train-images-idx3-ubyte" in problem and "t10k-labels-idx1-ubyte" in problem


def test_make_dataset_dispatches_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    def line(settings):
        x = torch.linspace(-1, 1, settings.n_train + settings.n_test, dtype=torch.float64)[:, None]
        X = torch.cat([x, torch.ones_like(x)], dim=1)
        y = torch.where(x[:, 0] > 0, 1.0, -1.0).to(torch.float64)
        n = settings.n_train
        return Dataset(X[:n], y[:n], X[n:], y[n:], {"name": "line", "pm1_labels": True})

    monkeypatch.setitem(DATASETS, "line", DatasetSpec("line", line, "toy", classes=range(2), dim=2))
    ds = make_dataset(
        DataSettings.from_mapping({"name": "line", "n_train": 4, "n_test": 3, "seed": 0}),
        label_noise=1.0,
        seed=0,
    )
    assert ds.X_train.shape == (4, 2) and ds.X_test.shape == (3, 2)
    assert ds.meta["n_replaced_train"] == 4 and ds.meta["label_noise"] == 1.0
