"""One experiment of a validated config, typed: its sections, its canonical sweep, its figures,
and the run configs its sweep makes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from minnorm.config.run_config import (
    DataConfig,
    ModelSettings,
    RunConfig,
    TargetConfig,
    TrainingSettings,
    read_section,
)
from minnorm.config.sweep import SweepLists, split_key, swept_in
from minnorm.data.settings import DataSettings, FrozenMapping


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """An experiment: name, the data/model/training sections as written (defaults filled;
    `training.steps` is None when the horizon sets them), the sweep (sorted lists) and the
    figures it asks for."""

    name: str
    data: DataSettings
    model: ModelSettings
    training: TrainingSettings
    sweep: SweepLists
    figures: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, name: str, block: Mapping[str, Any]) -> ExperimentConfig:
        """The experiment `name` of a validated config (`validate_config`'s output), or of a
        schema-valid block with defaults filled."""
        where = f"experiments.{name}"
        training = TrainingSettings.from_mapping(read_section(block, "training", where))
        return cls(
            name=name,
            data=DataSettings.from_mapping(read_section(block, "data", where)),
            model=ModelSettings.from_mapping(read_section(block, "model", where)),
            training=training,
            sweep=SweepLists.from_mapping(read_section(block, "sweep", where), training.lr),
            figures=tuple(block.get("figures", ())),
        )

    def with_settings(
        self, settings: Mapping[str, Any]
    ) -> tuple[DataSettings, ModelSettings, TrainingSettings]:
        """The three sections with the swept settings `{key path: value}` written at their
        keys."""
        data, model, training = self.data, self.model, self.training
        for key, value in sorted(settings.items()):
            where, field = split_key(key)
            if where == "data":
                data = data.with_setting(field, value)
            elif where == "model":
                model = model.with_setting(field, value)
            elif where == "training":
                training = training.with_setting(field, value)
            else:
                raise ValueError(f"sweep.{key}: not a setting of data, model or training")
        return data, model, training

    def run(
        self,
        width: int,
        seed: int,
        label_noise: float,
        lr: float,
        settings: Mapping[str, Any] | None = None,
    ) -> RunConfig:
        """The resolved config of one run: the swept settings written at their keys (and listed
        in `sweep`), `training.lr` = `lr`, and the steps round(horizon / lr) when a horizon is
        set."""
        swept = dict(settings or {})
        data, model, training = self.with_settings(swept)
        return RunConfig(
            experiment=self.name,
            data=data,
            model=model,
            training=training.for_lr(lr),
            width=int(width),
            seed=int(seed),
            label_noise=float(label_noise),
            lr=float(lr),
            sweep=FrozenMapping(swept),
        )

    def data_config(
        self, seed: int, label_noise: float, settings: Mapping[str, Any] | None = None
    ) -> DataConfig:
        """What determines one data file: the data settings (swept ones applied), the run seed
        and the label noise."""
        swept = swept_in(settings or {}, ("data",))
        data, _, _ = self.with_settings(swept)
        return DataConfig(self.name, data, int(seed), float(label_noise), FrozenMapping(swept))

    def target_config(
        self,
        width: int,
        seed: int,
        label_noise: float,
        settings: Mapping[str, Any] | None = None,
    ) -> TargetConfig:
        """What determines one target file: `data_config` plus the model and the width."""
        swept = swept_in(settings or {}, ("data", "model"))
        data, model, _ = self.with_settings(swept)
        return TargetConfig(
            self.name, data, model, int(width), int(seed), float(label_noise), FrozenMapping(swept)
        )
