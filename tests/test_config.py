"""Tests of config validation, defaults and sweep expansion (minnorm.config), with and without Snakemake."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from minnorm.config import (
    ConfigError,
    data_settings,
    experiment_runs,
    input_dim,
    run_mem_mb,
    run_runtime_min,
    run_settings,
    sweep_value,
    target_settings,
    validate_config,
)

REPO = Path(__file__).resolve().parents[1]


def _load(name: str) -> dict:
    with open(REPO / "config" / name, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture
def tiny() -> dict:
    """The raw tiny config (experiments tiny_sphere and tiny_digits)."""
    return _load("tests.yaml")


def _set(path: str, value: object) -> Callable[[dict], None]:
    """A mutation setting the dotted `path` (below `experiments`) to `value`."""

    def mutate(config: dict) -> None:
        *parents, last = path.split(".")
        node = config["experiments"]
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        *parents, last = path.split(".")
        node = config["experiments"]
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _rename_experiment(config: dict) -> None:
    config["experiments"]["tiny-sphere"] = config["experiments"].pop("tiny_sphere")


def _top_level_typo(config: dict) -> None:
    config["experiment"] = config.pop("experiments")


S = "experiments.tiny_sphere"
D = "experiments.tiny_digits"

# (id, mutation, key path named in the message, text saying what is allowed)
MISTAKES = [
    ("width-string", _set("tiny_sphere.sweep.width", ["64"]), f"{S}.sweep.width[0]", "expected type integer"),
    ("width-bool", _set("tiny_sphere.sweep.width", [True]), f"{S}.sweep.width[0]", "expected type integer"),
    ("width-float", _set("tiny_sphere.sweep.width", [64.0]), f"{S}.sweep.width[0]", "expected type integer"),
    ("width-negative", _set("tiny_sphere.sweep.width", [64, -128]), f"{S}.sweep.width[1]", "must be >= 1"),
    ("width-zero", _set("tiny_sphere.sweep.width", [0]), f"{S}.sweep.width[0]", "must be >= 1"),
    ("seed-empty", _set("tiny_sphere.sweep.seed", []), f"{S}.sweep.seed", "needs at least 1"),
    ("lr-zero", _set("tiny_sphere.training.lr", 0), f"{S}.training.lr", "must be > 0"),
    ("sweep-lr-negative", _set("tiny_digits.sweep.lr", [0.1, -0.1]), f"{D}.sweep.lr[1]", "must be > 0"),
    ("kappa-yaml-string", _set("tiny_sphere.model.kappa", "1e-2"), f"{S}.model.kappa", "write 1.0e-2"),
    (
        "dataset-unknown",
        _set("tiny_sphere.data.name", "imagenet"),
        f"{S}.data.name",
        "sphere_quadratic, digits, mnist, cifar10",
    ),
    ("key-typo", _set("tiny_sphere.training.stpes", 10), f"{S}.training.stpes", "did you mean 'steps'"),
    ("top-level-typo", _top_level_typo, "experiment: unknown key", "allowed keys: experiments"),
    (
        "noise-above-one",
        _set("tiny_digits.sweep.label_noise", [0.0, 1.5]),
        f"{D}.sweep.label_noise[1]",
        "must be <= 1",
    ),
    (
        "noise-negative",
        _set("tiny_digits.sweep.label_noise", [-0.2]),
        f"{D}.sweep.label_noise[0]",
        "must be >= 0",
    ),
    (
        "noise-real-labels",
        _set("tiny_sphere.sweep.label_noise", [0.0, 0.2]),
        f"{S}.sweep.label_noise",
        "digits, mnist, cifar10",
    ),
    ("class-missing", _set("tiny_digits.data.classes", [0, 10]), f"{D}.data.classes[1]", "0..9"),
    ("class-twice", _set("tiny_digits.data.classes", [3, 3]), f"{D}.data.classes", "two distinct classes"),
    ("classes-absent", _delete("tiny_digits.data.classes"), f"{D}.data.classes", "required for digits"),
    ("steps-zero", _set("tiny_sphere.training.steps", 0), f"{S}.training.steps", "must be >= 1"),
    ("dtype-bad", _set("tiny_sphere.training.dtype", "float16"), f"{S}.training.dtype", "float32, float64"),
    ("loss-bad", _set("tiny_sphere.training.loss", "sum"), f"{S}.training.loss", "half_sum, mean"),
    ("mnist-no-path", _set("tiny_digits.data.name", "mnist"), f"{D}.data.path", "required for mnist"),
    (
        "cifar-path-missing",
        _set("tiny_digits.data", {"name": "cifar10", "classes": [0, 1], "path": "no/such/dir"}),
        f"{D}.data.path",
        "does not exist",
    ),
    ("dim-missing", _delete("tiny_sphere.data.dim"), f"{S}.data.dim", "required for sphere_quadratic"),
    ("dim-for-digits", _set("tiny_digits.data.dim", 8), f"{D}.data.dim", "only for sphere_quadratic"),
    ("width-duplicate", _set("tiny_sphere.sweep.width", [64, 128, 64]), f"{S}.sweep.width", "only once"),
    ("seed-duplicate", _set("tiny_digits.sweep.seed", [1, 1]), f"{D}.sweep.seed", "only once"),
    ("sweep-missing", _delete("tiny_sphere.sweep"), f"{S}.sweep", "required key is missing"),
    ("figure-unknown", _set("tiny_sphere.figures", ["fig9"]), f"{S}.figures[0]", "ss_fig1, width_scaling"),
    (
        "figure-too-few-widths",
        _set("tiny_sphere.sweep.width", [64, 128]),
        f"{S}.figures[1]",
        "at least 3 widths",
    ),
    ("figure-needs-pm1", _set("tiny_sphere.figures", ["arora_fig1"]), f"{S}.figures[0]", "needs +-1 labels"),
    (
        "figure-needs-noise-levels",
        _set("tiny_digits.sweep.label_noise", [0.0]),
        f"{D}.figures[0]",
        "at least 2 values",
    ),
    ("experiment-name", _rename_experiment, "experiments: name 'tiny-sphere'", "[A-Za-z0-9_]+"),
]


def test_default_and_test_configs_validate() -> None:
    for name in ("config.yaml", "tests.yaml"):
        resolved = validate_config(_load(name))
        assert resolved["experiments"], name


def test_default_config_has_the_paper_experiments() -> None:
    resolved = validate_config(_load("config.yaml"))
    ss = resolved["experiments"]["ss_fig1"]
    assert ss["sweep"]["width"] == [1000, 2000, 5000, 10000]
    assert len(ss["sweep"]["seed"]) == 5
    assert (ss["data"]["n_train"], ss["data"]["dim"], ss["training"]["steps"]) == (100, 5, 10000)
    assert (ss["training"]["lr"], ss["training"]["loss"], ss["model"]["kappa"]) == (0.01, "half_sum", 1.0)
    arora = resolved["experiments"]["arora_fig2"]
    assert arora["sweep"]["label_noise"] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert len(arora["sweep"]["seed"]) >= 3 and arora["model"]["bias"] is False
    scaling = resolved["experiments"]["width_scaling"]["sweep"]
    assert scaling["width"] == [2**k for k in range(7, 15)] and len(scaling["seed"]) >= 5


def test_tiny_config_exercises_every_figure_and_dataset_kind() -> None:
    experiments = validate_config(_load("tests.yaml"))["experiments"].values()
    figures = {f for e in experiments for f in e["figures"]}
    assert figures == {
        "ss_fig1",
        "width_scaling",
        "function_space",
        "arora_fig2",
        "arora_fig1",
        "lazy_regime",
    }
    assert {e["data"]["name"] for e in experiments} == {"sphere_quadratic", "digits"}


@pytest.mark.parametrize(
    ("mutate", "key", "allowed"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_mistake_fails_naming_key_and_allowed_values(tiny: dict, mutate, key: str, allowed: str) -> None:
    mutate(tiny)
    with pytest.raises(ConfigError) as caught:
        validate_config(tiny)
    message = str(caught.value)
    assert key in message
    assert allowed in message


def test_every_error_is_reported_at_once(tiny: dict) -> None:
    _set("tiny_sphere.sweep.width", [-1])(tiny)
    _set("tiny_digits.training.dtype", "half")(tiny)
    with pytest.raises(ConfigError) as caught:
        validate_config(tiny)
    assert f"{S}.sweep.width[0]" in str(caught.value) and f"{D}.training.dtype" in str(caught.value)


def test_non_mapping_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        validate_config(["experiments"])  # type: ignore[arg-type]


def test_existing_data_folder_is_accepted(tiny: dict, tmp_path: Path) -> None:
    _set("tiny_digits.data", {"name": "mnist", "classes": [0, 1], "path": str(tmp_path)})(tiny)
    assert validate_config(tiny)["experiments"]["tiny_digits"]["data"]["path"] == str(tmp_path)


def test_defaults_are_filled_without_touching_the_input() -> None:
    raw = {
        "experiments": {
            "e": {"data": {"name": "sphere_quadratic", "dim": 2}, "sweep": {"width": [8], "seed": [0]}}
        }
    }
    before = copy.deepcopy(raw)
    resolved = validate_config(raw)
    assert raw == before
    e = resolved["experiments"]["e"]
    assert e["model"] == {"bias": True, "kappa": 1.0}
    assert e["training"]["record"] == {"every": 100, "log_points": 40}
    assert (e["training"]["steps"], e["training"]["dtype"], e["training"]["accelerator"]) == (
        10000,
        "float64",
        "auto",
    )
    assert e["sweep"]["label_noise"] == [0.0]
    assert e["sweep"]["lr"] == [e["training"]["lr"]] == [0.01]
    assert (e["data"]["n_train"], e["data"]["n_test"], e["data"]["path"], e["figures"]) == (
        100,
        200,
        None,
        [],
    )


def test_validation_is_idempotent() -> None:
    once = validate_config(_load("config.yaml"))
    assert validate_config(once) == once


def test_experiment_runs_is_the_sweep_product() -> None:
    config = validate_config(_load("tests.yaml"))
    runs = experiment_runs(config, "tiny_digits")
    assert runs == [{"width": 64, "seed": s, "label_noise": p, "lr": 0.05} for s in (0, 1) for p in (0.0, 1.0)]
    assert len(experiment_runs(config, "tiny_sphere")) == 3 * 2
    with pytest.raises(ConfigError, match="experiments.nope: no such experiment"):
        experiment_runs(config, "nope")


def test_run_settings_resolves_one_run() -> None:
    config = validate_config(_load("tests.yaml"))
    settings = run_settings(config, "tiny_digits", 64, 1, 1.0, 0.2)
    assert set(settings) == {"experiment", "data", "model", "training", "width", "seed", "label_noise", "lr"}
    assert settings["training"]["lr"] == settings["lr"] == 0.2
    assert settings["data"]["classes"] == [0, 1] and settings["training"]["dtype"] == "float32"
    # A fresh copy: editing it must not change the config.
    settings["training"]["steps"] = 1
    assert config["experiments"]["tiny_digits"]["training"]["steps"] == 50


def test_data_and_target_settings_leave_out_what_does_not_change_them() -> None:
    config = validate_config(_load("tests.yaml"))
    data = data_settings(config, "tiny_sphere", 1, 0.0)
    assert set(data) == {"experiment", "data", "seed", "label_noise"}
    target = target_settings(config, "tiny_sphere", 128, 1, 0.0)
    assert set(target) == {"experiment", "data", "model", "seed", "label_noise", "width"}
    assert target["width"] == 128 and target["model"]["bias"] is True


def test_sweep_value_maps_wildcards_back_to_config_values() -> None:
    config = validate_config(_load("config.yaml"))
    assert sweep_value(config, "arora_fig2", "label_noise", "0.2") == 0.2
    assert sweep_value(config, "arora_fig2", "label_noise", "0") == 0.0
    assert sweep_value(config, "ss_fig1", "width", "5000") == 5000
    assert sweep_value(config, "ss_fig1", "lr", "0.01") == 0.01
    with pytest.raises(ConfigError, match=r"experiments.ss_fig1.sweep.width: '3' is not one of"):
        sweep_value(config, "ss_fig1", "width", "3")


def test_resource_estimates_grow_with_the_run() -> None:
    config = validate_config(_load("config.yaml"))
    small = run_settings(config, "ss_fig1", 1000, 0, 0.0, 0.01)
    large = run_settings(config, "ss_fig1", 10000, 0, 0.0, 0.01)
    assert input_dim(small) == 6
    assert input_dim(run_settings(config, "arora_fig2", 2000, 0, 0.0, 0.01)) == 64
    assert run_mem_mb(large) > run_mem_mb(small) > 0
    # The memory request covers the training module's own estimate (which refuses runs too large).
    from minnorm.training.resources import estimate_run_bytes

    assert run_mem_mb(large) * 1e6 >= estimate_run_bytes(100, 10000, 6, "float64", 200)
    assert run_runtime_min(large) > run_runtime_min(small) >= 1


# Five mistakes replayed through Snakemake itself: the workflow must stop at parse time.
SNAKEMAKE_MISTAKES = [
    "width-negative",
    "dataset-unknown",
    "key-typo",
    "noise-above-one",
    "dtype-bad",
    "mnist-no-path",
]


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the workflow (Snakefile, workflow/, config/) outside the repository."""
    root = tmp_path_factory.mktemp("workflow")
    shutil.copy(REPO / "Snakefile", root / "Snakefile")
    shutil.copytree(REPO / "workflow", root / "workflow")
    shutil.copytree(REPO / "config", root / "config")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("mistake", SNAKEMAKE_MISTAKES)
