"""Parse-time rules of issue 26 (minnorm.config.rules): steps set by `training.horizon` (bounded,
at least one, rounded with a warning), kappa representable in the training dtype, figures that
need a horizon, and settings that cannot be swept. Refused files are in tests/configs/bad/
(horizon-*, kappa-*, gd-vs-flow-without-horizon, sweep-accelerator, ...)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO
from minnorm.config import ConfigError, validate_config
from minnorm.config.rules import LOSS_HEADROOM, max_steps
from minnorm.config.sweep import EXECUTION_TRAINING_KEYS, NON_NUMERIC_TRAINING_KEYS
from minnorm.config.validate import MAX_RUNS, MAX_RUNS_ENV, config_warnings, max_runs_from

BASE = {
    "experiments": {
        "e": {
            "data": {"name": "sphere_quadratic", "n_train": 20, "n_test": 30, "dim": 3},
            "training": {},
            "sweep": {"width": [8], "seed": [0]},
        }
    }
}


def _config(training: dict | None = None, sweep: dict | None = None, **block: object) -> dict:
    config = copy.deepcopy(BASE)
    experiment = config["experiments"]["e"]
    experiment["training"].update(training or {})
    experiment["sweep"].update(sweep or {})
    experiment.update(block)
    return config


def _refused(config: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    return str(caught.value)


def test_horizon_steps_are_bounded_like_written_steps():
    top = max_steps()
    assert top == 2**31 - 1
    sparse = {"record": {"every": 0}, "checkpoint_every": 0, "progress_every": 0, "lr": 1.0}
    validate_config(_config({"horizon": float(top), **sparse}))
    message = _refused(_config({"horizon": float(top + 1), **sparse}))
    assert f"experiments.e.training.horizon: {float(top + 1)!r} at lr 1.0 makes {top + 1}" in (
        message
    )
    # The same bound through the learning rate: one swept lr too small for the horizon.
    message = _refused(_config({"horizon": 100.0}, {"lr": [1.0, 1e-8]}))
    assert "experiments.e.training.horizon: 100.0 at lr 1e-08 makes 10000000000 steps" in message


def test_horizon_of_one_step_is_the_least():
    resolved = validate_config(_config({"horizon": 0.01, "lr": 0.01}))
    assert config_warnings(resolved) == []
    message = _refused(_config({"horizon": 0.0099, "lr": 0.01}))
    assert "experiments.e.training.horizon: 0.0099 is less than one step at lr 0.01" in message


@pytest.mark.parametrize(("horizon", "lr", "steps"), [(0.3, 0.1, 3), (0.7, 0.1, 7)])
def test_horizon_that_is_whole_steps_up_to_rounding_gives_no_warning(horizon, lr, steps):
    assert horizon / lr != steps  # floating point: 0.3 / 0.1 is 2.9999999999999996
    resolved = validate_config(_config({"horizon": horizon}, {"lr": [lr]}))
    assert config_warnings(resolved) == []


def test_horizon_between_steps_is_rounded_with_a_warning_naming_the_steps():
    resolved = validate_config(_config({"horizon": 0.35}, {"lr": [0.1, 0.05]}))
    assert config_warnings(resolved) == [
        "experiments.e.training.horizon: 0.35 is not a whole number of steps at lr 0.1 "
        "(horizon / lr = 3.4999999999999996); the runs at that lr take 3 steps, a gradient-flow "
        "time of 0.3"
    ]
    swept = validate_config(_config(sweep={"training.horizon": [1.0, 1.005], "lr": [0.01]}))
    (line,) = config_warnings(swept)
    assert line.startswith("experiments.e.sweep.training.horizon[1]: 1.005 is not a whole")
    assert "take 100 steps" in line or "take 101 steps" in line


def test_packaged_configs_warn_only_where_a_horizon_is_not_whole_steps():
    found = {}
    for path in sorted((REPO / "config").glob("*.yaml")):
        found[path.name] = config_warnings(validate_config(yaml.safe_load(path.read_text())))
    # beyond_cluster.yaml's lr 0.03 at lr * T = 100: 3333 steps, as before this rule.
    assert found.pop("beyond_cluster.yaml") == [
        "experiments.gd_vs_flow.training.horizon: 100.0 is not a whole number of steps at lr "
        "0.03 (horizon / lr = 3333.3333333333335); the runs at that lr take 3333 steps, a "
        "gradient-flow time of 99.99"
    ]
    assert all(lines == [] for lines in found.values()), found


def _kappa_limit(message: str) -> float:
    return float(message.rsplit("use kappa <= ", 1)[1].split()[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kappa_bound_is_conservative_and_stated(dtype):
    width, n = 4096, 30
    message = _refused(_config({"dtype": dtype}, {"width": [8, width]}, model={"kappa": 1e300}))
    limit = _kappa_limit(message)
    assert f"(width {width}, {n} points)" in message
    validate_config(_config({"dtype": dtype}, {"width": [width]}, model={"kappa": limit * 0.99}))
    _refused(_config({"dtype": dtype}, {"width": [width]}, model={"kappa": limit * 1.01}))
    # Independent: a network at the largest accepted kappa, in the dtype, has a finite loss
    # with room for the divergence limit (10 x) and more.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 3))
    X = np.hstack([X / np.linalg.norm(X, axis=1, keepdims=True), np.ones((n, 1))]).astype(dtype)
    W0 = (limit * rng.standard_normal((width, 4))).astype(dtype)
    a = rng.choice([-1.0, 1.0], width).astype(dtype)
    f0 = np.maximum(X @ W0.T, 0) @ a / np.sqrt(width).astype(dtype)
    loss = np.sum(f0.astype(dtype) ** 2, dtype=dtype)
    assert math.isfinite(float(loss)) and float(loss) * 10 < float(np.finfo(dtype).max)
    assert float(loss) * LOSS_HEADROOM > 0


def test_kappa_below_the_smallest_normal_is_refused_in_that_dtype_only():
    tiny = float(np.finfo(np.float32).tiny)
    assert np.float32(1e-50) == 0  # what the rule prevents: the weights round to zero
    validate_config(_config({"dtype": "float64"}, model={"kappa": 1e-50}))
    validate_config(_config({"dtype": "float32"}, model={"kappa": tiny}))
    message = _refused(_config({"dtype": "float32"}, model={"kappa": tiny / 2}))
    assert (
        "experiments.e.model.kappa:" in message and "below the smallest normal float32" in message
    )


def test_figure_that_compares_lrs_at_fixed_time_accepts_a_swept_horizon():
    sweep = {"width": [8, 16, 32], "lr": [0.01, 0.02]}
    validate_config(_config({"horizon": 1.0}, sweep, figures=["gd_vs_flow"]))
    validate_config(_config(sweep={**sweep, "training.horizon": [1.0]}, figures=["gd_vs_flow"]))
    message = _refused(_config({"steps": 20}, sweep, figures=["gd_vs_flow"]))
    assert "experiments.e.figures[0]: gd_vs_flow compares learning rates" in message


def test_every_execution_setting_is_refused_as_a_sweep_key():
    assert NON_NUMERIC_TRAINING_KEYS < EXECUTION_TRAINING_KEYS
    for key in sorted(EXECUTION_TRAINING_KEYS):
        schema_values = {"accelerator": ["cpu", "auto"], "step_impl": ["fused", "eager"]}
        values = schema_values.get(key, [0, 10])
        message = _refused(_config(sweep={f"training.{key}": values}))
        assert f"experiments.e.sweep.training.{key}: cannot be swept" in message


def test_bad_files_of_this_issue_exist() -> None:
    bad = REPO / "tests" / "configs" / "bad"
    names = {p.stem for p in Path(bad).glob("*.yaml")}
    assert {
        "horizon-steps-unbounded",
        "horizon-below-one-step",
        "horizon-swept-with-steps",
        "horizon-and-steps-swept",
        "kappa-underflow-float32",
        "kappa-overflow-float32",
        "gd-vs-flow-without-horizon",
        "sweep-accelerator",
    } <= names


def _sweep_of(runs_per_width: int, widths: int) -> dict:
    return {"width": list(range(1, widths + 1)), "seed": list(range(runs_per_width))}


def test_sweep_at_the_cap_is_accepted_and_above_refused_naming_the_sweep_and_count(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv(MAX_RUNS_ENV, raising=False)
    assert MAX_RUNS == 10**5
    validate_config(_config({"steps": 10}, _sweep_of(1000, 100)))
    config = _config({"steps": 10}, {**_sweep_of(1000, 100), "lr": [0.01, 0.02]})
    message = _refused(config)
    assert (
        "experiments.e.sweep: makes 200000 runs (100 width x 1000 seed x 1 label_noise x 2 lr); "
        f"the config makes 200000 in all, more than the 100000 allowed (set {MAX_RUNS_ENV}"
    ) in message
    validate_config(config, max_runs=200_000)
    monkeypatch.setenv(MAX_RUNS_ENV, "200000")
    validate_config(config)
    more = _config({"steps": 10}, {**_sweep_of(1000, 100), "lr": [0.01, 0.02, 0.03]})
    assert "experiments.e.sweep: makes 300000 runs" in _refused(more)


def test_cap_counts_every_experiment_of_the_config():
    config = _config({"steps": 10}, _sweep_of(10, 10))
    config["experiments"]["f"] = copy.deepcopy(config["experiments"]["e"])
    validate_config(config, max_runs=200)
    message = _refused_with(config, max_runs=199)
    assert "experiments.e.sweep: makes 100 runs" in message
    assert "experiments.f.sweep: makes 100 runs" in message and "makes 200 in all" in message


def _refused_with(config: dict, **options: int) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(config, **options)
    return str(caught.value)


@pytest.mark.parametrize("text", ["0", "-5", "1e6", "many"])
def test_bad_cap_in_the_environment_is_named(text: str):
    with pytest.raises(ConfigError, match=f"{MAX_RUNS_ENV}="):
        max_runs_from({MAX_RUNS_ENV: text})
    assert max_runs_from({MAX_RUNS_ENV: " 7 "}) == 7 and max_runs_from({}) == MAX_RUNS
