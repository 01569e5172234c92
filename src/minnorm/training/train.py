"""Training runs, one or a batch side by side: the public entry points.

Data flow one way: the run plan (`run_plan.RunPlan`: steps to record, chunks, dtype), each run's
state (its target, checkpoint or W0), the GD loop (`loop.train_group`, which calls the
`recorder.Recorder` after each chunk), then the run file's Dataset (`run_file.run_dataset`).
Which runs share a batch is `batching`'s business.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from minnorm.config.run_config import RunConfig
from minnorm.core.family_target import FamilyTarget
from minnorm.data.datasets import Dataset
from minnorm.data.target_file import load_target
from minnorm.io.job_clock import CLOCK
from minnorm.training.batching import check_batch, start_groups
from minnorm.training.loop import train_group
from minnorm.training.progress import JobProgress
from minnorm.training.recorder import RunState
from minnorm.training.resources import check_fits
from minnorm.training.run_file import run_dataset
from minnorm.training.run_plan import RunPlan, device_for, device_name
from minnorm.training.run_record import (
    FamilyRunMetrics,
    RunMetrics,
    TrainingState,
    load_checkpoint,
)

PathLike = Path | str
# The job clock's part for the runs' starting states and references (targets, metrics at W0).
PREPARE_PART = "preparing runs (targets, metrics at W0)"


def train_run(
    data: Dataset,
    target: xr.Dataset,
    run: RunConfig,
    *,
    checkpoint: PathLike | None = None,
    logger: logging.Logger | None = None,
    iterates: dict[int, torch.Tensor] | None = None,
    progress: JobProgress | None = None,
    output_iterates: dict[int, torch.Tensor] | None = None,
) -> xr.Dataset:
    """Train one run from the target file's W0 and return the run Dataset (ARCHITECTURE.md, file 3).

    data: the run's data set; target: its target file (W0, a, W*, theory scalars). If
    ``checkpoint`` names an existing checkpoint of the same resolved config, training resumes
    from it with the same iterates as an uninterrupted run; one is written there every
    ``training.checkpoint_every`` steps. It is left in place afterwards: the caller deletes it
    once the returned Dataset is safely written. A diverged run (non-finite weights, or a loss
    that is non-finite or above DIVERGENCE_LOSS_RATIO times its value at W0) stops early:
    ``diverged`` = 1, ``diverged_step`` = the first bad step, ``diverged_reason`` why, and the
    ``step`` dimension ends at the last recorded step before it (every stored value is finite;
    empty when W0 itself is bad, e.g. a kappa whose outputs overflow).
    ``iterates``, if given, receives a float64 CPU copy of W at every recorded step (tests);
    ``output_iterates`` the same of a when the output layer is trained.
    ``progress``, if given, gets the run's start, every chunk and its end (terminal lines).
    """
    return train_runs(
        [data],
        [target],
        [run],
        checkpoints=[checkpoint],
        logger=logger,
        iterates=[iterates],
        progress=progress,
        output_iterates=[output_iterates],
    )[0]


def _run_state(
    data: Dataset,
    target: xr.Dataset,
    run: RunConfig,
    checkpoint: PathLike | None,
    seen: dict[int, torch.Tensor] | None,
    logger: logging.Logger,
    seen_a: dict[int, torch.Tensor] | None = None,
) -> RunState:
    """A run's starting state: its checkpoint if one of this config exists, else W0."""
    if bool(target.attrs.get("bias", run.model.bias)) != run.model.bias:
        raise ValueError(
            f"the target file was made with bias = {bool(target.attrs['bias'])}, the run config "
            f"has model.bias = {run.model.bias}: wrong target file for this run?"
        )
    min_norm = load_target(target, data)
    pm1 = bool(data.meta.get("pm1_labels", False))
    metrics: RunMetrics | FamilyRunMetrics
    a0: torch.Tensor | None = None
    if isinstance(min_norm, FamilyTarget):
        kernels = (_tensor(target, "H"), _tensor(target, "H_test"))
        metrics = FamilyRunMetrics(min_norm, data, pm1, *kernels)
        a0 = min_norm.a0 if min_norm.train_output else None
    else:
        metrics = RunMetrics(min_norm, data, pm1)
    path = Path(checkpoint) if checkpoint else None
    m, p = min_norm.W0.shape
    state = load_checkpoint(path, run.to_json(), (m, p), logger) if path else None
    if state is not None:
        logger.info("resuming from checkpoint %s at step %d", path, state.step)
    else:
        state = TrainingState(step=0, W=min_norm.W0, records=[(0, metrics(min_norm.W0, a0))], a=a0)
        if seen is not None:
            seen[0] = min_norm.W0.clone()
        if seen_a is not None and a0 is not None:
            seen_a[0] = a0.clone()
    return RunState(data, run, min_norm, metrics, state, path, seen, seen_a)


