"""The typed run config: one frozen dataclass tree per run, built once from the validated YAML
(or a file's JSON) and read by attribute everywhere else.

`RunConfig.to_mapping()` is exactly the resolved JSON dict the workflow has always stored as a
run file's `config` attribute (sorted keys, every default filled in), so the settings part of a
run's identity is unchanged; `DataConfig` and `TargetConfig` are the narrower settings of a data
file and a target file. `from_mapping` constructors are the YAML/JSON boundary: the only code
that reads a config section by its key. Each error names the key path.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from minnorm.config.schema_file import schema_enum
from minnorm.config.sweep import NON_NUMERIC_TRAINING_KEYS, SECTIONS, swept_in
from minnorm.data.settings import DataSettings, FrozenMapping


def read_section(mapping: object, name: str, where: str = "run config") -> Mapping[str, Any]:
    """The block `name` of a config mapping; ValueError naming it when absent or not a mapping."""
    block = mapping.get(name) if isinstance(mapping, Mapping) else None
    if not isinstance(block, Mapping):
        raise ValueError(f"{where} lacks the {name!r} section (a mapping)")
    return block


def key_sorted(value: Any) -> Any:
    """`value` with every dict's keys in sorted order (recursively; lists keep their order).

    Snakemake compares params through `repr`, and the settings are hashed as JSON: the order of
    keys in the YAML must not matter.
    """
    if isinstance(value, Mapping):
        return {key: key_sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [key_sorted(item) for item in value]
    return value


def numeric_settings(run_mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A run config mapping (key-sorted) less the settings that change no number
    (`NON_NUMERIC_TRAINING_KEYS`)."""
    settings = dict(key_sorted(run_mapping))
    training = settings.get("training")
    if isinstance(training, dict):
        settings["training"] = {
            k: v for k, v in training.items() if k not in NON_NUMERIC_TRAINING_KEYS
        }
    return settings


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _get(block: Mapping[str, Any], key: str, where: str) -> Any:
    """`block[key]`; ValueError naming the key path (`where.key`) when absent."""
    if key not in block:
        raise ValueError(f"run config lacks {_path(where, key)}")
    return block[key]


def _count(block: Mapping[str, Any], key: str, where: str, low: int = 0) -> int:
    """`block[key]` checked to be an integer >= `low`."""
    value = _get(block, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{_path(where, key)} must be an integer >= {low}, got {value!r}")
    return value


def _positive(value: Any, key: str) -> float:
    """A positive finite number, as written (an int stays an int, so the JSON is unchanged)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value > 0 and math.isfinite(value))
    ):
        raise ValueError(f"{key} must be a positive finite number, got {value!r}")
    return value


def _choice(block: Mapping[str, Any], key: str) -> str:
    allowed = schema_enum("training", key)
    value = _get(block, key, "training")
    if value not in allowed:
        raise ValueError(f"training.{key} must be one of {list(allowed)}, got {value!r}")
    return str(value)


# The model settings of issue 29 and the values a config without them means (the paper's
# network): a run file written before they existed reads back as relu with a fixed output layer.
DEFAULT_ACTIVATION = "relu"
DEFAULT_LEAK = 0.01
# The activation whose slope is `model.leak` (minnorm.core.activations.ACTIVATIONS[...].uses_leak;
# the registry imports torch, which the config layer does not).
LEAK_ACTIVATION = "leaky_relu"


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """The `model:` block. bias: whether x~ = (x, 1); kappa: std of the initial weights W0;
    activation: the hidden layer's s (a name of `minnorm.core.activations.ACTIVATIONS`); leak:
    leaky_relu's slope for z < 0; train_output: whether GD trains the output weights a too."""

    bias: bool
    kappa: float
    activation: str = DEFAULT_ACTIVATION
    leak: float = DEFAULT_LEAK
    train_output: bool = False

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any]) -> ModelSettings:
        bias = _get(block, "bias", "model")
        if not isinstance(bias, bool):
            raise ValueError(f"model.bias must be true or false, got {bias!r}")
        activation = block.get("activation", DEFAULT_ACTIVATION)
        allowed = schema_enum("model", "activation")
        if activation not in allowed:
            raise ValueError(f"model.activation must be one of {list(allowed)}, got {activation!r}")
        leak = block.get("leak", DEFAULT_LEAK)
        if isinstance(leak, bool) or not isinstance(leak, int | float) or not math.isfinite(leak):
            raise ValueError(f"model.leak must be a finite number, got {leak!r}")
        train_output = block.get("train_output", False)
        if not isinstance(train_output, bool):
            raise ValueError(f"model.train_output must be true or false, got {train_output!r}")
        return cls(
            bias=bias,
            kappa=_positive(_get(block, "kappa", "model"), "model.kappa"),
            activation=str(activation),
            leak=leak,
            train_output=train_output,
        )

    def to_mapping(self) -> dict[str, Any]:
        """The block as stored in files. The settings of issue 29 appear only where they change
        the network: `activation` unless relu, `leak` with leaky_relu only, `train_output` when
        true. So the papers' network stores exactly what it stored before they existed (the run
        identities of today's configs are unchanged), and a leak that no activation reads
        changes no run's identity."""
        block: dict[str, Any] = {"bias": self.bias, "kappa": self.kappa}
        if self.activation != DEFAULT_ACTIVATION:
            block["activation"] = self.activation
        if self.activation == LEAK_ACTIVATION:
            block["leak"] = self.leak
        if self.train_output:
            block["train_output"] = True
        return block

    def with_setting(self, key: str, value: Any) -> ModelSettings:
        """A copy with `model.<key>` set to `value` (checked as if written there)."""
        return ModelSettings.from_mapping({**self.to_mapping(), key: value})

    @property
    def paper_network(self) -> bool:
        """Whether this is the papers' network: relu with the output layer fixed (the one the
        Arora et al. bound and today's fused C++ step are for)."""
        return self.activation == DEFAULT_ACTIVATION and not self.train_output


