"""What happens after each chunk of GD steps: record the runs' metrics, write their checkpoints,
log progress lines; and the per-run state it keeps (`RunState`)."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from minnorm.config.run_config import RunConfig
from minnorm.core.family_target import FamilyTarget
from minnorm.core.target import MinNormTarget
from minnorm.data.datasets import Dataset
from minnorm.io.job_clock import CLOCK
from minnorm.training.progress import JobProgress
from minnorm.training.run_plan import RunPlan
from minnorm.training.run_record import (
    FamilyRunMetrics,
    RunMetrics,
    TrainingState,
    save_checkpoint,
)
from minnorm.training.system import LIGHTNING_PART, GDSystem


@dataclasses.dataclass
class RunState:
    """One run of a batch: what it trains on, where it stands and where its checkpoint goes.

    data: its data set; config: its run config; min_norm: its target (W0, a, W*); metrics: the
    recorded quantities' evaluator; state: step, weights and records so far; checkpoint: where
    checkpoints go (None: none); iterates: receives a float64 CPU copy of W at every recorded
    step (tests), or None; output_iterates: the same for the output weights a when they are
    trained (tests), or None.
    """

    data: Dataset
    config: RunConfig
    min_norm: MinNormTarget | FamilyTarget
    metrics: RunMetrics | FamilyRunMetrics
    state: TrainingState
    checkpoint: Path | None = None
    iterates: dict[int, torch.Tensor] | None = None
    output_iterates: dict[int, torch.Tensor] | None = None


# The job clock's part (minnorm.io.job_clock) for evaluating the recorded quantities.
RECORD_PART = "recording (metrics at recorded steps)"


class Recorder(pl.Callback):
    """Owns the runs of a batch; after each chunk: record metrics, write checkpoints, log progress
    and report it to the terminal, as due (`RunPlan`).

    A run that has diverged is left alone (no more records or checkpoints: its last checkpoint
    stays the one before the divergence, so a resumed run diverges at the same step). A state's
    ``wall_time_s`` stays that of the earlier segments; ``elapsed(run)`` adds the time since
    ``start()``.
    """

    def __init__(
        self,
        runs: list[RunState],
        plan: RunPlan,
        logger: logging.Logger,
        progress: JobProgress | None,
    ) -> None:
        self.runs, self.plan, self.record = runs, plan, frozenset(plan.record)
        self.logger, self.progress = logger, progress
        self._segment_start = time.perf_counter()
        # (time, step) at the end of the first chunk, which includes compilation: rates start there.
        self._clock: tuple[float, int] | None = None

    def start(self) -> None:
        """Start the clock of this training segment (right before the fit)."""
        self._segment_start = time.perf_counter()

    def elapsed(self, run: RunState) -> float:
        """Training time of all segments of ``run`` so far, this one included."""
        return run.state.wall_time_s + time.perf_counter() - self._segment_start

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        assert isinstance(pl_module, GDSystem)
        CLOCK.lap(LIGHTNING_PART)
        step = pl_module.step
        active = [
            (s, run)
            for s, (run, bad) in enumerate(zip(self.runs, pl_module.diverged_steps, strict=True))
            if bad is None
        ]
        if not active or step == active[0][1].state.step:
            return
        W_all = pl_module.model.W.detach()
        a_all = pl_module.model.a.detach() if pl_module.trains_output else None
        for s, run in active:
            state = run.state
            state.step, state.W = step, W_all[s] if pl_module.batched else W_all
            if a_all is not None:
                state.a = a_all[s] if pl_module.batched else a_all
            if step in self.record:
                state.records.append((step, run.metrics(state.W, state.a)))
                if run.iterates is not None:
                    run.iterates[step] = state.W.to("cpu", torch.float64, copy=True)
                if run.output_iterates is not None and state.a is not None:
                    run.output_iterates[step] = state.a.to("cpu", torch.float64, copy=True)
        CLOCK.lap(RECORD_PART)
        if self.progress is not None:
            self.progress.chunk_done(step)
        first = self._clock is None
        if self.plan.progress_due(step):
            now = time.perf_counter()
            self._log_progress(step, active, None if first else self._rate(now, step))
            self._clock = (now, step)
        elif first:
            self._clock = (time.perf_counter(), step)
        CLOCK.lap("progress lines")
        if self.plan.checkpoint_due(step):
            for _, run in active:
                if run.checkpoint is not None:
                    state = run.state
                    saved = TrainingState(
                        step=step,
                        W=state.W,
                        records=state.records,
                        wall_time_s=self.elapsed(run),
                        a=state.a,
                    )
                    save_checkpoint(run.checkpoint, saved, run.config.to_json())
            CLOCK.lap("checkpoints")

    def _rate(self, now: float, step: int) -> float:
        """Steps per second since the end of the first chunk."""
        assert self._clock is not None
        return (step - self._clock[1]) / max(now - self._clock[0], 1e-9)

    def _log_progress(
        self, step: int, active: list[tuple[int, RunState]], rate: float | None
    ) -> None:
        """One log line per active run: step, training loss, ||W - W*|| and the rate."""
        for s, run in active:
            loss, dist = run.metrics.progress(run.state.W, run.state.a)
            which = f"run {s + 1}/{len(self.runs)}  " if len(self.runs) > 1 else ""
            if rate is None:
                self.logger.info(
                    "%sstep %d/%d  train_loss %.4e  ||W - W*|| %.4e  (first chunk: start-up "
                    "and compilation, no rate)",
                    which,
                    step,
                    self.plan.steps,
                    loss,
                    dist,
                )
            else:
                self.logger.info(
                    "%sstep %d/%d  train_loss %.4e  ||W - W*|| %.4e  %.1f steps/s",
                    which,
                    step,
                    self.plan.steps,
                    loss,
                    dist,
                    rate,
                )
