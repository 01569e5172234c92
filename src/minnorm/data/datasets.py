"""The experiments' data sets (train/test tensors plus metadata) and their netCDF data files."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from minnorm.core.seeding import make_generator
from minnorm.data.image_files import DataFileError, read_cifar10, read_mnist
from minnorm.data.registry import DATASETS
from minnorm.data.settings import DataSettings
from minnorm.io.files import CF_CONVENTIONS, atomic_write_netcdf

__all__ = [
    "DataFileError",
    "Dataset",
    "apply_label_noise",
    "cifar10",
    "digits",
    "load_dataset",
    "make_dataset",
    "mnist",
    "save_dataset",
    "sphere_quadratic",
]

_VARIABLES = {
    "X_train": ("train", "feature"),
    "y_train": ("train",),
    "X_test": ("test", "feature"),
    "y_test": ("test",),
}
# CF long_name of each variable of a data file (all dimensionless).
_LONG_NAMES = {
    "X_train": "training inputs",
    "y_train": "training labels",
    "X_test": "test inputs",
    "y_test": "test labels",
}


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test data as float64 tensors.

    X_train: (n, d), y_train: (n,), X_test: (k, d), y_test: (k,). `meta` holds JSON-compatible
    values: name, data_seed, seed (run seed of the label noise, None without), label_noise,
    pm1_labels, n_replaced_train, n_replaced_test, and per-data-set extras (beta, y_mean, ...).
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        for name in _VARIABLES:
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or value.dtype != torch.float64:
                raise ValueError(f"Dataset.{name} must be a float64 torch tensor")
        if (
            self.X_train.ndim != 2
            or self.X_test.ndim != 2
            or self.X_train.shape[1] != self.X_test.shape[1]
        ):
            raise ValueError(
                f"X_train {tuple(self.X_train.shape)} and X_test {tuple(self.X_test.shape)} "
                "must be (n, d) and (k, d)"
            )
        if (
            self.y_train.shape != self.X_train.shape[:1]
            or self.y_test.shape != self.X_test.shape[:1]
        ):
            raise ValueError("y_train/y_test must have one label per row of X_train/X_test")


def _unit_rows(X: torch.Tensor, source: str, error: type[ValueError] = ValueError) -> torch.Tensor:
    """Scale each row of X: (N, d) to unit Euclidean norm; an all-zero row is an error."""
    norms = X.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        row = int(torch.nonzero(norms[:, 0] == 0)[0])
        raise error(
            f"{source} contains an all-zero input (selected row {row}) "
            "that cannot be scaled to unit norm"
        )
    return X / norms


def _check_count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    return int(value)


def _check_classes(classes: object, allowed: range | None) -> tuple[int, int]:
    """The two classes `data.classes` names, checked against the data set's `allowed` labels."""
    if allowed is None:
        raise ValueError("data.classes: this data set has no classes")
    message = (
        "data.classes must be two distinct class labels in "
        f"{allowed.start}..{allowed.stop - 1}, got {classes!r}"
    )
    if not (
        isinstance(classes, Sequence)
        and len(classes) == 2
        and all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c in allowed
            for c in classes
        )
    ):
        raise ValueError(message)
    first, second = classes
    if first == second:
        raise ValueError(message)
    return int(first), int(second)


def _base_meta(
    name: str, data_seed: int, n_train: int, n_test: int, dim: int, pm1: bool
) -> dict[str, Any]:
    return {
        "name": name,
        "data_seed": data_seed,
        "n_train": n_train,
        "n_test": n_test,
        "dim": dim,
        "pm1_labels": pm1,
        "label_noise": 0.0,
        "seed": None,
        "n_replaced_train": 0,
        "n_replaced_test": 0,
    }


# Label scalings of sphere_quadratic (`data.labels`): the paper says its labels are standardised
# (our reading); centred and raw labels are the alternatives its Figure 1 values suggest.
LABEL_SCALINGS: tuple[str, ...] = ("standardize", "center", "none")
# Distributions of the raw inputs of sphere_quadratic (`data.inputs`) before scaling to unit
# norm: uniform in the cube [-1, 1]^d (the paper), or standard Gaussian (uniform on the sphere).
INPUT_DISTRIBUTIONS: tuple[str, ...] = ("cube", "gaussian")


