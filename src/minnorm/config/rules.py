"""Domain rules of a schema-valid config: what JSON Schema cannot express.

Each data set and figure states its own requirements in its registry entry
(`minnorm.data.registry.DATASETS[name].problems`, `minnorm.figures.FIGURES[name].problems`):
classes present in the data set, enough examples for n_train + n_test, dim >= 2 for
sphere_quadratic, an existing (non-empty) data folder, figures that fit the sweep. This module
applies them to every experiment and adds the rules that span data and sweep. Every message
starts with the key path of the offending value.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from minnorm.config.experiment import ExperimentConfig
from minnorm.config.figure_registry import FIGURES
from minnorm.config.run_config import (
    DEFAULT_LEAK,
    LEAK_ACTIVATION,
    ModelSettings,
    TrainingSettings,
    read_section,
)
from minnorm.config.schema import dataset_keys, schema_problems
from minnorm.config.schema_file import block_properties, read_schema_file
from minnorm.config.sweep import (
    MAX_SETTING_TAG_BYTES,
    setting_sweeps,
    split_key,
    sweep_key_problem,
    sweep_text_problem,
    tag_length,
)
from minnorm.data.registry import DATASETS, pm1_datasets

# Most steps a training run may visit for one purpose (recording, checkpointing or logging): the
# job lists these steps up front, and a recorded step keeps eleven float64 values in memory (and
# in the run file), so steps / interval must stay well below what a host holds.
MAX_POINTS_PER_INTERVAL = 1_000_000
# The schema's default of training.record.log_points: accepted even for shorter runs, where the
# extra log-spaced points only repeat steps.
DEFAULT_LOG_POINTS = 40
# horizon / lr must be a whole number of steps to this relative tolerance (0.3 / 0.1 is
# 2.9999999999999996 in floating point, and means 3 steps).
HORIZON_RTOL = 1e-9
# The outputs at W0 are f(x) = sum_r a_r relu(w_r . x~) / sqrt(m) with w_r . x~ ~ N(0, (kappa
# |x~|)^2): bounded here by kappa |x~| OUTPUT_Z sqrt(m) (every unit at OUTPUT_Z standard
# deviations, a worst case no draw reaches), and the loss by n times its square. The training
# dtype must hold LOSS_HEADROOM times that bound: the divergence limit is 10 x the loss at W0,
# and the first steps may raise it further before the limit stops them.
OUTPUT_Z = 10.0
LOSS_HEADROOM = 1e4


def experiment_problems(name: str, block: dict[str, Any]) -> list[str]:
    """Mistakes in one schema-valid experiment (defaults filled), one message each."""
    where = f"experiments.{name}"
    experiment = ExperimentConfig.from_mapping(name, block)
    data = experiment.data
    spec = DATASETS[data.name]
    problems = list(spec.problems(f"{where}.data", data))
    for key, owners in dataset_keys().items():
        if key in data.options and spec.name not in owners:
            problems.append(
                f"{where}.data.{key}: only for {', '.join(owners)} "
                f"({spec.name} does not read it); remove it"
            )
    noisy = [p for p in experiment.sweep.label_noise if p > 0]
    if noisy and not spec.pm1_labels:
        problems.append(
            f"{where}.sweep.label_noise: values > 0 ({noisy}) need +-1 labels; "
            f"allowed only for {', '.join(pm1_datasets())} (use [0.0] for {spec.name})"
        )
    problems.extend(leak_problems(where, experiment))
    for figure in experiment.figures:
        problems.extend(FIGURES[figure].problems(where, experiment))
    for lr in experiment.sweep.lr:
        found = horizon_problems(f"{where}.training", experiment.training, lr)
        if not found:
            found = training_problems(f"{where}.training", experiment.training.for_lr(lr))
        problems.extend(p for p in found if p not in problems)
    problems.extend(
        kappa_problems(
            f"{where}.model.kappa",
            experiment.model,
            experiment.training.dtype,
            n=max(data.n_train, data.n_test),
            width=max(experiment.sweep.width, default=1),
            input_norm=spec.max_input_norm * (math.sqrt(2.0) if experiment.model.bias else 1.0),
        )
    )
    return problems


def max_steps() -> int:
    """The most GD steps a run may take: the schema's bound of `training.steps`."""
    bound: int = block_properties(read_schema_file(), "training")["steps"]["maximum"]
    return bound


