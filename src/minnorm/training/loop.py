"""The GD loop of a batch of runs standing at the same step: the network, the Lightning system and
data module, one fit over the planned chunks, and each run's divergence."""

from __future__ import annotations

import logging

import torch

from minnorm.config.run_config import TrainingSettings
from minnorm.core.family_network import TwoLayerNet, family_readout
from minnorm.core.family_target import FamilyTarget
from minnorm.core.model import TwoLayerReLU, augment_inputs, network_outputs
from minnorm.core.target import MinNormTarget
from minnorm.data.datasets import Dataset
from minnorm.io.job_clock import CLOCK
from minnorm.training.gd_step import loss_value
from minnorm.training.progress import JobProgress
from minnorm.training.recorder import Recorder, RunState
from minnorm.training.run_plan import (
    DIVERGENCE_LOSS_RATIO,
    DIVERGENCE_REASONS,
    RunPlan,
    device_name,
)
from minnorm.training.system import (
    LIGHTNING_PART,
    FullBatchData,
    GDSystem,
    make_trainer,
    quiet_lightning,
)


def loss_limit(
    min_norm: MinNormTarget | FamilyTarget,
    data: Dataset,
    bias: bool,
    loss: str,
    dtype: torch.dtype,
) -> float:
    """DIVERGENCE_LOSS_RATIO times the training loss (its own normalisation and dtype) at theta0."""
    Xt = augment_inputs(data.X_train, bias).to(dtype)
    if isinstance(min_norm, FamilyTarget):
        Z0 = Xt @ min_norm.W0.to(dtype).T
        f0 = family_readout(Z0, min_norm.a0.to(dtype), min_norm.activation)
    else:
        f0 = network_outputs(min_norm.W0.to(dtype), Xt, min_norm.a.to(dtype))
    return DIVERGENCE_LOSS_RATIO * float(loss_value(f0, data.y_train.to(dtype), loss))


def _output_weights(run: RunState) -> torch.Tensor:
    """A run's output weights where it stands: its trained a (a checkpoint's, or the last
    segment's), else the target file's a0."""
    if run.state.a is not None:
        return run.state.a
    target = run.min_norm
    return target.a0 if isinstance(target, FamilyTarget) else target.a


def batch_name(runs: list[RunState], m: int) -> str:
    """Terminal name of a batch: "exp m1000 s0" for one run, "exp m1000 s0,1,2 (3 runs)" for
    several."""
    seeds = ",".join(dict.fromkeys(str(run.config.seed) for run in runs))
    name = f"{runs[0].config.experiment} m{m} s{seeds}".strip()
    return name if len(runs) == 1 else f"{name} ({len(runs)} runs)"


def train_group(
    runs: list[RunState],
    training: TrainingSettings,
    plan: RunPlan,
    device: torch.device,
    logger: logging.Logger,
    progress: JobProgress | None,
) -> tuple[list[int | None], list[int], list[float], str]:
    """GD for runs whose states stand at the same step (their `training` settings and `plan`
    shared); returns each run's diverged step (None: did not diverge), why it diverged (an index
    of `DIVERGENCE_REASONS`, 0 if it did not), its training time, and the
    name of the step's implementation (`GDSystem.step_path`, e.g. "cpp-avx512"). One run trains as
    an (m, p) network, several as a batch (W: (S, m, p))."""
    dtype = plan.dtype
    count = len(runs)
    bias = runs[0].config.model.bias
    W0 = torch.stack([run.state.W for run in runs]).to(dtype)
    a = torch.stack([_output_weights(run) for run in runs]).to(dtype)
    y = torch.stack([run.data.y_train for run in runs]).to(dtype)
    if count == 1:
        W0, a, y = W0[0], a[0], y[0]
    first = runs[0].min_norm
    model: TwoLayerReLU | TwoLayerNet
    if isinstance(first, FamilyTarget):
        model = TwoLayerNet(W0, a, bias, first.activation, train_output=first.train_output)
    else:
        model = TwoLayerReLU(W0, a, bias)
    start = runs[0].state.step
    boundaries = plan.chunk_boundaries(start)
    limits = [loss_limit(run.min_norm, run.data, bias, training.loss, dtype) for run in runs]
    system = GDSystem(
        model,
        lr=training.lr,
        loss=training.loss,
        step_impl=training.step_impl,
        boundaries=boundaries,
        loss_limit=limits,
    )
    datamodule = FullBatchData(runs[0].data.X_train.to(dtype), y, len(boundaries) - 1)
    recorder = Recorder(runs, plan, logger, progress)
    m = model.W.shape[-2]
    together = f", {count} runs side by side" if count > 1 else ""
    logger.info(
        "training width %d, %d steps, lr %g, %s loss, %s, %s step on %s%s",
        m,
        plan.steps,
        training.lr,
        training.loss,
        training.dtype,
        training.step_impl,
        device_name(device),
        together,
    )
    if progress is not None:
        progress.start_run(batch_name(runs, m), plan.steps, start, runs=count)
    CLOCK.lap("preparing runs (targets, metrics at W0)")
    recorder.start()
    if len(boundaries) > 1:
        trainer = make_trainer(training.accelerator, [recorder])
        with quiet_lightning():
            trainer.fit(system, datamodule=datamodule)
    CLOCK.lap(LIGHTNING_PART)
    wall = [recorder.elapsed(run) for run in runs]
    logger.info("GD steps computed by the %s step", system.step_description())
    for index, (bad, why) in enumerate(
        zip(system.diverged_steps, system.diverged_reasons, strict=True)
    ):
        if bad is not None:
            which = f"run {index + 1}/{count} of the batch " if count > 1 else "run "
            logger.warning(
                "%sdiverged at step %d: %s (the limit: a finite loss at most %g x its initial "
                "value, finite weights); stopped",
                which,
                bad,
                DIVERGENCE_REASONS[why].replace("_", " "),
                DIVERGENCE_LOSS_RATIO,
            )
    if progress is not None:
        bad_steps = [b for b in system.diverged_steps if b is not None]
        note = (
            "done"
            if not bad_steps
            else f"diverged at step {bad_steps[0]}"
            if count == 1
            else f"{len(bad_steps)} diverged"
        )
        progress.end_run(max(run.state.step for run in runs), note)
    return list(system.diverged_steps), list(system.diverged_reasons), wall, system.step_path
