"""Validate the workflow config: strict YAML, the JSON schema, then the domain rules.

The pieces live by concept: `minnorm.config.yaml_reader` reads config files strictly (syntax errors
with file, line and column; duplicate keys refused), `minnorm.config.schema` holds the schema
(package data, enums from the registries) and its messages, `minnorm.config.rules` the rules
JSON Schema cannot express. The typed run config built from the result is in
`minnorm.config.run_config` (`minnorm.config.experiment` for an experiment).
"""

from __future__ import annotations

import copy
from typing import Any

from minnorm.config.rules import (
    experiment_problems,
    horizon_warnings,
    name_problems,
    sweep_setting_problems,
)
from minnorm.config.schema import ConfigError, describe_type, key_path, load_schema, schema_problems

__all__ = ["ConfigError", "config_warnings", "key_path", "load_schema", "validate_config"]


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


def validate_config(config: dict) -> dict:
    """Check `config` against the schema and the domain rules; return a copy with defaults filled.

    Raises ConfigError listing every problem, one line each, each starting with its key path.
    `sweep.lr` defaults to `[training.lr]`. The input is not modified.
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
