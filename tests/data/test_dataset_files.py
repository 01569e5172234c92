"""DatasetSpec.files: the local files a data set reads, declared as inputs of the data job
(minnorm.workflow.plan.local_data_files) without naming any data set in the plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.image_files import idx_bytes, random_images, write_bytes, write_cifar, write_mnist
from minnorm.data import image_files
from minnorm.data.registry import DATASETS, DatasetSpec
from minnorm.data.settings import DataSettings
from minnorm.workflow import plan


def test_a_registered_data_set_declares_its_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("pairs.bin", "labels.bin", "README.txt"):
        (tmp_path / name).write_bytes(b"x")
    spec = DatasetSpec(
        "pairs",
        lambda cfg: None,
        "toy",
        needs_path=True,
        dim=2,
        local_files=lambda root: [root / "pairs.bin", root / "labels.bin", root / "absent.bin"],
    )
    monkeypatch.setitem(DATASETS, "pairs", spec)
    config = _config(str(tmp_path))
    assert plan.local_data_files(config, "e") == [
        str(tmp_path / n) for n in ("pairs.bin", "labels.bin", "absent.bin")
    ]
    assert plan.local_data_files(_config(None), "e") == []
    # Without local_files: every file directly in the folder.
    monkeypatch.setitem(
        DATASETS, "pairs", DatasetSpec("pairs", lambda cfg: None, "toy", needs_path=True, dim=2)
    )
    assert plan.local_data_files(config, "e") == sorted(str(p) for p in tmp_path.iterdir())


def _config(path: str | None) -> dict:
    """A config of one experiment on the data set "pairs" whose files are in `path`, with the
    defaults filled in as validation fills them."""
    data = {"name": "pairs", "n_train": 4, "n_test": 2, "path": path, "seed": 0}
    training = {
        "lr": 0.01,
        "loss": "half_sum",
        "steps": 10,
        "dtype": "float64",
        "accelerator": "cpu",
        "step_impl": "fused",
        "record": {"every": 1, "log_points": 0},
        "checkpoint_every": 0,
        "progress_every": 0,
    }
    sweep = {"width": [8], "seed": [0]}
    block = {"data": data, "model": {"bias": True, "kappa": 1.0}, "training": training}
    return {"experiments": {"e": {**block, "sweep": sweep}}}


def _data(name: str, path: Path) -> DataSettings:
    return DataSettings(name, n_train=1, n_test=1, seed=0, path=str(path))


def _opened(description: str) -> list[str]:
    """The paths in a reader's description ("'a' / 'b'" or "'a', 'b'")."""
    return [part.strip().strip("'") for part in description.replace(" / ", ", ").split(", ")]


def test_mnist_and_cifar10_declare_the_files_their_readers_open(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = [0, 1, 2]
    mnist = tmp_path / "mnist"
    train = random_images(rng, labels, (28, 28))
    write_mnist(mnist, train, random_images(rng, labels, (28, 28)), gz=True)
    write_bytes(
        mnist / "train-images-idx3-ubyte", idx_bytes(train[0])
    )  # plain beside .gz: preferred
    opened = [
        p for split in ("train", "test") for p in _opened(image_files.read_mnist(mnist, split)[2])
    ]
    assert [str(p) for p in DATASETS["mnist"].files(_data("mnist", mnist))] == opened
    assert opened[0].endswith("train-images-idx3-ubyte") and opened[1].endswith(".gz")

    cifar = tmp_path / "cifar"
    batch = random_images(rng, labels, (3072,))
    write_cifar(cifar / image_files.CIFAR_SUBFOLDER, [batch] * 5, batch)
    opened = [
        p for split in ("train", "test") for p in _opened(image_files.read_cifar10(cifar, split)[2])
    ]
    assert [str(p) for p in DATASETS["cifar10"].files(_data("cifar10", cifar))] == opened
    assert len(opened) == 6 and image_files.CIFAR_SUBFOLDER in opened[0]
    assert DATASETS["digits"].files(_data("digits", cifar)) == []
