"""Counts bounded by training.steps (minnorm.config.rules.training_problems); the refused files
are tests/configs/bad/log-points-above-steps.yaml and interval-marks-too-many-steps.yaml."""

from __future__ import annotations

import pytest

from minnorm.config import ConfigError, validate_config
from minnorm.config.rules import MAX_POINTS_PER_INTERVAL


def _config(training: dict) -> dict:
    return {
        "experiments": {
            "e": {
                "data": {"name": "sphere_quadratic", "n_train": 20, "n_test": 30, "dim": 3},
                "training": training,
                "sweep": {"width": [8], "seed": [0]},
            }
        }
    }


def test_default_log_points_stay_valid_for_short_runs():
    resolved = validate_config(_config({"steps": 10}))
    assert resolved["experiments"]["e"]["training"]["record"]["log_points"] == 40


def test_log_points_up_to_steps_are_accepted_and_beyond_refused_naming_the_key():
    validate_config(_config({"steps": 1000, "record": {"log_points": 1000}}))
    with pytest.raises(
        ConfigError, match=r"experiments\.e\.training\.record\.log_points: 1001 exceeds"
    ):
        validate_config(_config({"steps": 1000, "record": {"log_points": 1001}}))


def test_interval_bound_is_the_most_points_a_run_lists():
    steps = 3 * MAX_POINTS_PER_INTERVAL
    validate_config(
        _config(
            {"steps": steps, "record": {"every": 3}, "checkpoint_every": 3, "progress_every": 3}
        )
    )
    with pytest.raises(ConfigError) as caught:
        validate_config(_config({"steps": steps, "record": {"every": 100}, "checkpoint_every": 2}))
    assert "experiments.e.training.checkpoint_every: 2 marks 1500000" in str(caught.value)
    assert "record.every" not in str(caught.value)
