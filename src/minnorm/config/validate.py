"""Validate the workflow config: strict YAML, the JSON schema, then the domain rules.

The pieces live by concept: `minnorm.config.yaml_reader` reads config files strictly (syntax errors
with file, line and column; duplicate keys refused), `minnorm.config.schema` holds the schema
(package data, enums from the registries) and its messages, `minnorm.config.rules` the rules
JSON Schema cannot express. The typed run config built from the result is in
`minnorm.config.run_config` (`minnorm.config.experiment` for an experiment).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from typing import Any

from minnorm.config.rules import (
    experiment_problems,
    horizon_warnings,
    name_problems,
    sweep_setting_problems,
)
from minnorm.config.schema import ConfigError, describe_type, key_path, load_schema, schema_problems
from minnorm.config.sweep import RUN_SWEEP_KEYS

__all__ = [
    "MAX_RUNS",
    "MAX_RUNS_ENV",
    "ConfigError",
    "config_warnings",
    "key_path",
    "load_schema",
    "run_count",
    "validate_config",
]

# Most runs one config may make (all experiments together); planning costs time and memory per
# run, and a sweep this large is usually a typo (one list too many). The environment variable
# MAX_RUNS_ENV raises (or lowers) the cap for one invocation.
MAX_RUNS = 100_000
MAX_RUNS_ENV = "MINNORM_MAX_RUNS"


def max_runs_from(environ: Mapping[str, str]) -> int:
    """The cap on runs per config: MAX_RUNS_ENV when set to a positive integer, else MAX_RUNS;
    ConfigError naming the variable when it is set to anything else."""
    text = environ.get(MAX_RUNS_ENV, "").strip()
    if not text:
        return MAX_RUNS
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{MAX_RUNS_ENV}={text!r}: must be a positive whole number of runs")
    return int(text)


def run_count(experiment: Mapping[str, Any]) -> tuple[int, str]:
    """Runs a validated experiment makes (the product of its sweep lists) and that product in
    words ("3 width x 2 seed x 1 label_noise x 1 lr")."""
    sweep = experiment["sweep"]
    sizes = {key: len(sweep.get(key, [None])) for key in RUN_SWEEP_KEYS}
    sizes.update((key, len(values)) for key, values in sweep.items() if key not in sizes)
    count = math.prod(sizes.values())
    return count, " x ".join(f"{n} {key}" for key, n in sizes.items())


def sweep_size_problems(resolved: dict, cap: int) -> list[str]:
    """One problem per experiment when the config's runs exceed `cap` (largest first), naming
    `experiments.<name>.sweep`, its run count and the total."""
    counts = {name: run_count(e) for name, e in resolved["experiments"].items()}
    total = sum(count for count, _ in counts.values())
    if total <= cap:
        return []
    return [
        f"experiments.{name}.sweep: makes {count} runs ({words}); the config makes {total} in "
        f"all, more than the {cap} allowed (set {MAX_RUNS_ENV} to raise the cap)"
        for name, (count, words) in sorted(counts.items(), key=lambda item: -item[1][0])
    ]


def _steps_and_horizon(config: dict) -> list[str]:
    """`training.steps` and `training.horizon` both given, written or swept (one would silently
    win), or neither (steps: null without a horizon)."""
    problems = []
    experiments = config.get("experiments")
    for name, experiment in experiments.items() if isinstance(experiments, dict) else ():
        training = experiment.get("training") if isinstance(experiment, dict) else None
        sweep = experiment.get("sweep") if isinstance(experiment, dict) else None
        sweep = sweep if isinstance(sweep, dict) else {}
        if "training.horizon" in sweep and (
            "training.steps" in sweep
            or (isinstance(training, dict) and training.get("steps") is not None)
        ):
            where = "sweep.training.steps" if "training.steps" in sweep else "training.steps"
            problems.append(
                f"experiments.{name}.sweep.training.horizon: sets the steps of each run "
                f"(round(horizon / lr)), so {where} would be ignored; remove {where} or the "
                "swept horizon"
            )
        if not isinstance(training, dict):
            continue
        horizon, steps = training.get("horizon"), training.get("steps")
        if steps is not None and horizon is not None:
            problems.append(
                f"experiments.{name}.training.horizon: sets the steps of each run "
                "(round(horizon / lr)); remove training.steps or the horizon"
            )
        if "steps" in training and steps is None and horizon is None:
            problems.append(
                f"experiments.{name}.training.steps: null needs training.horizon; "
                "give a number of steps"
            )
    return problems


def _fill_run_defaults(experiment: dict[str, Any], written: dict[str, Any]) -> None:
    """The defaults the schema cannot state, in place: `sweep.lr` is `[training.lr]` when absent;
    with a horizon the resolved `training.steps` is null (not the schema's default), so that the
    resolved config means what was written (`written`: the experiment's `training` block as
    given) and validates again unchanged."""
    training = experiment["training"]
    if training.get("horizon") is not None and written.get("steps") is None:
        training["steps"] = None
    experiment["sweep"].setdefault("lr", [training["lr"]])


def validate_config(config: dict, *, max_runs: int | None = None) -> dict:
    """Check `config` against the schema and the domain rules; return a copy with defaults filled.

    Raises ConfigError listing every problem, one line each, each starting with its key path.
    `sweep.lr` defaults to `[training.lr]`. The input is not modified. `max_runs`: the cap on
    the config's runs (None: `MINNORM_MAX_RUNS` from the environment, else MAX_RUNS), checked
    before the per-value rules so that a huge sweep is refused at once.
    """
    if not isinstance(config, dict):
        raise ConfigError(
            f"<top level>: the config must be a mapping, got a {describe_type(config)}"
        )
    resolved = copy.deepcopy(config)
    schema = load_schema()
    problems = schema_problems(resolved, schema)
    problems.extend(_steps_and_horizon(config))
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(problems))
    problems.extend(name_problems(list(resolved["experiments"])))
    for name, experiment in resolved["experiments"].items():
        _fill_run_defaults(experiment, config["experiments"][name].get("training") or {})
    cap = max_runs_from(os.environ) if max_runs is None else max_runs
    too_many = sweep_size_problems(resolved, cap)
    if too_many:
        raise ConfigError("invalid config:\n" + "\n".join(problems + too_many))
    for name, experiment in resolved["experiments"].items():
        problems.extend(experiment_problems(name, experiment))
        problems.extend(sweep_setting_problems(name, experiment, schema))
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(problems))
    return resolved


def config_warnings(resolved: dict) -> list[str]:
    """What a valid config (`validate_config`'s output) does that the user may not expect, one
    line each, each starting with its key path: a `training.horizon` that is not a whole number
    of steps at some lr is rounded (`minnorm.config.rules.horizon_warnings`)."""
    return [
        line
        for name, experiment in resolved["experiments"].items()
        for line in horizon_warnings(name, experiment)
    ]
