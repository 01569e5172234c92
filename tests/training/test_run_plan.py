"""The plan of a run (minnorm.training.run_plan): where chunks of GD steps end, when checkpoints
and progress lines are due, written out by hand."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers.training import run_config
from minnorm.training.run_plan import DTYPES, RunPlan

DATA = {"name": "sphere_quadratic", "n_train": 4, "n_test": 2, "dim": 3, "seed": 0}


def _plan(**settings) -> RunPlan:
    return RunPlan.from_training(run_config(DATA, width=8, **settings).training)


def test_chunks_end_at_every_recorded_checkpoint_and_progress_step():
    plan = _plan(steps=50, every=20, log_points=0, checkpoint_every=15, progress_every=25)
    assert plan.record == (0, 20, 40, 50) and plan.dtype == torch.float64
    assert plan.chunk_boundaries(0) == [0, 15, 20, 25, 30, 40, 45, 50]
    # A run resumed from its step-30 checkpoint continues at the same boundaries.
    assert plan.chunk_boundaries(30) == [30, 40, 45, 50]
    assert [s for s in range(51) if plan.checkpoint_due(s)] == [0, 15, 30, 45]
    assert [s for s in range(51) if plan.progress_due(s)] == [0, 25, 50]


def test_no_intervals_leave_only_the_recorded_steps():
    plan = _plan(steps=10, every=0, log_points=0, dtype="float32")
    assert plan.chunk_boundaries(0) == [0, 10] and plan.dtype is DTYPES["float32"]
    assert not any(plan.checkpoint_due(s) or plan.progress_due(s) for s in range(11))


def test_a_plan_needs_the_runs_resolved_steps():
    training = run_config(DATA, width=8).training
    with pytest.raises(ValueError, match="training.steps is unset"):
        RunPlan.from_training(dataclasses.replace(training, steps=None, horizon=0.5))