def horizon_problems(where: str, training: TrainingSettings, lr: float) -> list[str]:
    """Why `training.horizon` cannot set the steps of a run at learning rate `lr` ([] when it
    can, or when no horizon is set): less than one step, or more steps than `training.steps`
    may be. `where`: the key path of the training block. A horizon that is not a whole number
    of steps is rounded, with a warning (`horizon_warnings`)."""
    horizon = training.horizon
    if horizon is None:
        return []
    at = f"{where}.horizon"
    ratio = horizon / lr
    steps = round(ratio)
    if ratio < 1.0 - HORIZON_RTOL:
        return [
            f"{at}: {horizon!r} is less than one step at lr {lr!r} (horizon / lr = {ratio:.6g}); "
            f"the horizon is lr * steps, so use at least {lr!r}"
        ]
    if steps > max_steps():
        return [
            f"{at}: {horizon!r} at lr {lr!r} makes {steps} steps, more than the {max_steps()} "
            "a run may take (the bound of training.steps); use a smaller horizon or a larger lr"
        ]
    return []


def horizon_warnings(name: str, block: dict[str, Any]) -> list[str]:
    """One warning per (horizon, lr) of a valid experiment (defaults filled) whose horizon / lr is
    not a whole number of steps (relative tolerance HORIZON_RTOL): the runs at that lr take
    round(horizon / lr) steps, so their gradient-flow time differs from the horizon; each
    names the key path of the horizon (written or swept) and the steps the runs take."""
    where = f"experiments.{name}"
    experiment = ExperimentConfig.from_mapping(name, block)
    horizons = []
    if experiment.training.horizon is not None:
        horizons.append((f"{where}.training.horizon", experiment.training.horizon))
    swept = setting_sweeps(read_section(block, "sweep", where)).get("training.horizon", [])
    horizons.extend((f"{where}.sweep.training.horizon[{i}]", v) for i, v in enumerate(swept))
    warnings = []
    for at, horizon in horizons:
        for lr in experiment.sweep.lr:
            ratio = horizon / lr
            steps = max(1, round(ratio))
            if abs(ratio - steps) > HORIZON_RTOL * ratio:
                warnings.append(
                    f"{at}: {horizon!r} is not a whole number of steps at lr {lr!r} (horizon / "
                    f"lr = {ratio!r}); the runs at that lr take {steps} steps, a gradient-flow "
                    f"time of {steps * lr:.12g}"
                )
    return warnings


def kappa_problems(
    where: str, model: ModelSettings, dtype: str, *, n: int, width: int, input_norm: float
) -> list[str]:
    """Why `model.kappa` is not representable in the training dtype `dtype` at these sizes ([]
    when it is): the initial weights (std kappa) underflow below the dtype's smallest normal
    number, or the network's outputs and loss at W0 (`n` points of norm at most `input_norm`,
    the largest width `width`) may overflow it (bound: OUTPUT_Z, LOSS_HEADROOM)."""
    info = np.finfo(np.dtype(dtype))
    kappa = model.kappa
    tiny, top = float(info.tiny), float(info.max)
    if kappa < tiny:
        return [
            f"{where}: {kappa!r} is below the smallest normal {dtype} number ({tiny:.3g}): the "
            "initial weights underflow (to 0 or denormals) and the runs cannot move; use a "
            f"larger kappa{' (or training.dtype float64)' if dtype != 'float64' else ''}"
        ]
    output = kappa * input_norm * OUTPUT_Z * math.sqrt(width)
    loss = n * output * output
    if not math.isfinite(loss) or LOSS_HEADROOM * loss > top:
        limit = math.sqrt(top / (LOSS_HEADROOM * n)) / (input_norm * OUTPUT_Z * math.sqrt(width))
        return [
            f"{where}: {kappa!r} makes the network's outputs at initialization up to "
            f"{output:.3g} (width {width}, {n} points), whose loss can overflow {dtype} "
            f"(largest {top:.3g}); use kappa <= {limit:.6g}"
        ]
    return []