@dataclasses.dataclass(frozen=True)
class RecordSettings:
    """`training.record`: record every `every` steps and at `log_points` log-spaced steps
    (0 = none of that kind)."""

    every: int
    log_points: int


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """The `training:` block.

    steps: GD steps of a run; None only in an experiment whose `horizon` sets them per learning
    rate (`for_lr`); a `RunConfig`'s training always has them. lr: the learning rate (a run's own
    in a `RunConfig`). The rest as in the schema (config/config.schema.yaml).
    """

    lr: float
    loss: str
    steps: int | None
    dtype: str
    accelerator: str
    step_impl: str
    record: RecordSettings
    checkpoint_every: int
    progress_every: int
    horizon: float | None = None

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any]) -> TrainingSettings:
        """The settings of a `training:` block; ValueError naming `training.<key>`."""
        record = _get(block, "record", "training")
        if not isinstance(record, Mapping):
            raise ValueError(
                f"training.record must be a mapping with 'every' and 'log_points', got {record!r}"
            )
        horizon = block.get("horizon")
        steps = _get(block, "steps", "training")
        if steps is not None or horizon is None:
            steps = _count(block, "steps", "training", low=1)
        return cls(
            lr=_positive(_get(block, "lr", "training"), "training.lr"),
            loss=_choice(block, "loss"),
            steps=steps,
            dtype=_choice(block, "dtype"),
            accelerator=_choice(block, "accelerator"),
            step_impl=_choice(block, "step_impl"),
            record=RecordSettings(
                every=_count(record, "every", "training.record"),
                log_points=_count(record, "log_points", "training.record"),
            ),
            checkpoint_every=_count(block, "checkpoint_every", "training"),
            progress_every=_count(block, "progress_every", "training"),
            horizon=None if horizon is None else _positive(horizon, "training.horizon"),
        )

    def to_mapping(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "loss": self.loss,
            "steps": self.steps,
            "dtype": self.dtype,
            "accelerator": self.accelerator,
            "step_impl": self.step_impl,
            "record": {"every": self.record.every, "log_points": self.record.log_points},
            "checkpoint_every": self.checkpoint_every,
            "progress_every": self.progress_every,
            "horizon": self.horizon,
        }

    def with_setting(self, key: str, value: Any) -> TrainingSettings:
        """A copy with `training.<key>` set to `value` (checked as if written there)."""
        return TrainingSettings.from_mapping({**self.to_mapping(), key: value})

    def steps_at(self, lr: float) -> int:
        """GD steps of a run at learning rate `lr`: `steps`, or round(horizon / lr) (at least 1)
        when `horizon` is set."""
        if self.horizon is not None:
            return max(1, round(self.horizon / lr))
        if self.steps is None:
            raise ValueError("training.steps: null needs training.horizon")
        return self.steps

    def for_lr(self, lr: float) -> TrainingSettings:
        """The settings of one run at learning rate `lr`: lr set, steps resolved."""
        return dataclasses.replace(self, lr=float(lr), steps=self.steps_at(float(lr)))


