"""Swept settings and run settings: the one owner of what a sweep key means.

A sweep key is either one of the values every run has (`RUN_SWEEP_KEYS`: width, seed, label
noise, lr) or a setting's key path (`model.kappa`, `data.labels`, ...). A swept setting becomes a
dimension of the collected dataset (`setting_dim`: `model_kappa`), a scalar coordinate of each run
file carrying its key (`SETTING_ATTR`), and a part of the file names (`setting_tag`). What
identifies a run's numbers is its resolved config less the settings that change none
(`numeric_settings`).
"""

from __future__ import annotations

import copy
from typing import Any

from minnorm.io.files import format_float

# Sweep keys every experiment has; any other sweep key is a setting's key path (`model.kappa`).
RUN_SWEEP_KEYS: tuple[str, ...] = ("width", "seed", "label_noise", "lr")
# A swept setting of the config (`sweep: {model.kappa: [...]}`) is one more scalar coordinate
# of each run file, named like the key with "_" for "." (`model_kappa`), and carries the key
# in this attribute; collected, it becomes a dim after RUN_DIMS (sorted by name).
SETTING_ATTR = "sweep_key"


def setting_dim(key: str) -> str:
    """The dim (and file-name part) of a swept setting: `model.kappa` -> `model_kappa`."""
    return key.replace(".", "_")


def setting_sweeps(experiment: dict) -> dict[str, list]:
    """The swept settings of an experiment: `{key path: values}` for every sweep key other than
    RUN_SWEEP_KEYS (`{"model.kappa": [0.1, 1.0]}`)."""
    return {k: v for k, v in experiment["sweep"].items() if k not in RUN_SWEEP_KEYS}


def run_steps(training: dict, lr: float) -> int:
    """The number of GD steps of a run at learning rate `lr`: `training.steps`, or
    round(horizon / lr) (at least 1) when `training.horizon` is set."""
    horizon = training.get("horizon")
    return int(training["steps"]) if horizon is None else max(1, round(horizon / lr))


def setting_text(value: Any) -> str:
    """A swept value as written in file names: true/false, 0.1 (format_float), 3, center."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    return str(value)


def setting_tag(
    settings: dict[str, Any], sections: tuple[str, ...] = ("data", "model", "training")
) -> str:
    """The file-name part of a run's swept settings in `sections`: "_model_kappa=0.1" ...,
    "" for none."""
    return "".join(
        f"_{setting_dim(key)}={setting_text(value)}"
        for key, value in sorted(settings.items())
        if key.split(".")[0] in sections
    )


# Training settings that change no stored number: how often a run logs and checkpoints.
NON_NUMERIC_TRAINING_KEYS = frozenset({"progress_every", "checkpoint_every"})


def key_sorted(value: Any) -> Any:
    """`value` with every dict's keys in sorted order (recursively; lists keep their order).

    Snakemake compares params through `repr`, and the settings are hashed as JSON: the order of
    keys in the YAML must not matter.
    """
    if isinstance(value, dict):
        return {key: key_sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [key_sorted(item) for item in value]
    return value


def numeric_settings(run_config: dict) -> dict:
    """`run_config` less the settings that change no number (`NON_NUMERIC_TRAINING_KEYS`)."""
    settings = copy.deepcopy(run_config)
    for key in NON_NUMERIC_TRAINING_KEYS:
        settings.get("training", {}).pop(key, None)
    return key_sorted(settings)
