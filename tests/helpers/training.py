"""Shared pieces of the training tests: tiny data sets, run configs, targets, run comparisons."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from helpers import reference
from minnorm.config.run_config import RunConfig
from minnorm.data.datasets import make_dataset
from minnorm.data.settings import DataSettings
from minnorm.data.target_file import build_target_dataset
from minnorm.training import recorder
from minnorm.training.run_plan import DIVERGENCE_LOSS_RATIO
from minnorm.training.train import train_run


def sphere_data(n: int = 12, dim: int = 4, n_test: int = 10, seed: int = 0):
    cfg = {"name": "sphere_quadratic", "n_train": n, "n_test": n_test, "dim": dim, "seed": seed}
    settings = DataSettings.from_mapping(cfg)
    return settings, make_dataset(settings, label_noise=0.0, seed=0)


def run_config(data: DataSettings | dict, **settings) -> RunConfig:
    """The typed run config of `run_mapping`."""
    return RunConfig.from_mapping(run_mapping(data, **settings))


def run_mapping(
    data: DataSettings | dict,
    *,
    width: int,
    seed: int = 0,
    bias: bool = True,
    lr: float = 0.05,
    loss: str = "half_sum",
    steps: int = 40,
    dtype: str = "float64",
    step_impl: str = "eager",
    every: int = 10,
    log_points: int = 4,
    checkpoint_every: int = 0,
    progress_every: int = 0,
    experiment: str = "unit",
    model: dict | None = None,
) -> dict:
    """A resolved run config as a mapping (the shape `RunConfig.to_mapping` gives)."""
    return {
        "experiment": experiment,
        "data": data.to_mapping() if isinstance(data, DataSettings) else data,
        "model": {"bias": bias, "kappa": 1.0, **(model or {})},
        "training": {
            "lr": lr,
            "loss": loss,
            "steps": steps,
            "dtype": dtype,
            "accelerator": "cpu",
            "step_impl": step_impl,
            "record": {"every": every, "log_points": log_points},
            "checkpoint_every": checkpoint_every,
            "progress_every": progress_every,
        },
        "width": width,
        "seed": seed,
        "label_noise": 0.0,
        "lr": lr,
    }


def numpy_gd(X, y, W0, a, lr, loss, steps, bias):
    """The reference GD loop (tests/reference.py) with this package's divergence threshold."""
    return reference.gd_iterates(X, y, W0, a, lr, loss, steps, bias, DIVERGENCE_LOSS_RATIO)


def build(data_settings, data, cfg: RunConfig):
    model = cfg.model
    return build_target_dataset(
        data,
        width=cfg.width,
        seed=cfg.seed,
        bias=model.bias,
        kappa=model.kappa,
        activation=model.activation,
        leak=model.leak,
        train_output=model.train_output,
    )


def same_run(a: xr.Dataset, b: xr.Dataset) -> None:
    """Every variable, coordinate and attr identical (NaN equal to NaN), except the wall time."""
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        if name != "wall_time_s":
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
            assert xr.Variable((), 0, a[name].attrs).identical(xr.Variable((), 0, b[name].attrs)), (
                name
            )
    assert a.attrs == b.attrs


def train_killed_at(step, monkeypatch, data, target, cfg, checkpoint):
    """Train `cfg` with checkpoints until the one of `step` is written, then die as a kill would."""
    real_save = recorder.save_checkpoint

    def save_then_die(path, state, config_json):
        real_save(path, state, config_json)
        if state.step == step:
            raise RuntimeError("simulated kill")

    monkeypatch.setattr(recorder, "save_checkpoint", save_then_die)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_run(data, target, cfg, checkpoint=checkpoint)
    monkeypatch.setattr(recorder, "save_checkpoint", real_save)
