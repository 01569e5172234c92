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
import re

from minnorm.config.figure_registry import FIGURES
from minnorm.config.schema import dataset_keys, schema_problems
from minnorm.config.sweep import run_steps, setting_sweeps, setting_tag
from minnorm.data.registry import DATASETS, pm1_datasets

# Most steps a training run may visit for one purpose (recording, checkpointing or logging): the
# job lists these steps up front, and a recorded step keeps eleven float64 values in memory (and
# in the run file), so steps / interval must stay well below what a host holds.
MAX_POINTS_PER_INTERVAL = 1_000_000
# Settings a sweep may not name, and why.
NOT_SWEEPABLE: dict[str, str] = {
    "training.lr": "sweep the learning rate with sweep.lr",
    "data.name": "a data set is chosen per experiment; define one experiment per data set",
    "training.progress_every": "changes no number; the runs would repeat each other",
    "training.checkpoint_every": "changes no number; the runs would repeat each other",
}
# A swept text value becomes part of file names (`data_labels=center`): plain characters only.
SWEEP_TEXT = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
# Longest part of a file name the swept settings may take (`_model_kappa=0.1...`,
# minnorm.workflow.plan
# .setting_tag). The rest of the longest name, a run's done file as the temporary file of an
# atomic write (s<seed>_p<noise>_lr<lr>.done.nc.tmp-<pid>), is at most about 100 bytes, so the
# whole name stays below the 255-byte limit of a file name.
MAX_SETTING_TAG_BYTES = 140
# The schema's default of training.record.log_points: accepted even for shorter runs, where the
# extra log-spaced points only repeat steps.
DEFAULT_LOG_POINTS = 40


def experiment_problems(name: str, experiment: dict) -> list[str]:
    """Mistakes in one schema-valid experiment (defaults filled), one message each."""
    where = f"experiments.{name}"
    data = experiment["data"]
    spec = DATASETS[data["name"]]
    problems = list(spec.problems(f"{where}.data", data))
    for key, owners in dataset_keys().items():
        if key in data and spec.name not in owners:
            problems.append(
                f"{where}.data.{key}: only for {', '.join(owners)} "
                f"({spec.name} does not read it); remove it"
            )
    noisy = [p for p in experiment["sweep"]["label_noise"] if p > 0]
    if noisy and not spec.pm1_labels:
        problems.append(
            f"{where}.sweep.label_noise: values > 0 ({noisy}) need +-1 labels; "
            f"allowed only for {', '.join(pm1_datasets())} (use [0.0] for {spec.name})"
        )
    for figure in experiment["figures"]:
        problems.extend(FIGURES[figure].problems(where, experiment))
    training = experiment["training"]
    for lr in experiment["sweep"].get("lr", [training["lr"]]):
        per_lr = dict(training, steps=run_steps(training, lr))
        problems.extend(
            p for p in training_problems(f"{where}.training", per_lr) if p not in problems
        )
    return problems


def sweep_setting_problems(name: str, experiment: dict, schema: dict) -> list[str]:
    """Mistakes in the swept settings of one schema-valid experiment (defaults filled).

    A key must name a scalar setting of data, model or training that changes numbers; each of
    its values is checked as if it were written at that key (schema and domain rules), and a
    problem it causes is reported at `sweep.<key>[i]`.
    """
    where = f"experiments.{name}"
    sweeps = setting_sweeps(experiment)
    if not sweeps:
        return []
    base = set(experiment_problems(name, experiment))
    problems = []
    for key, values in sweeps.items():
        section, field = key.split(".", 1)
        at = f"{where}.sweep.{key}"
        known = schema["$defs"][section]["properties"]
        if key in NOT_SWEEPABLE:
            problems.append(f"{at}: cannot be swept: {NOT_SWEEPABLE[key]}")
            continue
        if field not in known:
            problems.append(
                f"{at}: {section} has no setting {field!r}; settings: {', '.join(sorted(known))}"
            )
            continue
        if "properties" in known[field] or known[field].get("type") in ("object", "array"):
            problems.append(f"{at}: {section}.{field} is not a single value and cannot be swept")
            continue
        if key == "training.steps" and experiment["training"].get("horizon") is not None:
            problems.append(
                f"{at}: training.horizon sets the steps of every run; sweep one of them"
            )
            continue
        for i, value in enumerate(values):
            if isinstance(value, str) and not SWEEP_TEXT.fullmatch(value):
                problems.append(
                    f"{at}[{i}]: {value!r} must be 1-64 letters, digits or _.+- "
                    "(it becomes part of file names)"
                )
                continue
            trial = copy.deepcopy(experiment)
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
    problems.extend(_tag_length_problems(where, experiment))
    return problems


def _tag_length_problems(where: str, experiment: dict) -> list[str]:
    """The swept settings' longest file-name part must fit MAX_SETTING_TAG_BYTES."""
    sweeps = setting_sweeps(experiment)
    longest = {
        key: max(values, key=lambda v: len(setting_tag({key: v}).encode()))
        for key, values in sweeps.items()
    }
    size = len(setting_tag(longest).encode())
    if size <= MAX_SETTING_TAG_BYTES:
        return []
    return [
        f"{where}.sweep: the swept settings {', '.join(sweeps)} make file names "
        f"{size} bytes longer, more than the {MAX_SETTING_TAG_BYTES} allowed (255-byte limit "
        "of a file name); sweep fewer settings or use shorter values"
    ]


def training_problems(where: str, training: dict) -> list[str]:
    """Counts that are bounded by `training.steps`, so that none can exhaust the job's memory.

    `record.log_points` log-spaced points between 1 and `steps` are computed as an array
    (np.geomspace) before rounding, yet name at most `steps` distinct steps: more than
    max(steps, the default 40) is refused. An interval (`record.every`, `checkpoint_every`,
    `progress_every`) may not mark more than MAX_POINTS_PER_INTERVAL steps.
    """
    steps = training["steps"]
    problems = []
    log_points = training["record"]["log_points"]
    if log_points > max(steps, DEFAULT_LOG_POINTS):
        problems.append(
            f"{where}.record.log_points: {log_points} exceeds training.steps = {steps}; there are "
            f"at most {steps} distinct log-spaced steps (use <= {max(steps, DEFAULT_LOG_POINTS)})"
        )
    for key, every in (
        ("record.every", training["record"]["every"]),
        ("checkpoint_every", training["checkpoint_every"]),
        ("progress_every", training["progress_every"]),
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
