"""The plan of a training run, fixed before its first step: the steps to record, where chunks of
GD steps end, the dtype and device, and the loss above which a run counts as diverged."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from minnorm.config.run_config import TrainingSettings

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
# A run counts as diverged when its training loss exceeds this multiple of the loss at W0 (or
# is not finite). Below the stability limit lr < 2 / lambda_max(G) the loss of the (nearly
# linear) wide network decreases. Far above it the first step overshoots by ~(lr lambda_max)^2
# and then, on a ReLU network, usually kills every unit: the weights stay finite and the loss
# stalls at mean(y^2), which would otherwise look like a converged run. Measured on 20 points
# (lambda_max = 5.8, limit 0.35): lr = 10 spikes 460x then dies, lr = 100 spikes 4e4x; lr = 1
# and 3 rise 7x and 50x and then recover (the "catapult" regime), so 10 flags the latter too.
DIVERGENCE_LOSS_RATIO = 10.0
# Why a run counts as diverged, as stored in the run file's flag variable `diverged_reason` (its
# value is the index here; CF flag meanings, so one word each).
DIVERGENCE_REASONS: tuple[str, ...] = (
    "not_diverged",
    "weights_not_finite",
    "loss_not_finite",
    "loss_above_limit",
)


def recording_steps(steps: int, every: int, log_points: int) -> list[int]:
    """Sorted unique steps to record: 0, every ``every``-th step, ``log_points`` log-spaced
    points between 1 and ``steps``, and ``steps`` itself (``every``/``log_points`` 0 = none)."""
    if steps < 1 or every < 0 or log_points < 0:
        raise ValueError(
            f"need steps >= 1, every >= 0, log_points >= 0; got {steps}, {every}, {log_points}"
        )
    chosen = {0, steps}
    if every > 0:
        chosen.update(range(0, steps + 1, every))
    if log_points > 0:
        chosen.update(int(s) for s in np.round(np.geomspace(1, steps, log_points)))
    return sorted(chosen)


def device_for(accelerator: str) -> torch.device:
    """The device Lightning will pick for ``accelerator`` (training.accelerator) with devices=1."""
    if accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    """The device as named in logs and the run file's `device` attribute."""
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """When a run (or a batch of runs with equal training settings) records, checkpoints and logs.

    steps: GD steps in all; record: the steps whose metrics are recorded (`recording_steps`);
    checkpoint_every, progress_every: intervals (0 = never); dtype: the training dtype.
    """

    steps: int
    record: tuple[int, ...]
    checkpoint_every: int
    progress_every: int
    dtype: torch.dtype

    @classmethod
    def from_training(cls, training: TrainingSettings) -> RunPlan:
        """The plan of a run's `training` settings (its steps resolved)."""
        if training.steps is None:
            raise ValueError("training.steps is unset: resolve the horizon for the run's lr first")
        return cls(
            steps=training.steps,
            record=tuple(
                recording_steps(training.steps, training.record.every, training.record.log_points)
            ),
            checkpoint_every=training.checkpoint_every,
            progress_every=training.progress_every,
            dtype=DTYPES[training.dtype],
        )

    def chunk_boundaries(self, start: int) -> list[int]:
        """`start`, then every step after it at which a chunk of GD steps ends: recording,
        checkpoint and progress steps, and the last step."""
        ends = {s for s in self.record if s > start}
        for every in (self.checkpoint_every, self.progress_every):
            if every > 0:
                ends.update(range(every, self.steps, every))
        return [start] + sorted(s for s in ends if start < s <= self.steps)

    def checkpoint_due(self, step: int) -> bool:
        """Whether a checkpoint is written after `step` (never after the last step)."""
        every = self.checkpoint_every
        return every > 0 and step % every == 0 and step < self.steps

    def progress_due(self, step: int) -> bool:
        """Whether a progress line is logged after `step`."""
        return self.progress_every > 0 and step % self.progress_every == 0
