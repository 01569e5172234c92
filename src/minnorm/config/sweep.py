"""Sweeps and swept settings: the one owner of what a sweep key means.

A sweep key is either one of the values every run has (`RUN_SWEEP_KEYS`: width, seed, label
noise, lr) or a setting's key path (`model.kappa`, `data.labels`, ...), which is also its
attribute path in the typed run config (`run.model.kappa`). What may be swept is decided here
(`sweep_key_problem`); a swept setting becomes a dimension of the collected dataset
(`setting_dim`: `model_kappa`), a scalar coordinate of each run file carrying its key
(`SETTING_ATTR`, `setting_coordinate`) and a part of the file names (`setting_tag`). Sweep lists
are canonical (`SweepLists`: every list sorted), so reordering a sweep in the YAML changes no
file name, job list or job parameter.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from minnorm.io.files import format_float

# The sections of a run config; a swept setting's key path starts with one of them.
SECTIONS: tuple[str, ...] = ("data", "model", "training")
# Training settings that change no stored number (how often a run logs and checkpoints): left
# out of a run's identity (`minnorm.config.run_config.numeric_settings`), and not sweepable.
NON_NUMERIC_TRAINING_KEYS = frozenset({"progress_every", "checkpoint_every"})

# Training settings that choose how or where a run is computed, not what: the device, the
# implementation of the GD step (each gives the same iterates up to rounding) and the intervals
# above. Sweeping one would repeat every run under another name, so none can be swept.
EXECUTION_TRAINING_KEYS = NON_NUMERIC_TRAINING_KEYS | {"accelerator", "step_impl"}

# Sweep keys every experiment has; any other sweep key is a setting's key path (`model.kappa`).
# They are also the first dims of a collected dataset, in this order.
RUN_SWEEP_KEYS: tuple[str, ...] = ("width", "seed", "label_noise", "lr")
# A swept setting of the config (`sweep: {model.kappa: [...]}`) is one more scalar coordinate
# of each run file, named like the key with "_" for "." (`model_kappa`), and carries the key
# in this attribute; collected, it becomes a dim after RUN_SWEEP_KEYS (sorted by name).
SETTING_ATTR = "sweep_key"
# Settings a sweep may not name, and why.
NOT_SWEEPABLE: dict[str, str] = {
    "training.lr": "sweep the learning rate with sweep.lr",
    "data.name": "a data set is chosen per experiment; define one experiment per data set",
    **{
        f"training.{key}": (
            "chooses how or where runs are computed, not their numbers; the runs would repeat "
            "each other (set it once under training)"
        )
        for key in sorted(EXECUTION_TRAINING_KEYS)
    },
}
# A swept text value becomes part of file names (`data_labels=center`): plain characters only.
SWEEP_TEXT = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
# Longest part of a file name the swept settings may take (`_model_kappa=0.1...`, `setting_tag`).
# The rest of the longest name, a run's done file as the temporary file of an atomic write
# (s<seed>_p<noise>_lr<lr>.done.nc.tmp-<pid>), is at most about 100 bytes, so the whole name
# stays below the 255-byte limit of a file name.
MAX_SETTING_TAG_BYTES = 140


def split_key(key: str) -> tuple[str, str]:
    """(section, field) of a setting's key path: `model.kappa` -> ("model", "kappa")."""
    section, _, field = key.partition(".")
    return section, field


def setting_value(config: object, key: str) -> Any:
    """The value of the setting `key` (`model.kappa`) in a config mapping read from JSON (a run
    file's or a collected file's `config` attribute, which may hold only the shared part);
    KeyError naming the key when it is not there."""
    section, field = split_key(key)
    block = config.get(section) if isinstance(config, Mapping) else None
    if not isinstance(block, Mapping) or field not in block:
        raise KeyError(key)
    return block[field]