def _swept(sweep: Mapping[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    """`{"sweep": {key: value}}` for the swept settings of `sections`; {} when there are none."""
    chosen = swept_in(sweep, sections)
    return {"sweep": chosen} if chosen else {}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What determines a data file: the experiment, its data settings, the run seed (label
    noise), the label-noise fraction, and the swept data settings.

    Narrower than `RunConfig` on purpose: adding a width or changing a training value must not
    rebuild (and thereby invalidate) the data files.
    """

    experiment: str
    data: DataSettings
    seed: int
    label_noise: float
    sweep: FrozenMapping = dataclasses.field(default_factory=FrozenMapping)

    def to_mapping(self) -> dict[str, Any]:
        """The data file's `config` attribute (and job settings), keys sorted."""
        return key_sorted(
            {
                "experiment": self.experiment,
                "data": self.data.to_mapping(),
                "seed": self.seed,
                "label_noise": self.label_noise,
                **_swept(self.sweep, ("data",)),
            }
        )


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    """What determines a target file: a `DataConfig`'s settings plus the model and the width
    (no training settings)."""

    experiment: str
    data: DataSettings
    model: ModelSettings
    width: int
    seed: int
    label_noise: float
    sweep: FrozenMapping = dataclasses.field(default_factory=FrozenMapping)

    def to_mapping(self) -> dict[str, Any]:
        """The target file's `config` attribute (and job settings), keys sorted."""
        return key_sorted(
            {
                "experiment": self.experiment,
                "data": self.data.to_mapping(),
                "model": self.model.to_mapping(),
                "width": self.width,
                "seed": self.seed,
                "label_noise": self.label_noise,
                **_swept(self.sweep, ("data", "model")),
            }
        )

    def to_json(self) -> str:
        return json.dumps(self.to_mapping(), sort_keys=True, allow_nan=False)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The resolved config of one training run.

    experiment: its name; data, model, training: the sections, with the run's swept settings
    written at their keys, `training.lr` equal to `lr` and `training.steps` resolved; width, seed,
    label_noise, lr: the run's sweep values; sweep: the run's swept settings by key path
    (`{"model.kappa": 0.1}`; empty when none is swept).
    """

    experiment: str
    data: DataSettings
    model: ModelSettings
    training: TrainingSettings
    width: int
    seed: int
    label_noise: float
    lr: float
    sweep: FrozenMapping = dataclasses.field(default_factory=FrozenMapping)

    def __post_init__(self) -> None:
        if self.training.lr != self.lr:
            raise ValueError(
                f"run config lr = {self.lr!r} differs from training.lr = {self.training.lr!r}"
            )
        if self.training.steps is None:
            raise ValueError("run config lacks training.steps (resolve the horizon per lr)")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> RunConfig:
        """A run config from its mapping (`to_mapping`'s shape, e.g. a run file's `config`
        JSON); ValueError naming the key path of a missing or ill-typed setting."""
        training = TrainingSettings.from_mapping(read_section(mapping, "training"))
        for key in ("experiment", "width", "seed", "label_noise"):
            _get(mapping, key, "")
        sweep = mapping.get("sweep") or {}
        if not isinstance(sweep, Mapping):
            raise ValueError(f"run config sweep must be a mapping, got {sweep!r}")
        return cls(
            experiment=str(mapping.get("experiment")),
            data=DataSettings.from_mapping(read_section(mapping, "data")),
            model=ModelSettings.from_mapping(read_section(mapping, "model")),
            training=training,
            width=_count(mapping, "width", "", low=1),
            seed=_count(mapping, "seed", ""),
            label_noise=float(mapping.get("label_noise", 0.0)),
            lr=float(mapping.get("lr", training.lr)),
            sweep=FrozenMapping(sweep),
        )

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """A run config from its JSON text (a run file's or checkpoint's `config`)."""
        return cls.from_mapping(json.loads(text))

    def to_mapping(self) -> dict[str, Any]:
        """The resolved run config as stored in files: keys sorted, JSON-compatible."""
        return key_sorted(
            {
                "experiment": self.experiment,
                "data": self.data.to_mapping(),
                "model": self.model.to_mapping(),
                "training": self.training.to_mapping(),
                "width": self.width,
                "seed": self.seed,
                "label_noise": self.label_noise,
                "lr": self.lr,
                **_swept(self.sweep, SECTIONS),
            }
        )

    def to_json(self) -> str:
        """`to_mapping` as stable JSON: the run file's and checkpoint's `config` attribute."""
        return json.dumps(self.to_mapping(), sort_keys=True, allow_nan=False)

    def numeric_settings(self) -> dict[str, Any]:
        """What can change the run's numbers: `to_mapping` less `NON_NUMERIC_TRAINING_KEYS`."""
        return numeric_settings(self.to_mapping())
