"""Domain rules of a schema-valid config: what JSON Schema cannot express.

Each data set and figure states its own requirements in its registry entry
(`minnorm.data.registry.DATASETS[name].problems`, `minnorm.figures.FIGURES[name].problems`):
classes present in the data set, enough examples for n_train + n_test, dim >= 2 for
sphere_quadratic, an existing (non-empty) data folder, figures that fit the sweep. This module
applies them to every experiment and adds the rules that span data and sweep. Every message
starts with the key path of the offending value.
"""

from __future__ import annotations

from minnorm.config_schema import dataset_keys
from minnorm.data.registry import DATASETS, pm1_datasets
from minnorm.figures import FIGURES

# Most steps a training run may visit for one purpose (recording, checkpointing or logging): the
# job lists these steps up front, and a recorded step keeps eleven float64 values in memory (and
# in the run file), so steps / interval must stay well below what a host holds.
MAX_POINTS_PER_INTERVAL = 1_000_000
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
            problems.append(f"{where}.data.{key}: only for {', '.join(owners)} "
                            f"({spec.name} does not read it); remove it")
    noisy = [p for p in experiment["sweep"]["label_noise"] if p > 0]
    if noisy and not spec.pm1_labels:
        problems.append(
            f"{where}.sweep.label_noise: values > 0 ({noisy}) need +-1 labels; "
            f"allowed only for {', '.join(pm1_datasets())} (use [0.0] for {spec.name})"
        )
    for figure in experiment["figures"]:
        problems.extend(FIGURES[figure].problems(where, experiment))
    problems.extend(training_problems(f"{where}.training", experiment["training"]))
    return problems


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
    for key, every in (("record.every", training["record"]["every"]),
                       ("checkpoint_every", training["checkpoint_every"]),
                       ("progress_every", training["progress_every"])):
        if every > 0 and steps // every > MAX_POINTS_PER_INTERVAL:
            problems.append(
                f"{where}.{key}: {every} marks {steps // every} of the {steps} steps; at most "
                f"{MAX_POINTS_PER_INTERVAL} are allowed (use >= {-(-steps // MAX_POINTS_PER_INTERVAL)})"
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