def sweep_setting_problems(name: str, block: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Mistakes in the swept settings of one schema-valid experiment (defaults filled).

    A key must name a scalar setting of data, model or training that changes numbers
    (`minnorm.config.sweep.sweep_key_problem`); each of its values is checked as if it were
    written at that key (schema and domain rules), and a problem it causes is reported at
    `sweep.<key>[i]`.
    """
    where = f"experiments.{name}"
    experiment = ExperimentConfig.from_mapping(name, block)
    sweeps = setting_sweeps(read_section(block, "sweep", where))
    if not sweeps:
        return []
    base = set(experiment_problems(name, block))
    problems = []
    for key, values in sweeps.items():
        section, field = split_key(key)
        at = f"{where}.sweep.{key}"
        known = schema["$defs"][section]["properties"]
        why = sweep_key_problem(key, known, experiment.training.horizon is not None)
        if why is not None:
            problems.append(f"{at}: {why}")
            continue
        for i, value in enumerate(values):
            text_problem = sweep_text_problem(value)
            if text_problem is not None:
                problems.append(f"{at}[{i}]: {text_problem}")
                continue
            # The YAML boundary: the value is written into a copy of the experiment's mapping
            # and validated as if it had been written there.
            trial = copy.deepcopy(block)
            trial[section][field] = value
            found = schema_problems({"experiments": {name: trial}}, schema)
            found = found or [p for p in experiment_problems(name, trial) if p not in base]
            target = f"{where}.{section}.{field}"
            problems.extend(
                p.replace(target, f"{at}[{i}]", 1)
                if p.startswith(target)
                else f"{at}[{i}] = {value!r}: {p}"
                for p in found
            )
    size = tag_length({key: tuple(values) for key, values in sweeps.items()})
    if size > MAX_SETTING_TAG_BYTES:
        problems.append(
            f"{where}.sweep: the swept settings {', '.join(sweeps)} make file names "
            f"{size} bytes longer, more than the {MAX_SETTING_TAG_BYTES} allowed (255-byte limit "
            "of a file name); sweep fewer settings or use shorter values"
        )
    return problems


def leak_problems(where: str, experiment: ExperimentConfig) -> list[str]:
    """`model.leak` is leaky_relu's slope: refused when written (a value other than the default)
    while no run uses leaky_relu, and when swept while any run uses another activation (those
    runs would repeat each other under different names)."""
    activations = experiment.sweep.values("model.activation") or (experiment.model.activation,)
    others = sorted({a for a in activations if a != LEAK_ACTIVATION})
    problems = []
    if experiment.sweep.values("model.leak") and others:
        problems.append(
            f"{where}.sweep.model.leak: the slope is used by {LEAK_ACTIVATION} only, and the "
            f"runs with model.activation {', '.join(others)} would repeat each other; sweep it "
            f"in an experiment whose activation is {LEAK_ACTIVATION}"
        )
    elif experiment.model.leak != DEFAULT_LEAK and LEAK_ACTIVATION not in activations:
        problems.append(
            f"{where}.model.leak: the slope is used by {LEAK_ACTIVATION} only, and "
            f"model.activation is {', '.join(others)}; remove it or set model.activation: "
            f"{LEAK_ACTIVATION}"
        )
    return problems


def training_problems(where: str, training: TrainingSettings) -> list[str]:
    """Counts that are bounded by `training.steps`, so that none can exhaust the job's memory.

    `record.log_points` log-spaced points between 1 and `steps` are computed as an array
    (np.geomspace) before rounding, yet name at most `steps` distinct steps: more than
    max(steps, the default 40) is refused. An interval (`record.every`, `checkpoint_every`,
    `progress_every`) may not mark more than MAX_POINTS_PER_INTERVAL steps.
    """
    steps = training.steps_at(training.lr)
    problems = []
    log_points = training.record.log_points
    if log_points > max(steps, DEFAULT_LOG_POINTS):
        problems.append(
            f"{where}.record.log_points: {log_points} exceeds training.steps = {steps}; there are "
            f"at most {steps} distinct log-spaced steps (use <= {max(steps, DEFAULT_LOG_POINTS)})"
        )
    for key, every in (
        ("record.every", training.record.every),
        ("checkpoint_every", training.checkpoint_every),
        ("progress_every", training.progress_every),
    ):
        if every > 0 and steps // every > MAX_POINTS_PER_INTERVAL:
            problems.append(
                f"{where}.{key}: {every} marks {steps // every} of the {steps} steps; at most "
                f"{MAX_POINTS_PER_INTERVAL} are allowed "
                f"(use >= {-(-steps // MAX_POINTS_PER_INTERVAL)})"
            )
    return problems


def name_problems(names: list[str]) -> list[str]:
    """Experiment names must differ in more than case: each becomes a folder results/<name>/,
    and on case-insensitive file systems (macOS, Windows) `Sweep` and `sweep` are one folder."""
    first: dict[str, str] = {}
    problems = []
    for name in names:
        other = first.setdefault(name.casefold(), name)
        if other != name:
            problems.append(
                f"experiments.{name}: differs from experiments.{other} only in case; both would "
                "write results/<name>/, which is one folder on case-insensitive file systems"
            )
    return problems