def _tensor(ds: xr.Dataset, name: str) -> torch.Tensor:
    """A target-file variable as a float64 tensor."""
    return torch.from_numpy(np.asarray(ds[name].values, dtype=np.float64))


def train_runs(
    datas: list[Dataset],
    targets: list[xr.Dataset],
    runs: list[RunConfig],
    *,
    checkpoints: list[PathLike | None] | None = None,
    logger: logging.Logger | None = None,
    iterates: list[dict[int, torch.Tensor] | None] | None = None,
    progress: JobProgress | None = None,
    output_iterates: list[dict[int, torch.Tensor] | None] | None = None,
) -> list[xr.Dataset]:
    """Train S runs of one width side by side (a seed batch) and return their run Datasets, in
    order.

    Every run is what ``train_run`` would make of it alone, iterate for iterate and bit for bit
    (tests/training/test_seed_batch.py): the batch shares each step's call of the compiled step (one
    (S, m, p) weight tensor), not its numbers. The runs must share their training inputs X and
    their ``training`` settings (``batching.batch_key``); each keeps its own target (W0, a, W*),
    labels y, test data, checkpoint, divergence and records. Runs whose checkpoints stand at
    different steps are trained in one batch per starting step. ``wall_time_s`` of each run is
    the time of the batch it was trained in.
    """
    logger = logger or logging.getLogger(__name__)
    count = len(runs)
    if not (count and len(datas) == len(targets) == count):
        raise ValueError(
            f"need as many data sets and targets as run configs, got {len(datas)}, "
            f"{len(targets)} and {count}"
        )
    check_batch(datas, runs)
    checkpoints = list(checkpoints) if checkpoints is not None else [None] * count
    iterates = list(iterates) if iterates is not None else [None] * count
    outputs = list(output_iterates) if output_iterates is not None else [None] * count
    training = runs[0].training
    plan = RunPlan.from_training(training)
    device = device_for(training.accelerator)
    m, p = (int(targets[0].sizes[d]) for d in ("neuron", "weight_dim"))
    n, n_test = datas[0].X_train.shape[0], max(d.X_test.shape[0] for d in datas)
    check_fits(n, m, p, training.dtype, n_test, device, runs=count)
    if device.type == "cuda":  # recording runs on the host
        check_fits(n, m, p, training.dtype, n_test, torch.device("cpu"), runs=count)
    states = [
        _run_state(data, target, run, path, seen, logger, seen_a)
        for data, target, run, path, seen, seen_a in zip(
            datas, targets, runs, checkpoints, iterates, outputs, strict=True
        )
    ]
    CLOCK.lap(PREPARE_PART)
    results: dict[int, xr.Dataset] = {}
    for group in start_groups([state.state.step for state in states]):
        diverged, reasons, wall, gd_step = train_group(
            [states[i] for i in group], training, plan, device, logger, progress
        )
        for i, bad, why, seconds in zip(group, diverged, reasons, wall, strict=True):
            records = [
                (step, values)
                for step, values in states[i].state.records
                if bad is None or step < bad
            ]
            results[i] = run_dataset(
                records,
                targets[i],
                runs[i],
                bad,
                seconds,
                device_name(device),
                gd_step,
                diverged_reason=why,
            )
        CLOCK.lap("building run datasets")
    return [results[i] for i in range(count)]
