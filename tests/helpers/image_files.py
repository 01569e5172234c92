"""Test helpers that write tiny MNIST IDX and CIFAR-10 binary files in the original formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

# Type codes of the IDX format (third byte of the magic number).
IDX_CODES = {
    np.dtype("uint8"): 0x08,
    np.dtype("int8"): 0x09,
    np.dtype("int16"): 0x0B,
    np.dtype("int32"): 0x0C,
    np.dtype("float32"): 0x0D,
    np.dtype("float64"): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode `array` as an IDX file: zero bytes, type code, ndim, big-endian dims, big-endian
    data."""
    code = IDX_CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_bytes(path: Path, content: bytes, gz: bool = False) -> Path:
    """Write `content` to `path` (or `path.gz`, gzipped) and return the path written."""
    target = path.with_name(path.name + ".gz") if gz else path
    target.write_bytes(gzip.compress(content) if gz else content)
    return target


def random_images(
    rng: np.random.Generator, labels: list[int], shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, *shape) with every image nonzero, and labels (N,) uint8."""
    images = rng.integers(0, 256, size=(len(labels), *shape), dtype=np.uint8)
    images[:, 0] = np.maximum(images[:, 0], 1)  # no all-zero image: unit norm must be defined
    return images, np.asarray(labels, dtype=np.uint8)


def write_mnist(
    folder: Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    gz: bool = False,
) -> dict[str, Path]:
    """Write the four MNIST IDX files for (images (N, 28, 28), labels (N,)) pairs; returns their
    paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, (images, labels) in (("train", train), ("t10k", test)):
        written[f"{split}-images"] = write_bytes(
            folder / f"{split}-images-idx3-ubyte", idx_bytes(images), gz
        )
        written[f"{split}-labels"] = write_bytes(
            folder / f"{split}-labels-idx1-ubyte", idx_bytes(labels), gz
        )
    return written


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Encode images (N, 3072) uint8 and labels (N,) as CIFAR-10 binary records."""
    records = np.concatenate([labels.astype(np.uint8)[:, None], images.astype(np.uint8)], axis=1)
    return records.tobytes()


def write_cifar(
    folder: Path,
    train_batches: list[tuple[np.ndarray, np.ndarray]],
    test: tuple[np.ndarray, np.ndarray],
) -> dict[str, Path]:
    """Write data_batch_1..5.bin from five (images, labels) pairs and test_batch.bin; returns
    paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, (images, labels) in enumerate(train_batches, start=1):
        written[f"data_batch_{i}"] = write_bytes(
            folder / f"data_batch_{i}.bin", cifar_bytes(images, labels)
        )
    written["test_batch"] = write_bytes(folder / "test_batch.bin", cifar_bytes(*test))
    return written
