"""The typed run config (minnorm.config.run_config, minnorm.config.experiment): built once from the
validated YAML, it gives back exactly the resolved JSON the files store; its fields are the
schema's keys; bad settings name their key."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from helpers import REPO
from helpers.training import run_mapping
from minnorm.config import validate_config
from minnorm.config.experiment import ExperimentConfig
from minnorm.config.run_config import (
    ModelSettings,
    RecordSettings,
    RunConfig,
    TrainingSettings,
    key_sorted,
    numeric_settings,
)
from minnorm.config.schema_file import read_schema_file, schema_enum
from minnorm.config.sweep import setting_value
from minnorm.data.settings import DataSettings, FrozenMapping
from minnorm.training.gd_step import LOSSES, STEP_IMPLS
from minnorm.training.run_plan import DTYPES
from minnorm.workflow import plan

CONFIGS = (
    "tests.yaml",
    "config.yaml",
    "beyond.yaml",
    "beyond_cluster.yaml",
    "families.yaml",
    "families_cluster.yaml",
)

# Written out from the dict-based plan before the typed config existed (run 5 of tiny_beyond's
# width-64 job, its target and a tiny_digits data file): the files' `config` attribute and the
# settings part of the run identity must not change.
TINY_BEYOND_RUN = (
    '{"data": {"dim": 3, "labels": "center", "n_test": 30, "n_train": 20, "name": '
    '"sphere_quadratic", "path": null, "seed": 0}, "experiment": "tiny_beyond", "label_noise": '
    '0.0, "lr": 0.02, "model": {"bias": true, "kappa": 1.0}, "seed": 0, "sweep": {"data.labels": '
    '"center", "model.kappa": 1.0}, "training": {"accelerator": "auto", "checkpoint_every": 0, '
    '"dtype": "float64", "horizon": 0.5, "loss": "half_sum", "lr": 0.02, "progress_every": 0, '
    '"record": {"every": 10, "log_points": 5}, "step_impl": "fused", "steps": 25}, "width": 64}'
)
TINY_BEYOND_TARGET = (
    '{"data": {"dim": 3, "labels": "center", "n_test": 30, "n_train": 20, "name": '
    '"sphere_quadratic", "path": null, "seed": 0}, "experiment": "tiny_beyond", "label_noise": '
    '0.0, "model": {"bias": true, "kappa": 1.0}, "seed": 0, "sweep": {"data.labels": "center", '
    '"model.kappa": 1.0}, "width": 64}'
)
TINY_DIGITS_DATA = (
    '{"data": {"classes": [0, 1], "n_test": 30, "n_train": 20, "name": "digits", "path": null, '
    '"seed": 0}, "experiment": "tiny_digits", "label_noise": 1.0, "seed": 0}'
)


def _validated(name: str) -> dict:
    with open(REPO / "config" / name, encoding="utf-8") as handle:
        return validate_config(yaml.safe_load(handle))


@pytest.fixture(scope="module")
def tiny() -> dict:
    return _validated("tests.yaml")


def test_resolved_configs_are_those_the_files_stored_before(tiny: dict) -> None:
    run = plan.train_jobs(tiny, "tiny_beyond", 64)[5]
    assert (
        run.out == "results/tiny_beyond/runs/m64/s0_p0_lr0.02_data_labels=center_model_kappa=1.nc"
    )
    assert run.config.to_json() == json.dumps(json.loads(TINY_BEYOND_RUN), sort_keys=True)
    target = plan.target_jobs(tiny, "tiny_beyond", 64)[1].config
    assert target.to_json() == json.dumps(json.loads(TINY_BEYOND_TARGET), sort_keys=True)
    data = plan.data_jobs(tiny, "tiny_digits")[1].config
    assert data.to_mapping() == json.loads(TINY_DIGITS_DATA)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_run_config_round_trips_through_its_mapping(name: str) -> None:
    config = _validated(name)
    for exp in config["experiments"]:
        for width in plan.sweep(config, exp).width:
            for job in plan.train_jobs(config, exp, width):
                mapping = job.config.to_mapping()
                assert mapping == key_sorted(mapping)
                assert RunConfig.from_json(job.config.to_json()) == job.config
                assert RunConfig.from_mapping(mapping).to_mapping() == mapping
                assert job.config.numeric_settings() == numeric_settings(mapping)
                assert "progress_every" not in job.config.numeric_settings()["training"]


def test_each_section_has_exactly_the_schema_keys() -> None:
    defs = read_schema_file()["$defs"]
    assert [f.name for f in dataclasses.fields(ModelSettings)] == list(defs["model"]["properties"])
    assert {f.name for f in dataclasses.fields(TrainingSettings)} == set(
        defs["training"]["properties"]
    )
    assert [f.name for f in dataclasses.fields(RecordSettings)] == list(
        defs["training"]["properties"]["record"]["properties"]
    )
    assert set(DataSettings.COMMON_KEYS) == set(defs["data"]["properties"])


def test_the_training_layer_knows_every_choice_the_schema_allows() -> None:
    assert schema_enum("training", "loss") == LOSSES
    assert set(schema_enum("training", "step_impl")) == set(STEP_IMPLS)
    assert set(schema_enum("training", "dtype")) == set(DTYPES)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("loss", "l2", r"training.loss must be one of \['half_sum', 'mean'\]"),
        ("steps", 0, "training.steps must be an integer >= 1"),
        ("dtype", "float16", "training.dtype must be one of"),
        ("step_impl", "magic", "training.step_impl must be one of"),
        ("lr", -1.0, "training.lr must be a positive"),
        ("checkpoint_every", None, "training.checkpoint_every must be an integer"),
    ],
)
def test_bad_training_settings_name_the_key(key, value, message) -> None:
    mapping = run_mapping(
        {"name": "sphere_quadratic", "n_train": 2, "n_test": 1, "seed": 0}, width=8
    )
    mapping["training"][key] = value
    with pytest.raises(ValueError, match=message):
        RunConfig.from_mapping(mapping)
    del mapping["training"][key]
    with pytest.raises(ValueError, match=f"lacks training.{key}"):
        RunConfig.from_mapping(mapping)


def test_other_bad_run_configs_name_the_key() -> None:
    mapping = run_mapping(
        {"name": "sphere_quadratic", "n_train": 2, "n_test": 1, "seed": 0}, width=8
    )
    with pytest.raises(ValueError, match="differs from training.lr"):
        RunConfig.from_mapping({**mapping, "lr": 0.2})
    with pytest.raises(ValueError, match="lacks the 'model' section"):
        RunConfig.from_mapping({k: v for k, v in mapping.items() if k != "model"})
    with pytest.raises(ValueError, match="model.bias must be true or false"):
        RunConfig.from_mapping({**mapping, "model": {"bias": 1, "kappa": 1.0}})
    with pytest.raises(ValueError, match=r"data\.n_train must be a positive integer"):
        RunConfig.from_mapping({**mapping, "data": {**mapping["data"], "n_train": 0}})
    with pytest.raises(ValueError, match=r"run config lacks width"):
        RunConfig.from_mapping({k: v for k, v in mapping.items() if k != "width"})


def test_a_data_sets_own_keys_are_read_only_options() -> None:
    block = {"name": "sphere_quadratic", "n_train": 5, "n_test": 2, "dim": 3, "seed": 1}
    settings = DataSettings.from_mapping({**block, "labels": "center"})
    assert settings.options == {"labels": "center"} and settings.options.get("inputs") is None
    assert settings.to_mapping() == {**block, "path": None, "labels": "center"}
    with pytest.raises(TypeError):
        settings.options["labels"] = "none"  # type: ignore[index]
    swept = settings.with_setting("labels", "none").with_setting("n_train", 7)
    assert swept.options["labels"] == "none" and swept.n_train == 7
    assert settings.options["labels"] == "center"  # unchanged
    assert hash(settings) != hash(swept) and settings == DataSettings.from_mapping(
        settings.to_mapping()
    )
    assert FrozenMapping({"a": [1, 2]}).to_mapping() == {"a": [1, 2]}


def test_a_run_writes_each_swept_setting_at_its_key_and_its_horizon_steps(tiny: dict) -> None:
    experiment = ExperimentConfig.from_mapping("tiny_beyond", tiny["experiments"]["tiny_beyond"])
    assert experiment.training.steps is None and experiment.training.horizon == 0.5
    run = experiment.run(64, 1, 0.0, 0.02, {"model.kappa": 0.1, "data.labels": "standardize"})
    assert run.model.kappa == 0.1 and run.data.options["labels"] == "standardize"
    assert run.training.lr == run.lr == 0.02 and run.training.steps == 25
    assert setting_value(run.to_mapping(), "model.kappa") == 0.1
    with pytest.raises(KeyError):
        setting_value(run.to_mapping(), "model.width")
    with pytest.raises(ValueError, match="not a setting of data, model or training"):
        experiment.run(64, 1, 0.0, 0.02, {"optimizer.momentum": 0.9})
