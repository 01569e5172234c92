"""One training run: full-batch GD from W0 on Lightning, recording the paper's quantities into a
Dataset."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import xarray as xr

from minnorm.config.sweep import SETTING_ATTR, setting_dim
from minnorm.core.model import TwoLayerReLU, augment_inputs, network_outputs
from minnorm.core.target import MinNormTarget
from minnorm.data.datasets import Dataset
from minnorm.data.target_file import eig_coordinate, load_target, variable_attrs
from minnorm.io.files import CF_CONVENTIONS, flag_attrs, provenance_attrs
from minnorm.training.gd_step import LOSSES, STEP_IMPLS, loss_value
from minnorm.training.progress import JobProgress
from minnorm.training.resources import check_fits
from minnorm.training.run_record import (
    TRAJECTORIES,
    RunMetrics,
    TrainingState,
    load_checkpoint,
    save_checkpoint,
)
from minnorm.training.system import FullBatchData, GDSystem, make_trainer, quiet_lightning

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "gpu")
# Scalars copied from the target file into the run file (ARCHITECTURE.md, file 3).
TARGET_SCALARS: tuple[str, ...] = (
    "lambda_min_G",
    "lambda_min_H",
    "cond_G",
    "yGy",
    "yHy",
    "arora_bound",
    "target_norm",
    "used_pinv",
)
TARGET_SPECTRA: tuple[str, ...] = ("H_eigenvalues", "y_projections")
# A run counts as diverged when its training loss exceeds this multiple of the loss at W0 (or
# is not finite). Below the stability limit lr < 2 / lambda_max(G) the loss of the (nearly
# linear) wide network decreases. Far above it the first step overshoots by ~(lr lambda_max)^2
# and then, on a ReLU network, usually kills every unit: the weights stay finite and the loss
# stalls at mean(y^2), which would otherwise look like a converged run. Measured on 20 points
# (lambda_max = 5.8, limit 0.35): lr = 10 spikes 460x then dies, lr = 100 spikes 4e4x; lr = 1
# and 3 rise 7x and 50x and then recover (the "catapult" regime), so 10 flags the latter too.
DIVERGENCE_LOSS_RATIO = 10.0


@dataclass(frozen=True)
class TrainSettings:
    """The ``training`` section of a resolved run config, checked."""

    lr: float
    loss: str
    steps: int
    dtype: str
    accelerator: str
    step_impl: str
    record_every: int
    log_points: int
    checkpoint_every: int
    progress_every: int

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> TrainSettings:
        """Read and check ``run_config["training"]``; errors name the offending key."""
        training = run_config.get("training")
        if not isinstance(training, dict):
            raise ValueError("run config lacks the 'training' section")

        def get(key: str, parent: dict[str, Any] = training, prefix: str = "training") -> Any:
            if key not in parent:
                raise ValueError(f"run config lacks {prefix}.{key}")
            return parent[key]

        def count(
            key: str, parent: dict[str, Any] = training, prefix: str = "training", low: int = 0
        ) -> int:
            value = get(key, parent, prefix)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{prefix}.{key} must be an integer >= {low}, got {value!r}")
            return value

        def choice(key: str, allowed: tuple[str, ...]) -> str:
            value = get(key)
            if value not in allowed:
                raise ValueError(f"training.{key} must be one of {list(allowed)}, got {value!r}")
            return value

        lr = get("lr")
        if (
            isinstance(lr, bool)
            or not isinstance(lr, (int, float))
            or not (lr > 0 and math.isfinite(lr))
        ):
            raise ValueError(f"training.lr must be a positive finite number, got {lr!r}")
        if "lr" in run_config and run_config["lr"] != lr:
            raise ValueError(
                f"run config lr = {run_config['lr']!r} differs from training.lr = {lr!r}"
            )
        record = get("record")
        if not isinstance(record, dict):
            raise ValueError(
                f"training.record must be a mapping with 'every' and 'log_points', got {record!r}"
            )
        return cls(
            lr=float(lr),
            loss=choice("loss", LOSSES),
            steps=count("steps", low=1),
            dtype=choice("dtype", tuple(DTYPES)),
            accelerator=choice("accelerator", ACCELERATORS),
            step_impl=choice("step_impl", STEP_IMPLS),
            record_every=count("every", record, "training.record"),
            log_points=count("log_points", record, "training.record"),
            checkpoint_every=count("checkpoint_every"),
            progress_every=count("progress_every"),
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


def _device(accelerator: str) -> torch.device:
    """The device Lightning will pick for ``accelerator`` with devices=1."""
    if accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")


def _device_name(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


def _chunk_boundaries(start: int, settings: TrainSettings, record: list[int]) -> list[int]:
    """Steps at which a chunk ends: recording, checkpoint and progress steps after ``start``."""
    ends = {s for s in record if s > start}
    for every in (settings.checkpoint_every, settings.progress_every):
        if every > 0:
            ends.update(range(every, settings.steps, every))
    return [start] + sorted(s for s in ends if start < s <= settings.steps)


@dataclass
class _Run:
    """One run of a batch: what it trains on, where it stands and where its checkpoint goes."""

    data: Dataset
    target: xr.Dataset
    config: dict[str, Any]
    config_json: str
    min_norm: MinNormTarget
    metrics: RunMetrics
    state: TrainingState
    checkpoint: Path | None
    iterates: dict[int, torch.Tensor] | None


class _Recorder(pl.Callback):
    """Owns the runs of a batch; after each chunk: record metrics, write checkpoints, log progress
    and report it to the terminal, as due.

    A run that has diverged is left alone (no more records or checkpoints: its last checkpoint
    stays the one before the divergence, so a resumed run diverges at the same step). A state's
    ``wall_time_s`` stays that of the earlier segments; ``elapsed(run)`` adds the time since
    ``start()``.
    """

    def __init__(
        self,
        runs: list[_Run],
        settings: TrainSettings,
        record: set[int],
        logger: logging.Logger,
        progress: JobProgress | None,
    ) -> None:
        self.runs, self.settings, self.record = runs, settings, record
        self.logger, self.progress = logger, progress
        self._segment_start = time.perf_counter()
        # (time, step) at the end of the first chunk, which includes compilation: rates start there.
        self._clock: tuple[float, int] | None = None

    def start(self) -> None:
        """Start the clock of this training segment (right before the fit)."""
        self._segment_start = time.perf_counter()

    def elapsed(self, run: _Run) -> float:
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
        step = pl_module.step
        active = [
            (s, run)
            for s, (run, bad) in enumerate(zip(self.runs, pl_module.diverged_steps, strict=True))
            if bad is None
        ]
        if not active or step == active[0][1].state.step:
            return
        W_all = pl_module.model.W.detach()
        for s, run in active:
            state = run.state
            state.step, state.W = step, W_all[s] if pl_module.batched else W_all
            if step in self.record:
                state.records.append((step, run.metrics(state.W)))
                if run.iterates is not None:
                    run.iterates[step] = state.W.to("cpu", torch.float64, copy=True)
        if self.progress is not None:
            self.progress.chunk_done(step)
        every = self.settings.progress_every
        first = self._clock is None
        if every > 0 and step % every == 0:
            now = time.perf_counter()
            rate = None if first else (step - self._clock[1]) / max(now - self._clock[0], 1e-9)
            for s, run in active:
                loss, dist = run.metrics.progress(run.state.W)
                which = f"run {s + 1}/{len(self.runs)}  " if len(self.runs) > 1 else ""
                if rate is None:
                    self.logger.info(
                        "%sstep %d/%d  train_loss %.4e  ||W - W*|| %.4e  (first chunk: start-up "
                        "and compilation, no rate)",
                        which,
                        step,
                        self.settings.steps,
                        loss,
                        dist,
                    )
                else:
                    self.logger.info(
                        "%sstep %d/%d  train_loss %.4e  ||W - W*|| %.4e  %.1f steps/s",
                        which,
                        step,
                        self.settings.steps,
                        loss,
                        dist,
                        rate,
                    )
            self._clock = (now, step)
        elif first:
            self._clock = (time.perf_counter(), step)
        every = self.settings.checkpoint_every
        if every > 0 and step % every == 0 and step < self.settings.steps:
            for _, run in active:
                if run.checkpoint is not None:
                    state = run.state
                    saved = TrainingState(
                        step=step, W=state.W, records=state.records, wall_time_s=self.elapsed(run)
                    )
                    save_checkpoint(run.checkpoint, saved, run.config_json)


def _loss_limit(
    min_norm: Any, data: Dataset, bias: bool, settings: TrainSettings, dtype: torch.dtype
) -> float:
    """DIVERGENCE_LOSS_RATIO times the training loss (its own normalisation and dtype) at W0."""
    Xt = augment_inputs(data.X_train, bias).to(dtype)
    f0 = network_outputs(min_norm.W0.to(dtype), Xt, min_norm.a.to(dtype))
    return DIVERGENCE_LOSS_RATIO * float(loss_value(f0, data.y_train.to(dtype), settings.loss))


def train_run(
    data: Dataset,
    target: xr.Dataset,
    run_config: dict[str, Any],
    *,
    checkpoint: Path | str | None = None,
    logger: logging.Logger | None = None,
    iterates: dict[int, torch.Tensor] | None = None,
    progress: JobProgress | None = None,
) -> xr.Dataset:
    """Train one run from the target file's W0 and return the run Dataset (ARCHITECTURE.md, file 3).

    data: the run's data set; target: its target file (W0, a, W*, theory scalars). If
    ``checkpoint`` names an existing checkpoint of the same resolved config, training resumes
    from it with the same iterates as an uninterrupted run; one is written there every
    ``training.checkpoint_every`` steps. It is left in place afterwards: the caller deletes it
    once the returned Dataset is safely written. A diverged run (non-finite weights, or a loss
    that is non-finite or above DIVERGENCE_LOSS_RATIO times its value at W0) stops early:
    ``diverged`` = 1, ``diverged_step`` = the first bad step, and the ``step``
    dimension ends at the last recorded step before it (every stored value is finite).
    ``iterates``, if given, receives a float64 CPU copy of W at every recorded step (tests).
    ``progress``, if given, gets the run's start, every chunk and its end (terminal lines).
    """
    return train_runs(
        [data],
        [target],
        [run_config],
        checkpoints=[checkpoint],
        logger=logger,
        iterates=[iterates],
        progress=progress,
    )[0]


def batch_key(data: Dataset, run_config: dict[str, Any]) -> tuple:
    """Runs with equal keys can be trained side by side by ``train_runs``: the same training
    inputs (bytes of X_train), the same ``training`` section and the same bias. Seeds, swept model
    settings (they change W0 only) and label noise (it changes y only) may differ."""
    model = run_config.get("model", {})
    return (
        data.X_train.numpy().tobytes(),
        json.dumps(run_config.get("training"), sort_keys=True),
        bool(model.get("bias")) if isinstance(model, dict) else None,
        run_config.get("width"),
    )


def train_runs(
    datas: list[Dataset],
    targets: list[xr.Dataset],
    run_configs: list[dict[str, Any]],
    *,
    checkpoints: list[Path | str | None] | None = None,
    logger: logging.Logger | None = None,
    iterates: list[dict[int, torch.Tensor] | None] | None = None,
    progress: JobProgress | None = None,
) -> list[xr.Dataset]:
    """Train S runs of one width side by side (a seed batch) and return their run Datasets, in
    order.

    Every run is what ``train_run`` would make of it alone, iterate for iterate and bit for bit
    (tests/training/test_seed_batch.py): the batch shares each step's call of the compiled step (one
    (S, m, p) weight tensor), not its numbers. The runs must share their training inputs X and
    their ``training`` settings (``batch_key``); each keeps its own target (W0, a, W*), labels y,
    test data, checkpoint, divergence and records. Runs whose checkpoints stand at different steps
    are trained in one batch per starting step. ``wall_time_s`` of each run is the time of the
    batch it was trained in.
    """
    logger = logger or logging.getLogger(__name__)
    count = len(run_configs)
    if not (count and len(datas) == len(targets) == count):
        raise ValueError(
            f"need as many data sets and targets as run configs, got {len(datas)}, "
            f"{len(targets)} and {count}"
        )
    checkpoints = list(checkpoints) if checkpoints is not None else [None] * count
    iterates = list(iterates) if iterates is not None else [None] * count
    settings = TrainSettings.from_run_config(run_configs[0])
    key = batch_key(datas[0], run_configs[0])
    for index, (data, config) in enumerate(zip(datas, run_configs, strict=True)):
        TrainSettings.from_run_config(config)  # each run's settings checked (errors name the key)
        if batch_key(data, config) != key:
            raise ValueError(
                f"run {index} of the batch differs from run 0 in its training inputs or settings "
                f"(data X, training section, bias or width); train it separately"
            )
    device = _device(settings.accelerator)
    m, p = (int(targets[0].sizes[d]) for d in ("neuron", "weight_dim"))
    n, n_test = datas[0].X_train.shape[0], max(d.X_test.shape[0] for d in datas)
    check_fits(n, m, p, settings.dtype, n_test, device, runs=count)
    if device.type == "cuda":
        check_fits(
            n, m, p, settings.dtype, n_test, torch.device("cpu"), runs=count
        )  # recording runs on the host
    runs = []
    for data, target, config, path, seen in zip(
        datas, targets, run_configs, checkpoints, iterates, strict=True
    ):
        config_json = json.dumps(config, sort_keys=True, allow_nan=False)
        min_norm = load_target(target, data)
        metrics = RunMetrics(min_norm, data, bool(data.meta.get("pm1_labels", False)))
        state = load_checkpoint(Path(path), config_json, (m, p), logger) if path else None
        if state is not None:
            logger.info("resuming from checkpoint %s at step %d", path, state.step)
        else:
            state = TrainingState(step=0, W=min_norm.W0, records=[(0, metrics(min_norm.W0))])
            if seen is not None:
                seen[0] = min_norm.W0.clone()
        runs.append(
            _Run(
                data,
                target,
                config,
                config_json,
                min_norm,
                metrics,
                state,
                Path(path) if path else None,
                seen,
            )
        )
    results: dict[int, xr.Dataset] = {}
    for start in sorted({run.state.step for run in runs}):
        group = [i for i, run in enumerate(runs) if run.state.step == start]
        diverged, wall, gd_step = _train_group(
            [runs[i] for i in group], settings, device, logger, progress
        )
        for i, bad, seconds in zip(group, diverged, wall, strict=True):
            run = runs[i]
            records = [
                (step, values) for step, values in run.state.records if bad is None or step < bad
            ]
            results[i] = _run_dataset(
                records,
                run.target,
                run.config,
                settings,
                bad,
                seconds,
                _device_name(device),
                run.config_json,
            )
            results[i].attrs["gd_step"] = gd_step  # the step's implementation (gd_step.select_step)
    return [results[i] for i in range(count)]


def _run_names(run_configs: list[dict[str, Any]], m: int) -> str:
    """Terminal name of a batch: "exp m1000 s0" for one run, "exp m1000 s0,1,2 (3 runs)" for
    several."""
    seeds = ",".join(dict.fromkeys(str(c.get("seed", "")) for c in run_configs))
    name = f"{run_configs[0].get('experiment', '')} m{m} s{seeds}".strip()
    return name if len(run_configs) == 1 else f"{name} ({len(run_configs)} runs)"


def _train_group(
    runs: list[_Run],
    settings: TrainSettings,
    device: torch.device,
    logger: logging.Logger,
    progress: JobProgress | None,
) -> tuple[list[int | None], list[float], str]:
    """GD for runs whose states stand at the same step; returns each run's diverged step (None:
    did not diverge) and training time, and the step's implementation (``GDSystem.step_path``).
    One run trains as an (m, p) network, several as a batch."""
    dtype = DTYPES[settings.dtype]
    count = len(runs)
    bias = bool(runs[0].target.attrs["bias"])
    record = recording_steps(settings.steps, settings.record_every, settings.log_points)
    W0 = torch.stack([run.state.W for run in runs]).to(dtype)
    a = torch.stack([run.min_norm.a for run in runs]).to(dtype)
    y = torch.stack([run.data.y_train for run in runs]).to(dtype)
    if count == 1:
        W0, a, y = W0[0], a[0], y[0]
    model = TwoLayerReLU(W0, a, bias)
    start = runs[0].state.step
    boundaries = _chunk_boundaries(start, settings, record)
    limits = [_loss_limit(run.min_norm, run.data, bias, settings, dtype) for run in runs]
    system = GDSystem(
        model,
        lr=settings.lr,
        loss=settings.loss,
        step_impl=settings.step_impl,
        boundaries=boundaries,
        loss_limit=limits,
    )
    datamodule = FullBatchData(runs[0].data.X_train.to(dtype), y, len(boundaries) - 1)
    recorder = _Recorder(runs, settings, set(record), logger, progress)
    m = model.W.shape[-2]
    together = f", {count} runs side by side" if count > 1 else ""
    logger.info(
        "training width %d, %d steps, lr %g, %s loss, %s, %s step on %s%s",
        m,
        settings.steps,
        settings.lr,
        settings.loss,
        settings.dtype,
        settings.step_impl,
        _device_name(device),
        together,
    )
    if progress is not None:
        progress.start_run(
            _run_names([run.config for run in runs], m), settings.steps, start, runs=count
        )
    recorder.start()
    if len(boundaries) > 1:
        trainer = make_trainer(settings.accelerator, [recorder])
        with quiet_lightning():
            trainer.fit(system, datamodule=datamodule)
    wall = [recorder.elapsed(run) for run in runs]
    logger.info("GD steps computed by the %s step", system.step_description())
    for index, bad in enumerate(system.diverged_steps):
        if bad is not None:
            which = f"run {index + 1}/{count} of the batch " if count > 1 else "run "
            logger.warning(
                "%sdiverged at step %d (loss non-finite or above %g x its initial value, or "
                "non-finite weights); stopped",
                which,
                bad,
                DIVERGENCE_LOSS_RATIO,
            )
    if progress is not None:
        bad = [b for b in system.diverged_steps if b is not None]
        note = (
            "done"
            if not bad
            else f"diverged at step {bad[0]}"
            if count == 1
            else f"{len(bad)} diverged"
        )
        progress.end_run(max(run.state.step for run in runs), note)
    return list(system.diverged_steps), wall, system.step_path


def _setting_coords(swept: dict[str, Any]) -> dict[str, tuple]:
    """Scalar coordinates of the run's swept settings (`{"model.kappa": 0.1}` -> `model_kappa`),
    each marked with its key in attr `sweep_key` (minnorm.analysis.collect.SETTING_ATTR)."""
    coords = {}
    for key, value in sorted(swept.items()):
        attrs = {"long_name": f"swept setting {key}", SETTING_ATTR: key}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs["units"] = "1"  # a number; flags and text have no units (CF)
        coords[setting_dim(key)] = ((), np.asarray(value), attrs)
    return coords


def _run_dataset(
    records: list[tuple[int, dict[str, float]]],
    target: xr.Dataset,
    run_config: dict[str, Any],
    settings: TrainSettings,
    diverged_step: int | None,
    wall_time: float,
    device: str,
    config_json: str,
) -> xr.Dataset:
    """Assemble the run file's Dataset from the records and the target's scalars."""
    steps = np.array([s for s, _ in records], dtype=np.int64)
    variables: dict[str, xr.Variable] = {}
    for name, (long_name, units) in TRAJECTORIES.items():
        values = np.array([r[name] for _, r in records], dtype=np.float64)
        variables[name] = xr.Variable(("step",), values, {"long_name": long_name, "units": units})
    for name in TARGET_SCALARS + TARGET_SPECTRA:
        variables[name] = target[name].variable.copy(deep=True)
        variables[name].attrs = variable_attrs(name)
    scalars = {
        "wall_time_s": (
            np.float64(wall_time),
            "wall-clock training time, summed over resumed segments (runs trained "
            "side by side share the time of their batch)",
            {"units": "s"},
        ),
        "diverged": (
            np.int8(diverged_step is not None),
            f"1 if the loss became non-finite or > "
            f"{DIVERGENCE_LOSS_RATIO:g} x its initial value, or the weights non-finite",
            flag_attrs(("not_diverged", "diverged")),
        ),
        "diverged_step": (
            np.int64(-1 if diverged_step is None else diverged_step),
            "first step whose loss or weights were bad (-1: none)",
            {"units": "1"},
        ),
        "final_step": (np.int64(steps[-1]), "last recorded step", {"units": "1"}),
    }
    for name, (value, long_name, attrs) in scalars.items():
        variables[name] = xr.Variable((), value, {"long_name": long_name, **attrs})
    coords = {
        "step": ("step", steps, {"long_name": "gradient descent step", "units": "1"}),
        "eig": eig_coordinate(int(target.sizes["eig"])),
        "width": (
            (),
            np.int64(run_config["width"]),
            {"long_name": "width m (number of neurons)", "units": "1"},
        ),
        "seed": ((), np.int64(run_config["seed"]), {"long_name": "run seed", "units": "1"}),
        "label_noise": (
            (),
            np.float64(run_config["label_noise"]),
            {"long_name": "label noise fraction", "units": "1"},
        ),
        "lr": ((), np.float64(settings.lr), {"long_name": "learning rate", "units": "1"}),
        **_setting_coords(run_config.get("sweep", {})),
    }
    attrs = {
        "Conventions": CF_CONVENTIONS,
        "experiment": str(run_config.get("experiment", "")),
        "loss": settings.loss,
    }
    attrs.update(provenance_attrs(device=device, dtype=settings.dtype))
    attrs["config"] = config_json
    return xr.Dataset(variables, coords=coords, attrs=attrs)