def swept_in(settings: Mapping[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    """The swept settings (`{key path: value}`) of the sections `sections`: what a file made by
    a stage that depends on those sections only is named and identified by."""
    return {k: v for k, v in settings.items() if split_key(k)[0] in sections}


def setting_dim(key: str) -> str:
    """The dim (and file-name part) of a swept setting: `model.kappa` -> `model_kappa`."""
    return key.replace(".", "_")


def setting_text(value: Any) -> str:
    """A swept value as written in file names: true/false, 0.1 (format_float), 3, center."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    return str(value)


def setting_tag(settings: Mapping[str, Any], sections: tuple[str, ...] = SECTIONS) -> str:
    """The file-name part of a run's swept settings in `sections`: "_model_kappa=0.1" ...,
    "" for none."""
    return "".join(
        f"_{setting_dim(key)}={setting_text(value)}"
        for key, value in sorted(swept_in(settings, sections).items())
    )


def setting_coordinate(key: str, value: Any) -> tuple[tuple[()], np.ndarray, dict[str, str]]:
    """The run file's scalar coordinate of the swept setting `key` (dims, value, attrs): named
    `setting_dim(key)`, marked with its key in attr SETTING_ATTR; numbers carry units "1" (CF:
    flags and text have none)."""
    attrs = {"long_name": f"swept setting {key}", SETTING_ATTR: key}
    if isinstance(value, int | float) and not isinstance(value, bool):
        attrs["units"] = "1"
    return ((), np.asarray(value), attrs)


def sweep_key_problem(key: str, section_schema: Mapping[str, Any], horizon: bool) -> str | None:
    """Why the setting `key` cannot be swept (None: it can). `section_schema` is the schema's
    properties of the key's section; `horizon`: whether the experiment sets `training.horizon`.
    A sweepable key names a single-valued setting of data, model or training that changes
    numbers."""
    section, field = split_key(key)
    if key in NOT_SWEEPABLE:
        return f"cannot be swept: {NOT_SWEEPABLE[key]}"
    if field not in section_schema:
        return f"{section} has no setting {field!r}; settings: {', '.join(sorted(section_schema))}"
    fragment = section_schema[field]
    if "properties" in fragment or fragment.get("type") in ("object", "array"):
        return f"{section}.{field} is not a single value and cannot be swept"
    if key == "training.steps" and horizon:
        return "training.horizon sets the steps of every run; sweep one of them"
    return None


def sweep_text_problem(value: Any) -> str | None:
    """Why a swept text value cannot be part of a file name (None: it can)."""
    if isinstance(value, str) and not SWEEP_TEXT.fullmatch(value):
        return f"{value!r} must be 1-64 letters, digits or _.+- (it becomes part of file names)"
    return None


def tag_length(settings: Mapping[str, tuple[Any, ...]]) -> int:
    """Bytes of the longest file-name part the swept settings (`{key: values}`) can make."""
    longest = {
        key: max(values, key=lambda v: len(setting_tag({key: v}).encode()))
        for key, values in settings.items()
    }
    return len(setting_tag(longest).encode())


def setting_sweeps(block: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The swept settings of a `sweep:` block as written (YAML order, values unsorted: messages
    point at `sweep.<key>[i]`): `{key path: values}` for every key but RUN_SWEEP_KEYS."""
    return {k: list(v) for k, v in block.items() if k not in RUN_SWEEP_KEYS}


def _sorted(values: list[Any]) -> tuple[Any, ...]:
    """A swept setting's values, sorted; in the given order when they cannot be compared (mixed
    types: the validation then refuses them value by value, naming each)."""
    try:
        return tuple(sorted(values))
    except TypeError:
        return tuple(values)


@dataclasses.dataclass(frozen=True)
class SweepLists:
    """The sweep of one experiment, each list sorted ascending.

    width, seed, label_noise, lr: the values every run has (label_noise defaults to (0.0,), lr
    to the experiment's `training.lr`); settings: each swept setting's key path -> its values,
    keys sorted.
    """

    width: tuple[int, ...]
    seed: tuple[int, ...]
    label_noise: tuple[float, ...]
    lr: tuple[float, ...]
    settings: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any], default_lr: float) -> SweepLists:
        """The canonical lists of a `sweep:` block."""
        return cls(
            width=tuple(sorted(int(w) for w in block.get("width", ()))),
            seed=tuple(sorted(int(s) for s in block.get("seed", ()))),
            label_noise=tuple(sorted(float(p) for p in block.get("label_noise", [0.0]))),
            lr=tuple(sorted(float(lr) for lr in block.get("lr", [default_lr]))),
            settings={
                key: _sorted(block[key]) for key in sorted(block) if key not in RUN_SWEEP_KEYS
            },
        )

    def values(self, key: str) -> tuple[Any, ...]:
        """The values of any sweep key (a run value or a setting's key path); () if not swept."""
        if key in RUN_SWEEP_KEYS:
            values: tuple[Any, ...] = getattr(self, key)
            return values
        return self.settings.get(key, ())
