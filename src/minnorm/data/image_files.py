"""Validated readers for the original MNIST IDX files and CIFAR-10 binary batches (no pickles)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

# IDX type codes (third magic byte) -> big-endian element type, from the format's definition
# on Yann LeCun's MNIST page.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MNIST_IMAGE_SHAPE = (28, 28)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# CIFAR-10 binary version: each record is 1 label byte followed by 32*32*3 pixel bytes.
CIFAR_PIXELS = 3072
CIFAR_RECORD_BYTES = 1 + CIFAR_PIXELS
CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
CIFAR_SUBFOLDER = "cifar-10-batches-bin"
N_CLASSES = 10
NO_DOWNLOAD = "minnorm never downloads data at run time; put the original files there (data.path)"


class DataFileError(ValueError):
    """A local data file is missing or malformed; the message names the file."""


def _check_folder(folder: str | Path | None, dataset: str) -> Path:
    """Return `folder` as a Path after checking it is an existing directory."""
    if folder is None:
        raise DataFileError(
            f"data.path must name the folder holding the {dataset} files; {NO_DOWNLOAD}"
        )
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DataFileError(
            f"{dataset} folder {str(path)!r} (data.path) does not exist or is not a folder; "
            f"{NO_DOWNLOAD}"
        )
    return path


def _read_bytes(path: Path) -> bytes:
    """Whole file content, gunzipped when the name ends in .gz."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as err:
        raise DataFileError(f"cannot read {str(path)!r}: {err}") from err


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain or .gz) into an array of the shape its header declares.

    Raises DataFileError naming the file when it is truncated or has trailing bytes, has a wrong
    magic number or an unknown type code, or holds NaN/inf (float type codes).
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataFileError(
            f"{str(path)!r} is truncated: {len(raw)} bytes, "
            "shorter than the 4-byte IDX magic number"
        )
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise DataFileError(
            f"{str(path)!r} has a wrong magic number 0x{raw[:4].hex()}: an IDX file starts "
            f"with two zero bytes, a type code in {sorted(hex(c) for c in IDX_DTYPES)} "
            "and a nonzero dimension count"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(
            f"{str(path)!r} is truncated inside its header ({len(raw)} of {header} bytes)"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(shape)
    expected, found = count * dtype.itemsize, len(raw) - header
    if found != expected:
        problem = "is truncated" if found < expected else "has trailing bytes"
        raise DataFileError(
            f"{str(path)!r} {problem}: its header declares shape {shape} ({expected} data bytes) "
            f"but it holds {found} data bytes"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(array).all():
        raise DataFileError(f"{str(path)!r} contains non-finite values (NaN or inf)")
    return array


def _check_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    """Labels as int64 after checking they are integers in 0..9. labels: (N,)."""
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise DataFileError(f"{str(path)!r} holds non-integer labels")
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise DataFileError(
            f"{str(path)!r} holds labels out of range: found {labels.min()}..{labels.max()}, "
            f"expected 0..{N_CLASSES - 1}"
        )
    return labels.astype(np.int64)


def _mnist_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name.gz` when only the compressed file exists."""
    plain, gz = folder / name, folder / f"{name}.gz"
    return gz if not plain.is_file() and gz.is_file() else plain


def mnist_files(folder: str | Path) -> list[Path]:
    """The four MNIST files `read_mnist` opens in `folder` (train images, labels, test images,
    labels); an absent one under its plain name."""
    root = Path(folder).expanduser()
    return [_mnist_path(root, name) for split in MNIST_FILES.values() for name in split]


def _find_mnist_file(folder: Path, name: str) -> Path:
    """Locate `name` or `name.gz` in `folder`, preferring the uncompressed file."""
    candidate = _mnist_path(folder, name)
    if candidate.is_file():
        return candidate
    raise DataFileError(
        f"MNIST file {name!r} (or {name + '.gz'!r}) is missing: expected at "
        f"{str(folder / name)!r}; {NO_DOWNLOAD}"
    )


def read_mnist(folder: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Read the MNIST `split` ("train" or "test") from the IDX files in `folder`.

    Returns images (N, 784) in the file's element type, labels (N,) int64 in 0..9, and a
    description of the files for messages.
    """
    root = _check_folder(folder, "MNIST")
    image_path, label_path = (_find_mnist_file(root, name) for name in MNIST_FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != MNIST_IMAGE_SHAPE:
        raise DataFileError(
            f"{str(image_path)!r} has shape {images.shape}; "
            "MNIST images must have shape (N, 28, 28)"
        )
    if labels.ndim != 1:
        raise DataFileError(
            f"{str(label_path)!r} has shape {labels.shape}; MNIST labels must have shape (N,)"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataFileError(
            f"{str(label_path)!r} holds {labels.shape[0]} labels but {str(image_path)!r} holds "
            f"{images.shape[0]} images"
        )
    labels = _check_labels(labels, label_path)
    return images.reshape(images.shape[0], -1), labels, f"{str(image_path)!r} / {str(label_path)!r}"


def _cifar_root(root: Path) -> Path:
    """`root` itself or its cifar-10-batches-bin/ (when the batches are not directly in root)."""
    if not (root / CIFAR_FILES["train"][0]).is_file() and (root / CIFAR_SUBFOLDER).is_dir():
        return root / CIFAR_SUBFOLDER
    return root


def _cifar_folder(folder: str | Path | None) -> Path:
    """The folder holding the CIFAR batches: `folder` itself or its cifar-10-batches-bin/."""
    return _cifar_root(_check_folder(folder, "CIFAR-10"))


def cifar10_files(folder: str | Path) -> list[Path]:
    """The six CIFAR-10 batches `read_cifar10` opens (train batches 1-5, then the test batch)."""
    root = _cifar_root(Path(folder).expanduser())
    return [root / name for split in CIFAR_FILES.values() for name in split]


def _read_cifar_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch -> pixels (N, 3072) uint8 and labels (N,) int64."""
    if not path.is_file():
        raise DataFileError(
            f"CIFAR-10 file {path.name!r} is missing: expected at {str(path)!r} (data.path "
            f"itself or its {CIFAR_SUBFOLDER}/ subfolder; the binary version, not the pickled "
            f"one); {NO_DOWNLOAD}"
        )
    raw = _read_bytes(path)
    if len(raw) == 0 or len(raw) % CIFAR_RECORD_BYTES != 0:
        raise DataFileError(
            f"{str(path)!r} has {len(raw)} bytes, not a positive multiple of {CIFAR_RECORD_BYTES} "
            f"(1 label byte + {CIFAR_PIXELS} pixel bytes per image): "
            "truncated or not the binary version"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    return records[:, 1:], _check_labels(records[:, 0], path)


def read_cifar10(folder: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Read the CIFAR-10 `split` ("train": data_batch_1..5.bin, "test": test_batch.bin).

    Returns pixels (N, 3072) uint8, labels (N,) int64, and a description of the files.
    """
    root = _cifar_folder(folder)
    paths = [root / name for name in CIFAR_FILES[split]]
    parts = [_read_cifar_file(path) for path in paths]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, ", ".join(repr(str(p)) for p in paths)
