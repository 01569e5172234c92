"""Domain rules of a schema-valid config: what JSON Schema cannot express.

Each data set and figure states its own requirements in its registry entry
(`minnorm.data.registry.DATASETS[name].problems`, `minnorm.figures.FIGURES[name].problems`):
classes present in the data set, enough examples for n_train + n_test, dim >= 2 for
sphere_quadratic, an existing (non-empty) data folder, figures that fit the sweep. This module
applies them to every experiment and adds the rules that span data and sweep. Every message
starts with the key path of the offending value.
"""

from __future__ import annotations

from minnorm.data.registry import DATASETS, pm1_datasets
from minnorm.figures import FIGURES


def experiment_problems(name: str, experiment: dict) -> list[str]:
    """Mistakes in one schema-valid experiment (defaults filled), one message each."""
    where = f"experiments.{name}"
    data = experiment["data"]
    spec = DATASETS[data["name"]]
    problems = list(spec.problems(f"{where}.data", data))
    noisy = [p for p in experiment["sweep"]["label_noise"] if p > 0]
    if noisy and not spec.pm1_labels:
        problems.append(
            f"{where}.sweep.label_noise: values > 0 ({noisy}) need +-1 labels; "
            f"allowed only for {', '.join(pm1_datasets())} (use [0.0] for {spec.name})"
        )
    for figure in experiment["figures"]:
        problems.extend(FIGURES[figure].problems(where, experiment))
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

