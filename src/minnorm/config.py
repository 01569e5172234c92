"""Validate the workflow config: strict YAML, the JSON schema, then the domain rules.

The pieces live by concept: `minnorm.config_yaml` reads config files strictly (syntax errors
with file, line and column; duplicate keys refused), `minnorm.config_schema` holds the schema
(package data, enums from the registries) and its messages, `minnorm.config_rules` the rules
JSON Schema cannot express. Sweep expansion and run settings are in `minnorm.plan`.
"""

from __future__ import annotations

import copy

from minnorm.config_rules import experiment_problems, name_problems
from minnorm.config_schema import ConfigError, describe_type, key_path, load_schema, schema_problems

__all__ = ["ConfigError", "key_path", "load_schema", "validate_config"]


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
    problems = schema_problems(resolved, load_schema())
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(problems))
    problems.extend(name_problems(list(resolved["experiments"])))
    for name, experiment in resolved["experiments"].items():
        experiment["sweep"].setdefault("lr", [experiment["training"]["lr"]])
        problems.extend(experiment_problems(name, experiment))
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(problems))
    return resolved
