"""The model settings of issue 29: model.activation, model.leak, model.train_output."""

from __future__ import annotations

import copy

import pytest

from minnorm.config import ConfigError, validate_config
from minnorm.config.experiment import ExperimentConfig
from minnorm.config.run_config import ModelSettings, RunConfig
from minnorm.config.schema_file import schema_enum
from minnorm.core.activations import ACTIVATIONS
from minnorm.workflow import plan

BASE = {
    "experiments": {
        "e": {
            "data": {"name": "sphere_quadratic", "n_train": 20, "n_test": 30, "dim": 3},
            "training": {"steps": 10},
            "sweep": {"width": [8], "seed": [0]},
        }
    }
}


def _config(model: dict | None = None, sweep: dict | None = None, figures: list | None = None):
    config = copy.deepcopy(BASE)
    block = config["experiments"]["e"]
    if model is not None:
        block["model"] = model
    block["sweep"].update(sweep or {})
    if figures is not None:
        block["figures"] = figures
    return config


def test_the_schema_lists_exactly_the_registered_activations() -> None:
    # The config layer imports no torch, so the enum is written in the schema; this keeps the
    # two equal (a new activation: its ActivationSpec and its name in the schema).
    assert schema_enum("model", "activation") == tuple(ACTIVATIONS)


def test_the_papers_network_stores_the_block_it_stored_before() -> None:
    model = ModelSettings.from_mapping({"bias": True, "kappa": 1.0})
    assert (model.activation, model.leak, model.train_output) == ("relu", 0.01, False)
    assert model.paper_network
    assert model.to_mapping() == {"bias": True, "kappa": 1.0}
    # A leak no activation reads changes no identity.
    tanh = model.with_setting("activation", "tanh")
    assert tanh.to_mapping() == {"bias": True, "kappa": 1.0, "activation": "tanh"}
    assert tanh.with_setting("leak", 0.2).to_mapping() == tanh.to_mapping()
    leaky = model.with_setting("activation", "leaky_relu").with_setting("leak", 0.2)
    assert leaky.to_mapping()["leak"] == 0.2 and not leaky.paper_network
    trained = model.with_setting("train_output", True)
    assert trained.to_mapping()["train_output"] is True and not trained.paper_network
    assert ModelSettings.from_mapping(trained.to_mapping()) == trained


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("activation", "sigmoid", "model.activation must be one of"),
        ("leak", float("nan"), "model.leak must be a finite number"),
        ("train_output", 1, "model.train_output must be true or false"),
    ],
)
def test_bad_model_settings_name_their_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelSettings.from_mapping({"bias": True, "kappa": 1.0, key: value})


def test_the_family_settings_are_swept_like_any_setting() -> None:
    config = validate_config(
        _config(sweep={"model.activation": ["tanh", "relu"], "model.train_output": [True, False]})
    )
    experiment = ExperimentConfig.from_mapping("e", config["experiments"]["e"])
    assert experiment.sweep.settings == {
        "model.activation": ("relu", "tanh"),
        "model.train_output": (False, True),
    }
    jobs = plan.train_jobs(config, "e", 8)
    names = sorted(job.out.rsplit("/", 1)[-1] for job in jobs)
    assert names == [
        "s0_p0_lr0.01_model_activation=relu_model_train_output=false.nc",
        "s0_p0_lr0.01_model_activation=relu_model_train_output=true.nc",
        "s0_p0_lr0.01_model_activation=tanh_model_train_output=false.nc",
        "s0_p0_lr0.01_model_activation=tanh_model_train_output=true.nc",
    ]
    runs = {(j.config.model.activation, j.config.model.train_output): j.config for j in jobs}
    assert runs["tanh", True].model == ModelSettings(True, 1.0, "tanh", 0.01, True)
    assert RunConfig.from_json(runs["tanh", True].to_json()) == runs["tanh", True]
    assert len({j.identity for j in jobs}) == 4


def test_a_leak_is_accepted_with_leaky_relu_and_swept_there() -> None:
    validate_config(_config(model={"activation": "leaky_relu", "leak": 0.1}))
    validate_config(_config(model={"activation": "leaky_relu"}, sweep={"model.leak": [0.01, 0.2]}))
    # With the activation swept, a written leak is leaky_relu's.
    both = {"model.activation": ["relu", "leaky_relu"]}
    validate_config(_config(model={"leak": 0.1}, sweep=both))


@pytest.mark.parametrize(
    ("model", "sweep", "message"),
    [
        ({"activation": "erf", "leak": 0.1}, {}, "experiments.e.model.leak: the slope is used by"),
        ({}, {"model.leak": [0.01, 0.1]}, "experiments.e.sweep.model.leak: the slope is used by"),
    ],
)
def test_a_leak_without_leaky_relu_is_refused(model: dict, sweep: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(_config(model=model, sweep=sweep))


@pytest.mark.parametrize("figure", ["arora_fig1", "arora_fig2"])
@pytest.mark.parametrize(
    ("model", "sweep", "where"),
    [
        ({"activation": "tanh"}, {}, "experiments.e.model.activation is 'tanh'"),
        ({"train_output": True}, {}, "experiments.e.model.train_output is True"),
        ({}, {"model.activation": ["relu", "erf"]}, "sweep.model.activation is 'erf'"),
    ],
)
def test_the_arora_figures_need_the_papers_network(
    figure: str, model: dict, sweep: dict, where: str
) -> None:
    config = _config(model=model, sweep=sweep, figures=[figure])
    block = config["experiments"]["e"]
    block["data"] = {"name": "digits", "n_train": 20, "n_test": 30, "classes": [0, 1]}
    block["sweep"]["label_noise"] = [0.0, 0.5]
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert "needs relu with a fixed output layer" in str(caught.value)
    assert where in str(caught.value)
