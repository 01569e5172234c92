"""Tests for the MNIST IDX / CIFAR-10 binary readers and the mnist/cifar10 data sets."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.image_files import (
    cifar_bytes,
    idx_bytes,
    random_images,
    write_bytes,
    write_cifar,
    write_mnist,
)
from minnorm.data.datasets import cifar10, make_dataset, mnist
from minnorm.data.image_files import DataFileError, read_cifar10, read_idx, read_mnist
from minnorm.data.settings import DataSettings

# Unit-norm scaling in float64 is exact to a few ulps.
EXACT_TOL = 1e-12

TRAIN_LABELS = [0, 1, 2, 1, 0, 2, 1, 0, 1, 1, 2, 0]  # five 1s, four 0s
TEST_LABELS = [2, 0, 1, 0, 1, 0]  # two 1s, three 0s


def _mnist_arrays(
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return random_images(rng, TRAIN_LABELS, (28, 28)), random_images(rng, TEST_LABELS, (28, 28))


def _unit(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(images.shape[0], -1).astype(np.float64)
    return flat / np.linalg.norm(flat, axis=1, keepdims=True)


def _rows_as_set(X: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.round(X, 12)}


@pytest.mark.parametrize("gz", [False, True])
def test_read_mnist_plain_and_gz(tmp_path: Path, gz: bool) -> None:
    train, test = _mnist_arrays()
    write_mnist(tmp_path, train, test, gz=gz)
    images, labels, _ = read_mnist(tmp_path, "train")
    np.testing.assert_array_equal(images, train[0].reshape(12, 784))
    np.testing.assert_array_equal(labels, TRAIN_LABELS)
    images, labels, _ = read_mnist(tmp_path, "test")
    np.testing.assert_array_equal(images, test[0].reshape(6, 784))
    np.testing.assert_array_equal(labels, TEST_LABELS)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float32", "float64"])
def test_read_idx_all_type_codes(tmp_path: Path, dtype: str) -> None:
    values = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    path = write_bytes(tmp_path / "x-idx3", idx_bytes(values))
    back = read_idx(path)
    assert back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, values)


def test_mnist_dataset_selects_two_classes_unit_norm(tmp_path: Path) -> None:
    train, test = _mnist_arrays()
    write_mnist(tmp_path, train, test, gz=True)
    ds = mnist(tmp_path, [1, 0], 9, 5, data_seed=0)  # all 1s and 0s of both splits
    assert ds.X_train.shape == (9, 784) and ds.X_test.shape == (5, 784)
    np.testing.assert_allclose(ds.X_train.norm(dim=1).numpy(), 1.0, rtol=0, atol=EXACT_TOL)
    for X, y, (images, labels) in ((ds.X_train, ds.y_train, train), (ds.X_test, ds.y_test, test)):
        for cls, sign in ((1, 1.0), (0, -1.0)):
            expected = _rows_as_set(_unit(images[labels == cls]))
            assert _rows_as_set(X.numpy()[y.numpy() == sign]) == expected
    assert ds.meta["classes"] == [1, 0] and ds.meta["dim"] == 784
    # A subsample is a deterministic function of data.seed.
    a = mnist(tmp_path, [1, 0], 4, 2, data_seed=3)
    b = mnist(tmp_path, [1, 0], 4, 2, data_seed=3)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    with pytest.raises(ValueError, match=r"data\.n_train = 10 exceeds the 9"):
        mnist(tmp_path, [1, 0], 10, 2, data_seed=0)


def test_mnist_via_make_dataset_with_label_noise(tmp_path: Path) -> None:
    write_mnist(tmp_path, *_mnist_arrays())
    cfg = {
        "name": "mnist",
        "n_train": 6,
        "n_test": 4,
        "classes": [0, 2],
        "path": str(tmp_path),
        "seed": 0,
    }
    ds = make_dataset(DataSettings.from_mapping(cfg), label_noise=0.5, seed=2)
    assert ds.meta["n_replaced_train"] == 3 and ds.meta["n_replaced_test"] == 2
    assert set(ds.y_train.tolist()) <= {-1.0, 1.0}


def test_mnist_missing_file_says_where(tmp_path: Path) -> None:
    train, test = _mnist_arrays()
    paths = write_mnist(tmp_path, train, test)
    paths["t10k-labels"].unlink()
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte.*expected at .*download"):
        mnist(tmp_path, [0, 1], 2, 2, data_seed=0)
    with pytest.raises(DataFileError, match="does not exist"):
        mnist(tmp_path / "absent", [0, 1], 2, 2, data_seed=0)


def _corrupt_cases() -> dict[str, tuple[str, bytes, str]]:
    """name -> (file to overwrite, new content, expected message fragment)."""
    train, _ = _mnist_arrays()
    images, labels = train
    good_images = idx_bytes(images)
    nan_images = images.astype(np.float32)
    nan_images[3, 5, 5] = np.nan
    inf_images = images.astype(np.float64)
    inf_images[0, 0, 0] = np.inf
    return {
        "truncated": ("train-images-idx3-ubyte", good_images[:-100], "truncated"),
        "header_truncated": ("train-images-idx3-ubyte", good_images[:9], "truncated"),
        "tiny": ("train-labels-idx1-ubyte", b"\x00\x00", "truncated"),
        "trailing": ("train-labels-idx1-ubyte", idx_bytes(labels) + b"\x00", "trailing bytes"),
        "magic": ("train-images-idx3-ubyte", b"\x01\x02" + good_images[2:], "magic number"),
        "type_code": ("train-images-idx3-ubyte", b"\x00\x00\x07" + good_images[3:], "magic number"),
        "shape": ("train-images-idx3-ubyte", idx_bytes(images[:, :27, :]), r"shape \(12, 27, 28\)"),
        "flat": ("train-images-idx3-ubyte", idx_bytes(images.reshape(12, 784)), "shape"),
        "count": ("train-labels-idx1-ubyte", idx_bytes(labels[:11]), "11 labels"),
        "range": (
            "train-labels-idx1-ubyte",
            idx_bytes(np.where(labels == 2, 10, labels).astype(np.uint8)),
            "out of range",
        ),
        "nan": ("train-images-idx3-ubyte", idx_bytes(nan_images), "non-finite"),
        "inf": ("train-images-idx3-ubyte", idx_bytes(inf_images), "non-finite"),
        "fractional_labels": (
            "train-labels-idx1-ubyte",
            idx_bytes(labels.astype(np.float32) + 0.5),
            "non-integer",
        ),
    }


@pytest.mark.parametrize("case", sorted(_corrupt_cases()))
def test_mnist_malformed_files_name_the_file(tmp_path: Path, case: str) -> None:
    write_mnist(tmp_path, *_mnist_arrays())
    name, content, fragment = _corrupt_cases()[case]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataFileError, match=fragment) as info:
        mnist(tmp_path, [0, 1], 3, 2, data_seed=0)
    assert str(tmp_path / name) in str(info.value)


def test_mnist_corrupt_gzip_and_absent_class_name_the_file(tmp_path: Path) -> None:
    write_mnist(tmp_path, *_mnist_arrays(), gz=True)
    good = (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataFileError, match="t10k-images-idx3-ubyte.gz"):
        mnist(tmp_path, [0, 1], 2, 2, data_seed=0)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"plain bytes, no gzip header")
    with pytest.raises(DataFileError, match="t10k-images-idx3-ubyte.gz"):
        mnist(tmp_path, [0, 1], 2, 2, data_seed=0)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(good)
    with pytest.raises(DataFileError, match=r"class 7 \(data\.classes\).*train-images-idx3-ubyte"):
        mnist(tmp_path, [0, 7], 2, 2, data_seed=0)
    assert gzip.decompress(good)[:4] == b"\x00\x00\x08\x03"  # the writer made a real IDX file


def _cifar_arrays(
    seed: int = 0,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    batches = [random_images(rng, [3, 5, 9, 3, 5][i:] + [3] * i, (3072,)) for i in range(5)]
    return batches, random_images(rng, [5, 3, 3, 9], (3072,))


@pytest.mark.parametrize("subfolder", [False, True])
def test_read_cifar10_binary_batches(tmp_path: Path, subfolder: bool) -> None:
    batches, test = _cifar_arrays()
    write_cifar(tmp_path / "cifar-10-batches-bin" if subfolder else tmp_path, batches, test)
    images, labels, _ = read_cifar10(tmp_path, "train")
    np.testing.assert_array_equal(images, np.concatenate([b[0] for b in batches]))
    np.testing.assert_array_equal(labels, np.concatenate([b[1] for b in batches]))
    images, labels, _ = read_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(images, test[0])
    np.testing.assert_array_equal(labels, [5, 3, 3, 9])


def test_cifar10_dataset_two_classes(tmp_path: Path) -> None:
    batches, test = _cifar_arrays()
    write_cifar(tmp_path, batches, test)
    train_images = np.concatenate([b[0] for b in batches])
    train_labels = np.concatenate([b[1] for b in batches])
    n_train = int(np.isin(train_labels, [3, 5]).sum())
    ds = cifar10(tmp_path, [3, 5], n_train, 3, data_seed=1)
    assert ds.X_train.shape == (n_train, 3072)
    np.testing.assert_allclose(ds.X_test.norm(dim=1).numpy(), 1.0, rtol=0, atol=EXACT_TOL)
    assert _rows_as_set(ds.X_train.numpy()[ds.y_train.numpy() == 1]) == _rows_as_set(
        _unit(train_images[train_labels == 3])
    )
    assert _rows_as_set(ds.X_test.numpy()[ds.y_test.numpy() == -1]) == _rows_as_set(
        _unit(test[0][test[1] == 5])
    )


def test_cifar10_malformed_files_name_the_file(tmp_path: Path) -> None:
    batches, test = _cifar_arrays()
    paths = write_cifar(tmp_path, batches, test)
    good = paths["data_batch_3"].read_bytes()
    paths["data_batch_3"].write_bytes(good[:-5])
    with pytest.raises(DataFileError, match=r"data_batch_3\.bin.*multiple of 3073"):
        cifar10(tmp_path, [3, 5], 2, 2, data_seed=0)
    paths["data_batch_3"].write_bytes(b"")
    with pytest.raises(DataFileError, match=r"data_batch_3\.bin.*multiple of 3073"):
        cifar10(tmp_path, [3, 5], 2, 2, data_seed=0)
    paths["data_batch_3"].write_bytes(good)
    bad_labels = cifar_bytes(test[0], np.array([5, 3, 11, 9], dtype=np.uint8))
    paths["test_batch"].write_bytes(bad_labels)
    with pytest.raises(DataFileError, match=r"test_batch\.bin.*out of range"):
        cifar10(tmp_path, [3, 5], 2, 2, data_seed=0)
    paths["test_batch"].unlink()
    with pytest.raises(
        DataFileError, match=r"test_batch\.bin.*expected at.*cifar-10-batches-bin.*download"
    ):
        cifar10(tmp_path, [3, 5], 2, 2, data_seed=0)
    write_cifar(tmp_path, batches, test)
    with pytest.raises(DataFileError, match=r"class 1 \(data\.classes\).*data_batch_1\.bin"):
        cifar10(tmp_path, [3, 1], 2, 2, data_seed=0)
    with pytest.raises(DataFileError, match=r"data\.path"):
        cifar10(None, [3, 5], 2, 2, data_seed=0)  # type: ignore[arg-type]


def test_cifar10_pickled_version_is_refused_not_unpickled(tmp_path: Path) -> None:
    import pickle

    # The python version of CIFAR-10 ships pickles named data_batch_1 etc. (no .bin); reading
    # one would execute arbitrary code, so the reader only reports the missing binary file.
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({"labels": [3, 5], "data": b"\x00" * 10}))
    with pytest.raises(DataFileError, match=r"data_batch_1\.bin.*not the pickled one"):
        cifar10(folder, [3, 5], 1, 1, data_seed=0)