def test_snakemake_stops_before_any_job(workflow_copy: Path, mistake: str) -> None:
    _, mutate, key, allowed = next(m for m in MISTAKES if m[0] == mistake)
    config = _load("tests.yaml")
    mutate(config)
    bad = workflow_copy / f"bad-{mistake}.yaml"
    bad.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "1",
            "--configfile",
            bad.name,
            "--replace-workflow-config",
        ],
        cwd=workflow_copy,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert key in output and allowed in output, output
    assert not (workflow_copy / "results").exists()


def test_settings_do_not_depend_on_key_order_in_the_yaml(tiny: dict) -> None:
    # Snakemake compares params through repr(): the same settings must give the same text.
    reordered = copy.deepcopy(tiny)
    data = reordered["experiments"]["tiny_sphere"]["data"]
    reordered["experiments"]["tiny_sphere"]["data"] = dict(reversed(list(data.items())))
    a, b = validate_config(tiny), validate_config(reordered)
    assert repr(run_settings(a, "tiny_sphere", 64, 0, 0.0, 0.01)) == repr(
        run_settings(b, "tiny_sphere", 64, 0, 0.0, 0.01)
    )
    assert repr(target_settings(a, "tiny_sphere", 64, 0, 0.0)) == repr(
        target_settings(b, "tiny_sphere", 64, 0, 0.0)
    )
    assert repr(data_settings(a, "tiny_sphere", 0, 0.0)) == repr(data_settings(b, "tiny_sphere", 0, 0.0))
