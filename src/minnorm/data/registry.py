"""Registry of the data sets: name (`data.name` in the config) -> DatasetSpec.

A data set is declared once here: its generator, input dimension, classes, whether it reads
local files, and how many examples each class has. The schema enum of `data.name`, the config
checks (`DatasetSpec.problems`), `make_dataset`'s dispatch and the run planning's input
dimension all derive from this dict. This module imports neither torch nor the generators
(they are named as "module:function"), so validating a config stays cheap.

This file is not part of the numerics fingerprint (minnorm.io.fingerprint.NON_NUMERIC_FILES), so
editing it retrains nothing: keep every number that makes data out of it. A generator lives in
a hashed module (minnorm.data.datasets or another module under minnorm/data/), and an existing
name is never re-pointed to another generator (register a new name instead).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minnorm.data.settings import DataSettings
from minnorm.io.resolve import resolve

# A generator takes the data settings (n_train, n_test, seed and the data set's own keys in
# `options`) and returns a minnorm.data.datasets.Dataset without label noise.
Builder = Callable[[DataSettings], Any]

_DATASETS = "minnorm.data.datasets"
_IMAGE_FILES = "minnorm.data.image_files"


@dataclass(frozen=True)
class DatasetSpec:
    """One data set.

    name: the value of `data.name`.
    build: the generator (see `Builder`), or "package.module:function" imported on first use.
    summary: one line for docs and messages.
    classes: the class labels of a classification data set (two are chosen with `data.classes`
      and mapped to +1 and -1); None for a regression data set (real labels, no label noise).
    needs_path: whether the data are read from local files in the folder `data.path`.
    local_files: for a data set with `needs_path`, the function (or "module:function") that
      lists the files its generator opens in that folder: folder (Path) -> list[Path], an absent
      file included under the name it would be read from; None = every file directly in the
      folder. See `files`.
    dim: fixed input dimension d; None when the config chooses it with `data.dim`.
    counts: examples per class (index = class label) of the original files, as
      {"train": (...), "test": (...)} when train and test come from separate files, or
      {"all": (...)} when both are drawn from one pool; None when unbounded (a generator).
    min_n_train, min_dim: smallest `data.n_train` and `data.dim` the generator works with.
    max_input_norm: the largest Euclidean norm of an input x the generator returns (1: unit-norm
      rows, as every generator here makes); the parse-time bound on the outputs at W0 uses it.
    schema: the data set's own keys of the `data:` block, {key: JSON schema of its value} (no
      `default`), merged into the config schema by minnorm.config.schema.load_schema so that a
      new key needs no schema edit; another data set's block may not use it. None: no own keys.
    """

    name: str
    build: Builder | str
    summary: str
    classes: range | None = None
    needs_path: bool = False
    dim: int | None = None
    counts: dict[str, tuple[int, ...]] | None = None
    min_n_train: int = 1
    min_dim: int = 1
    schema: dict[str, Any] | None = None
    local_files: Callable[[Path], list[Path]] | str | None = None
    max_input_norm: float = 1.0

    @property
    def pm1_labels(self) -> bool:
        """Whether labels are +-1 (classification), so label noise and 0-1 errors make sense."""
        return self.classes is not None

    @property
    def builder(self) -> Builder:
        """The generator function (imported now if `build` names it)."""
        return resolve(self.build)

    def files(self, data: DataSettings) -> list[Path]:
        """The user's original files the data are read from (`local_files` in `data.path`);
        [] for a data set without `needs_path` or when no path is given. Declared as inputs of
        the data job (minnorm.workflow.plan.local_data_files), so that replacing one rebuilds the
        data."""
        if not self.needs_path or data.path is None:
            return []
        root = Path(data.path).expanduser()
        if self.local_files is None:
            return sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else []
        return list(resolve(self.local_files)(root))

    def input_dim(self, data: DataSettings) -> int:
        """Input dimension d of the data (without the bias coordinate)."""
        if self.dim is not None:
            return self.dim
        if data.dim is None:
            raise ValueError(f"data.dim is required for data.name = {self.name!r}")
        return data.dim

    def size(self, data: DataSettings) -> dict[str, int] | None:
        """Examples available for the chosen classes: {"train": a, "test": b} (separate files:
        n_train <= a and n_test <= b), {"total": a} (one pool: n_train + n_test <= a), or None
        when unbounded or unknown (no counts, or classes not valid)."""
        if self.counts is None:
            return None
        counts = self.counts
        chosen = data.classes if self.classes is not None else None
        if self.classes is not None and not _valid_pair(chosen, self.classes):
            return None

        def available(split: str) -> int:
            per_class = counts[split]
            return sum(per_class[c] for c in chosen) if chosen is not None else sum(per_class)

        if "all" in self.counts:
            return {"total": available("all")}
        return {"train": available("train"), "test": available("test")}

    def problems(self, where: str, data: DataSettings) -> list[str]:
        """Mistakes in the settings of a schema-valid `data:` block for this data set; [] when
        there are none.

        `where` is the block's key path ("experiments.<name>.data"); each message starts with
        the path of the offending key.
        """
        problems = []
        if self.dim is None:
            if data.dim is None:
                problems.append(
                    f"{where}.dim: required for {self.name} (input dimension, >= {self.min_dim})"
                )
            elif data.dim < self.min_dim:
                problems.append(
                    f"{where}.dim: {data.dim!r} is out of range; {self.name} "
                    f"needs dim >= {self.min_dim}"
                )
        elif data.dim is not None:
            problems.append(
                f"{where}.dim: only for {', '.join(_names(lambda s: s.dim is None))} "
                f"({self.name} has d={self.dim})"
            )
        problems.extend(self._class_problems(f"{where}.classes", data.classes))
        path_problems = self._path_problems(f"{where}.path", data.path)
        problems.extend(path_problems or self._missing_file_problems(f"{where}.path", data))
        n_train, n_test = data.n_train, data.n_test
        if n_train < self.min_n_train:
            problems.append(
                f"{where}.n_train: {n_train} is out of range; {self.name} needs "
                f"n_train >= {self.min_n_train}"
            )
        size = self.size(data)
        chosen = (
            f" of classes {list(data.classes or ())}"
            if self.classes is not None and size is not None
            else ""
        )
        if size is not None and "total" in size and n_train + n_test > size["total"]:
            problems.append(
                f"{where}.n_train: n_train + n_test = {n_train + n_test} exceeds the "
                f"{size['total']} examples{chosen} in {self.name}"
            )
        if size is not None and "train" in size:
            for key, have, split in (
                (n_train, size["train"], "train"),
                (n_test, size["test"], "test"),
            ):
                if key > have:
                    problems.append(
                        f"{where}.n_{split}: {key} exceeds the {have} {split} "
                        f"examples{chosen} in {self.name}"
                    )
        return problems

    def _class_problems(self, where: str, classes: Any) -> list[str]:
        if self.classes is None:
            if classes is None:
                return []
            return [f"{where}: only for {', '.join(pm1_datasets())}; remove it"]
        allowed = f"{self.classes.start}..{self.classes.stop - 1}"
        if classes is None:
            return [f"{where}: required for {self.name}: two distinct classes out of {allowed}"]
        problems = [
            f"{where}[{i}]: class {c} does not exist in {self.name}; allowed values: {allowed}"
            for i, c in enumerate(classes)
            if c not in self.classes
        ]
        if len(classes) == 2 and classes[0] == classes[1]:
            problems.append(
                f"{where}: {list(classes)} names the same class twice; give two "
                f"distinct classes out of {allowed}"
            )
        return problems

    def _path_problems(self, where: str, path: Any) -> list[str]:
        if not self.needs_path:
            if path is None:
                return []
            return [
                f"{where}: only for {', '.join(_names(lambda s: s.needs_path))} "
                f"({self.name} needs no files); remove it"
            ]
        if path is None:
            return [
                f"{where}: required for {self.name}: the folder holding the original "
                f"{self.name} files"
            ]
        if not str(path).strip():
            return [
                f"{where}: empty; give the folder holding the original {self.name} files "
                "(an empty path would mean the working folder)"
            ]
        folder = Path(path).expanduser()
        if not folder.is_dir():
            return [f"{where}: folder {path!r} does not exist (resolved to {folder.resolve()})"]
        return []

    def _missing_file_problems(self, where: str, data: DataSettings) -> list[str]:
        """The files the generator will open (`files`) that are not in the existing folder
        `data.path`, named at `where` (the key path of `data.path`); [] when all are there."""
        if not self.needs_path or self.local_files is None or data.path is None:
            return []
        files = self.files(data)
        missing = [f for f in files if not f.is_file()]
        if not missing:
            return []
        root = Path(data.path).expanduser()
        which = "none" if len(missing) == len(files) else f"{len(files) - len(missing)}"
        names = ", ".join(
            str(f.relative_to(root)) if f.is_relative_to(root) else str(f) for f in missing
        )
        return [
            f"{where}: folder {data.path!r} holds {which} of the {len(files)} {self.name} "
            f"files; missing: {names} (put the original files there; minnorm does not "
            "download them)"
        ]


def _valid_pair(classes: Any, allowed: range) -> bool:
    return (
        isinstance(classes, list | tuple)
        and len(classes) == 2
        and all(isinstance(c, int) and c in allowed for c in classes)
        and classes[0] != classes[1]
    )


def _names(predicate: Callable[[DatasetSpec], bool]) -> list[str]:
    return [name for name, spec in DATASETS.items() if predicate(spec)]


def pm1_datasets() -> list[str]:
    """Names of the data sets with +-1 labels, in registry order."""
    return _names(lambda spec: spec.pm1_labels)


# Examples per class in the original files: scikit-learn's bundled digits (1797 in all; tested
# against sklearn in tests/data/test_data.py), MNIST (LeCun et al.: 60000 train, 10000 test) and
# CIFAR-10 (Krizhevsky: 5000 train and 1000 test images per class).
DIGITS_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)
MNIST_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        # With d = 1 every unit-norm x is +-1, so y = (x . beta)^2 is constant; standardising the
        # labels needs two points at least.
        DatasetSpec(
            "sphere_quadratic",
            f"{_DATASETS}:build_sphere_quadratic",
            "Satpathi & Srikant's Figure 1 data: unit-norm x, y = (x . beta)^2 standardised",
            min_n_train=2,
            min_dim=2,
            schema={
                "labels": {
                    "description": "label scaling: standardize (default; mean 0, "
                    "std 1), center (mean 0) or none",
                    "enum": ["standardize", "center", "none"],
                },
                "inputs": {
                    "description": "raw inputs before unit-norm scaling: cube "
                    "(default; uniform in [-1, 1]^d) or gaussian",
                    "enum": ["cube", "gaussian"],
                },
            },
        ),
        DatasetSpec(
            "digits",
            f"{_DATASETS}:build_digits",
            "scikit-learn's bundled 8x8 digits, two classes, unit-norm rows",
            classes=range(10),
            dim=64,
            counts={"all": DIGITS_COUNTS},
        ),
        DatasetSpec(
            "mnist",
            f"{_DATASETS}:build_mnist",
            "MNIST from the original IDX files in data.path, two classes",
            classes=range(10),
            needs_path=True,
            dim=28 * 28,
            local_files=f"{_IMAGE_FILES}:mnist_files",
            counts={"train": MNIST_TRAIN_COUNTS, "test": MNIST_TEST_COUNTS},
        ),
        DatasetSpec(
            "cifar10",
            f"{_DATASETS}:build_cifar10",
            "CIFAR-10 from the binary batches in data.path, two classes",
            classes=range(10),
            needs_path=True,
            dim=32 * 32 * 3,
            local_files=f"{_IMAGE_FILES}:cifar10_files",
            counts={"train": (5000,) * 10, "test": (1000,) * 10},
        ),
    )
}