def sphere_quadratic(
    n_train: int,
    n_test: int,
    dim: int,
    *,
    data_seed: int,
    labels: str = "standardize",
    inputs: str = "cube",
) -> Dataset:
    """Satpathi & Srikant's Figure 1 data: unit-norm x, y = (x . beta)^2 standardised.

    From one generator `make_generator("data", data_seed)`, in this order: beta uniform in
    [-1, 1]^dim, the train points, then the test points (each uniform in [-1, 1]^dim, or standard
    Gaussian with `inputs="gaussian"`, then scaled to unit norm). Labels are standardised with
    the train mean and population std (ddof 0), which the test labels share; `labels="center"`
    only subtracts the train mean, `labels="none"` keeps (x . beta)^2. meta holds beta, y_mean,
    y_std, labels and inputs.
    """
    n_train, n_test = _check_count(n_train, "data.n_train"), _check_count(n_test, "data.n_test")
    dim = _check_count(dim, "data.dim")
    if labels not in LABEL_SCALINGS:
        raise ValueError(f"data.labels must be one of {list(LABEL_SCALINGS)}, got {labels!r}")
    if inputs not in INPUT_DISTRIBUTIONS:
        raise ValueError(f"data.inputs must be one of {list(INPUT_DISTRIBUTIONS)}, got {inputs!r}")
    if n_train < 2:
        raise ValueError(
            "data.n_train must be at least 2 to standardise the labels of sphere_quadratic"
        )
    if dim < 2:
        raise ValueError(
            "data.dim must be at least 2 for sphere_quadratic: with dim 1 every unit-norm x is "
            "+-1, so every label (x . beta)^2 is the same and cannot be standardised"
        )
    gen = make_generator("data", data_seed)
    beta = torch.rand(dim, generator=gen, dtype=torch.float64) * 2 - 1

    def points(n: int) -> torch.Tensor:
        if inputs == "gaussian":
            raw = torch.randn(n, dim, generator=gen, dtype=torch.float64)
        else:
            raw = torch.rand(n, dim, generator=gen, dtype=torch.float64) * 2 - 1
        return _unit_rows(raw, "sphere_quadratic")

    X_train = points(n_train)
    X_test = points(n_test)
    raw_train, raw_test = (X_train @ beta) ** 2, (X_test @ beta) ** 2
    y_mean, y_std = float(raw_train.mean()), float(raw_train.std(correction=0))
    if y_std == 0.0:
        raise ValueError(
            "sphere_quadratic train labels are constant; cannot standardise (increase data.n_train)"
        )
    shift = 0.0 if labels == "none" else y_mean
    scale = y_std if labels == "standardize" else 1.0
    meta = _base_meta("sphere_quadratic", data_seed, n_train, n_test, dim, pm1=False)
    meta.update(beta=beta.tolist(), y_mean=y_mean, y_std=y_std, labels=labels, inputs=inputs)
    return Dataset(X_train, (raw_train - shift) / scale, X_test, (raw_test - shift) / scale, meta)


def _pm1(labels: np.ndarray, positive: int) -> torch.Tensor:
    return torch.from_numpy(np.where(labels == positive, 1.0, -1.0))


def digits(classes: Sequence[int], n_train: int, n_test: int, *, data_seed: int) -> Dataset:
    """scikit-learn's bundled 8x8 digits, two classes (first -> +1, second -> -1), unit-norm rows.

    The examples of the two classes are shuffled with `make_generator("data", data_seed)`; the
    first n_train form the train set and the next n_test the test set. X: (n, 64).
    """
    positive, negative = _check_classes(classes, DATASETS["digits"].classes)
    n_train, n_test = _check_count(n_train, "data.n_train"), _check_count(n_test, "data.n_test")
    # Imported here: scikit-learn (and the SciPy it loads) take ~1-2 s to import, which every
    # training job would pay for a data set that only this generator reads.
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    pool = np.flatnonzero((labels == positive) | (labels == negative))
    if n_train + n_test > pool.size:
        key = "data.n_train" if n_train > pool.size else "data.n_test"
        raise ValueError(
            f"{key}: data.n_train + data.n_test = {n_train + n_test} exceeds the "
            f"{pool.size} digits "
            f"of classes {[positive, negative]}"
        )
    order = pool[torch.randperm(pool.size, generator=make_generator("data", data_seed)).numpy()]
    train, test = order[:n_train], order[n_train : n_train + n_test]
    X = torch.from_numpy(images.astype(np.float64))
    meta = _base_meta("digits", data_seed, n_train, n_test, X.shape[1], pm1=True)
    meta["classes"] = [positive, negative]
    return Dataset(
        _unit_rows(X[train], "digits"),
        _pm1(labels[train], positive),
        _unit_rows(X[test], "digits"),
        _pm1(labels[test], positive),
        meta,
    )


def _two_class_sample(
    images: np.ndarray,
    labels: np.ndarray,
    source: str,
    classes: tuple[int, int],
    n: int,
    key: str,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n examples of the two classes without replacement.

    images: (N, d), labels: (N,) -> X (n, d) unit-norm rows, y (n,) +-1.
    """
    for c in classes:
        if not bool((labels == c).any()):
            raise DataFileError(f"class {c} (data.classes) does not occur in {source}")
    pool = np.flatnonzero((labels == classes[0]) | (labels == classes[1]))
    if n > pool.size:
        raise ValueError(
            f"{key} = {n} exceeds the {pool.size} examples of classes {list(classes)} in {source}"
        )
    chosen = pool[torch.randperm(pool.size, generator=gen)[:n].numpy()]
    X = _unit_rows(torch.from_numpy(images[chosen].astype(np.float64)), source, DataFileError)
    return X, _pm1(labels[chosen], classes[0])


def _image_dataset(
    name: str,
    reader: Callable[[Any, str], tuple[np.ndarray, np.ndarray, str]],
    path: Any,
    classes: Sequence[int],
    n_train: int,
    n_test: int,
    data_seed: int,
) -> Dataset:
    """Two-class treatment shared by MNIST and CIFAR-10.

    The train set is drawn from the train files first, then the test set from the test files,
    both with `make_generator("data", data_seed)`.
    """
    pair = _check_classes(classes, DATASETS[name].classes)
    n_train, n_test = _check_count(n_train, "data.n_train"), _check_count(n_test, "data.n_test")
    gen = make_generator("data", data_seed)
    X_train, y_train = _two_class_sample(*reader(path, "train"), pair, n_train, "data.n_train", gen)
    X_test, y_test = _two_class_sample(*reader(path, "test"), pair, n_test, "data.n_test", gen)
    meta = _base_meta(name, data_seed, n_train, n_test, X_train.shape[1], pm1=True)
    meta.update(classes=list(pair), path=str(path))
    return Dataset(X_train, y_train, X_test, y_test, meta)


def mnist(
    path: str | os.PathLike[str],
    classes: Sequence[int],
    n_train: int,
    n_test: int,
    *,
    data_seed: int,
) -> Dataset:
    """MNIST from the original IDX files (plain or .gz) in folder `path`.

    X: (n, 784) unit-norm rows; first class -> +1, second -> -1.
    """
    return _image_dataset("mnist", read_mnist, path, classes, n_train, n_test, data_seed)


def cifar10(
    path: str | os.PathLike[str],
    classes: Sequence[int],
    n_train: int,
    n_test: int,
    *,
    data_seed: int,
) -> Dataset:
    """CIFAR-10 from the binary batches in `path` (or `path/cifar-10-batches-bin`).

    X: (n, 3072) unit-norm rows; first class -> +1, second -> -1.
    """
    return _image_dataset("cifar10", read_cifar10, path, classes, n_train, n_test, data_seed)


def apply_label_noise(
    y: torch.Tensor, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, int]:
    """Replace exactly round(fraction * n) labels of y: (n,) by uniform random +-1.

    The positions are chosen uniformly without replacement, so about half of the replaced labels
    keep their value. `round` is Python's (ties to even). Only +-1 labels are accepted.
    Returns the new labels (n,) and the number of replaced positions.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label_noise must lie in [0, 1], got {fraction!r}")
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("label noise needs +-1 labels; these labels are not all +-1")
    n_replaced = round(fraction * y.shape[0])
    noisy = y.clone()
    if n_replaced > 0:
        positions = torch.randperm(y.shape[0], generator=generator)[:n_replaced]
        signs = torch.randint(0, 2, (n_replaced,), generator=generator).to(y.dtype) * 2 - 1
        noisy[positions] = signs
    return noisy, n_replaced


def _require(settings: DataSettings, key: str) -> Any:
    """The value of `data.<key>`, which this data set needs; ValueError naming it when unset."""
    value = getattr(settings, key)
    if value is None:
        raise ValueError(f"data.{key} is required for data.name = {settings.name!r}")
    return value


def build_sphere_quadratic(settings: DataSettings) -> Dataset:
    """`sphere_quadratic` from the data settings (dim; own keys labels and inputs, default
    "standardize" and "cube")."""
    labels = settings.options.get("labels", "standardize")
    inputs = settings.options.get("inputs", "cube")
    return sphere_quadratic(
        settings.n_train,
        settings.n_test,
        _require(settings, "dim"),
        data_seed=settings.seed,
        labels=str(labels),
        inputs=str(inputs),
    )


def build_digits(settings: DataSettings) -> Dataset:
    """`digits` from the data settings (classes)."""
    return digits(
        _require(settings, "classes"), settings.n_train, settings.n_test, data_seed=settings.seed
    )


def build_mnist(settings: DataSettings) -> Dataset:
    """`mnist` from the data settings (path, classes)."""
    return mnist(
        _require(settings, "path"),
        _require(settings, "classes"),
        settings.n_train,
        settings.n_test,
        data_seed=settings.seed,
    )


def build_cifar10(settings: DataSettings) -> Dataset:
    """`cifar10` from the data settings (path, classes)."""
    return cifar10(
        _require(settings, "path"),
        _require(settings, "classes"),
        settings.n_train,
        settings.n_test,
        data_seed=settings.seed,
    )


def _is_fraction(value: object) -> bool:
    """A finite number in [0, 1] (not a bool)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )


def _is_seed(value: object) -> bool:
    """A non-negative integer (not a bool)."""
    return bool(isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 0)


def make_dataset(settings: DataSettings, *, label_noise: float, seed: int) -> Dataset:
    """Build the data set of the data settings, with label noise seeded by (data.seed, seed).

    The generator is `DATASETS[data.name].builder` (minnorm.data.registry). Label noise uses
    `make_generator("label_noise", data.seed, seed)`: train labels first, then test labels.
    A key of `settings.options` that the data set does not declare (`DatasetSpec.schema`) is an
    error naming it.
    """
    name = settings.name
    if name not in DATASETS:
        raise ValueError(f"data.name must be one of {list(DATASETS)}, got {name!r}")
    spec = DATASETS[name]
    unknown = sorted(set(settings.options) - set(spec.schema or {}))
    if unknown:
        raise ValueError(
            f"data.{unknown[0]}: not a setting of {name} "
            f"(its own keys: {sorted(spec.schema or {}) or 'none'})"
        )
    if not _is_fraction(label_noise):
        raise ValueError(f"label_noise must be a number in [0, 1], got {label_noise!r}")
    if not spec.pm1_labels and label_noise > 0:
        raise ValueError(f"label_noise > 0 needs +-1 labels; {name} has real-valued labels")
    if not _is_seed(seed):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    ds = spec.builder(settings)
    gen = make_generator("label_noise", settings.seed, seed)
    y_train, n_train_replaced = (
        apply_label_noise(ds.y_train, label_noise, gen)
        if ds.meta["pm1_labels"]
        else (ds.y_train, 0)
    )
    y_test, n_test_replaced = (
        apply_label_noise(ds.y_test, label_noise, gen) if ds.meta["pm1_labels"] else (ds.y_test, 0)
    )
    meta = dict(
        ds.meta,
        label_noise=float(label_noise),
        seed=int(seed),
        n_replaced_train=n_train_replaced,
        n_replaced_test=n_test_replaced,
        config=json.loads(json.dumps(settings.to_mapping(), default=str)),
    )
    return dataclasses.replace(ds, y_train=y_train, y_test=y_test, meta=meta)


def save_dataset(ds: Dataset, path: str | os.PathLike[str]) -> None:
    """Write `ds` to a netCDF data file atomically (ARCHITECTURE.md, file 1).

    attrs: dataset, label_noise, seed (-1 when None), pm1_labels (0/1), config (JSON) and meta
    (the whole meta dict as JSON, so that load_dataset restores it exactly).
    """
    variables = {
        name: (
            dims,
            getattr(ds, name).detach().cpu().numpy(),
            {"long_name": _LONG_NAMES[name], "units": "1"},
        )
        for name, dims in _VARIABLES.items()
    }
    meta = ds.meta
    seed = meta.get("seed")
    attrs = {
        "dataset": str(meta.get("name", "unknown")),
        "label_noise": float(meta.get("label_noise", 0.0)),
        "seed": -1 if seed is None else int(seed),
        "pm1_labels": int(bool(meta.get("pm1_labels", False))),
        "config": json.dumps(meta.get("config", {}), sort_keys=True),
        "meta": json.dumps(meta, sort_keys=True, allow_nan=False),
        "Conventions": CF_CONVENTIONS,
    }
    atomic_write_netcdf(xr.Dataset(variables, attrs=attrs), path)


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read a data file written by save_dataset.

    Raises DataFileError naming the file when it is missing, not netCDF, or lacks a variable.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file {str(path)!r} does not exist")
    try:
        with xr.open_dataset(path, engine="netcdf4") as opened:
            ds = opened.load()
    except (OSError, ValueError, RuntimeError) as err:
        raise DataFileError(f"data file {str(path)!r} cannot be read as netCDF: {err}") from err
    tensors = {}
    for name, dims in _VARIABLES.items():
        if name not in ds or ds[name].dims != dims:
            raise DataFileError(f"data file {str(path)!r} lacks variable {name} with dims {dims}")
        values = np.asarray(ds[name].values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataFileError(f"data file {str(path)!r}: variable {name} holds non-finite values")
        tensors[name] = torch.from_numpy(values.copy())
    try:
        meta = json.loads(ds.attrs["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise DataFileError(
            f"data file {str(path)!r} lacks a valid 'meta' attribute (JSON)"
        ) from err
    try:
        return Dataset(meta=meta, **tensors)
    except ValueError as err:
        raise DataFileError(f"data file {str(path)!r}: {err}") from err
