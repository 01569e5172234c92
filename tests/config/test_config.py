"""Tests of config validation and defaults (minnorm.config.validate), with and without Snakemake
(sweep expansion: test_plan.py)."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO
from helpers.image_files import random_images, write_mnist
from minnorm.config import ConfigError, validate_config
from minnorm.config.schema import load_schema, read_schema_file
from minnorm.config.yaml_reader import (
    check_config_file,
    check_config_files,
    load_config_file,
    snakemake_config_files,
)


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
    (
        "width-string",
        _set("tiny_sphere.sweep.width", ["64"]),
        f"{S}.sweep.width[0]",
        "expected type integer",
    ),
    (
        "width-bool",
        _set("tiny_sphere.sweep.width", [True]),
        f"{S}.sweep.width[0]",
        "expected type integer",
    ),
    (
        "width-float",
        _set("tiny_sphere.sweep.width", [64.0]),
        f"{S}.sweep.width[0]",
        "expected type integer",
    ),
    (
        "width-negative",
        _set("tiny_sphere.sweep.width", [64, -128]),
        f"{S}.sweep.width[1]",
        "must be >= 1",
    ),
    ("width-zero", _set("tiny_sphere.sweep.width", [0]), f"{S}.sweep.width[0]", "must be >= 1"),
    ("seed-empty", _set("tiny_sphere.sweep.seed", []), f"{S}.sweep.seed", "needs at least 1"),
    ("lr-zero", _set("tiny_sphere.training.lr", 0), f"{S}.training.lr", "must be > 0"),
    (
        "sweep-lr-negative",
        _set("tiny_digits.sweep.lr", [0.1, -0.1]),
        f"{D}.sweep.lr[1]",
        "must be > 0",
    ),
    (
        "kappa-yaml-string",
        _set("tiny_sphere.model.kappa", "1e-2"),
        f"{S}.model.kappa",
        "write 1.0e-2",
    ),
    (
        "dataset-unknown",
        _set("tiny_sphere.data.name", "imagenet"),
        f"{S}.data.name",
        "sphere_quadratic, digits, mnist, cifar10",
    ),
    (
        "key-typo",
        _set("tiny_sphere.training.stpes", 10),
        f"{S}.training.stpes",
        "did you mean 'steps'",
    ),
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
    (
        "class-twice",
        _set("tiny_digits.data.classes", [3, 3]),
        f"{D}.data.classes",
        "two distinct classes",
    ),
    (
        "classes-absent",
        _delete("tiny_digits.data.classes"),
        f"{D}.data.classes",
        "required for digits",
    ),
    ("steps-zero", _set("tiny_sphere.training.steps", 0), f"{S}.training.steps", "must be >= 1"),
    (
        "dtype-bad",
        _set("tiny_sphere.training.dtype", "float16"),
        f"{S}.training.dtype",
        "float32, float64",
    ),
    ("loss-bad", _set("tiny_sphere.training.loss", "sum"), f"{S}.training.loss", "half_sum, mean"),
    (
        "mnist-no-path",
        _set("tiny_digits.data.name", "mnist"),
        f"{D}.data.path",
        "required for mnist",
    ),
    (
        "cifar-path-missing",
        _set("tiny_digits.data", {"name": "cifar10", "classes": [0, 1], "path": "no/such/dir"}),
        f"{D}.data.path",
        "does not exist",
    ),
    (
        "dim-missing",
        _delete("tiny_sphere.data.dim"),
        f"{S}.data.dim",
        "required for sphere_quadratic",
    ),
    (
        "dim-for-digits",
        _set("tiny_digits.data.dim", 8),
        f"{D}.data.dim",
        "only for sphere_quadratic",
    ),
    (
        "width-duplicate",
        _set("tiny_sphere.sweep.width", [64, 128, 64]),
        f"{S}.sweep.width",
        "only once",
    ),
    ("seed-duplicate", _set("tiny_digits.sweep.seed", [1, 1]), f"{D}.sweep.seed", "only once"),
    ("sweep-missing", _delete("tiny_sphere.sweep"), f"{S}.sweep", "required key is missing"),
    (
        "figure-unknown",
        _set("tiny_sphere.figures", ["fig9"]),
        f"{S}.figures[0]",
        "ss_fig1, width_scaling",
    ),
    (
        "figure-too-few-widths",
        _set("tiny_sphere.sweep.width", [64, 128]),
        f"{S}.figures[1]",
        "at least 3 widths",
    ),
    (
        "figure-needs-pm1",
        _set("tiny_sphere.figures", ["arora_fig1"]),
        f"{S}.figures[0]",
        "needs +-1 labels",
    ),
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
    assert (ss["training"]["lr"], ss["training"]["loss"], ss["model"]["kappa"]) == (
        0.01,
        "half_sum",
        1.0,
    )
    arora = resolved["experiments"]["arora_fig2"]
    assert arora["sweep"]["label_noise"] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert len(arora["sweep"]["seed"]) >= 3 and arora["model"]["bias"] is False
    scaling = resolved["experiments"]["width_scaling"]["sweep"]
    assert scaling["width"] == [2**k for k in range(7, 15)]
    # A claim about the setting: three or more data draws, two or more seeds in each.
    assert len(scaling["data.seed"]) >= 3 and len(scaling["seed"]) >= 2
    assert ss["sweep"]["data.labels"] == ["standardize", "center"]  # both label readings


def test_tiny_config_exercises_every_figure_and_dataset_kind() -> None:
    experiments = validate_config(_load("tests.yaml"))["experiments"].values()
    from minnorm.data.registry import DATASETS
    from minnorm.figures import FIGURES

    figures = {f for e in experiments for f in e["figures"]}
    assert figures == set(FIGURES)
    # every data set that needs no local files (mnist and cifar10 cannot run in CI)
    bundled = {name for name, spec in DATASETS.items() if not spec.needs_path}
    assert {e["data"]["name"] for e in experiments} == bundled == {"sphere_quadratic", "digits"}


@pytest.mark.parametrize(
    ("mutate", "key", "allowed"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_mistake_fails_naming_key_and_allowed_values(
    tiny: dict, mutate, key: str, allowed: str
) -> None:
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
    rng = np.random.default_rng(0)
    write_mnist(
        tmp_path,
        random_images(rng, [0, 1] * 20, (28, 28)),
        random_images(rng, [0, 1] * 20, (28, 28)),
    )
    _set("tiny_digits.data", {"name": "mnist", "classes": [0, 1], "path": str(tmp_path)})(tiny)
    assert validate_config(tiny)["experiments"]["tiny_digits"]["data"]["path"] == str(tmp_path)


@pytest.mark.parametrize("present", [0, 3])
def test_data_folder_without_its_files_is_refused_naming_the_key_and_files(
    tiny: dict, tmp_path: Path, present: int
) -> None:
    rng = np.random.default_rng(0)
    images = random_images(rng, [0, 1] * 20, (28, 28))
    written = sorted(write_mnist(tmp_path, images, images).values())
    for path in written[present:]:
        path.unlink()
    _set("tiny_digits.data", {"name": "mnist", "classes": [0, 1], "path": str(tmp_path)})(tiny)
    with pytest.raises(ConfigError) as caught:
        validate_config(tiny)
    message = str(caught.value)
    which = "none" if present == 0 else str(present)
    assert f"{D}.data.path: folder {str(tmp_path)!r} holds {which} of the 4 mnist files" in message
    assert all(p.name in message for p in written[present:])
    assert all(p.name not in message for p in written[:present])


def test_defaults_are_filled_without_touching_the_input() -> None:
    raw = {
        "experiments": {
            "e": {
                "data": {"name": "sphere_quadratic", "dim": 2},
                "sweep": {"width": [8], "seed": [0]},
            }
        }
    }
    before = copy.deepcopy(raw)
    resolved = validate_config(raw)
    assert raw == before
    e = resolved["experiments"]["e"]
    assert e["model"] == {
        "bias": True,
        "kappa": 1.0,
        "activation": "relu",
        "leak": 0.01,
        "train_output": False,
    }
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


# ---- Issue 12, classes 1-4 and 9: every bad config file below is refused before any job. ----
# Each file in tests/configs/bad/ states what the message must contain in `# expect:` lines.
BAD_DIR = REPO / "tests" / "configs" / "bad"
BAD_FILES = sorted(BAD_DIR.glob("*.yaml"))


def _expected(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("# expect:", 1)[1].strip() for line in lines if line.startswith("# expect:")]


def _library_message(path: Path) -> str:
    """The ConfigError text for a config file, read strictly and validated as the workflow does."""
    with pytest.raises(ConfigError) as caught:
        validate_config(load_config_file(path))
    return str(caught.value)


def test_bad_config_files_are_many_and_each_states_its_expected_message() -> None:
    assert len(BAD_FILES) >= 20
    for path in BAD_FILES:
        assert _expected(path), path.name


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_config_file_is_refused_naming_the_key(path: Path) -> None:
    message = _library_message(path)
    for text in _expected(path):
        assert text in message, message
    assert "Traceback" not in message


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    # Only a key written twice in one mapping is a duplicate; overriding a merged key is YAML.
    path = tmp_path / "merge.yaml"
    path.write_text(
        "base: &base {steps: 10, lr: 0.01}\n"
        "experiments:\n"
        "  e:\n"
        "    data: {name: sphere_quadratic, n_train: 20, n_test: 30, dim: 3}\n"
        "    training: {<<: *base, steps: 20}\n"
        "    sweep: {width: [8], seed: [0]}\n",
        encoding="utf-8",
    )
    check_config_file(path)
    assert load_config_file(path)["experiments"]["e"]["training"] == {"steps": 20, "lr": 0.01}


def test_duplicate_keys_in_json_config_files_are_refused(tmp_path: Path) -> None:
    # Snakemake reads a config file as JSON first; JSON allows tabs, which YAML does not.
    path = tmp_path / "dup.json"
    path.write_text('{"experiments":\t{"e": {}, "e": {}}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="e: duplicate key 'e'"):
        check_config_file(path)


def test_every_file_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        check_config_files([BAD_DIR / "duplicate-steps.yaml", BAD_DIR / "syntax-bad-indent.yaml"])
    assert "duplicate key 'steps'" in str(caught.value)
    assert "syntax-bad-indent.yaml:5:20" in str(caught.value)


def test_non_finite_and_overflowing_numbers_are_refused_for_every_number_key(tiny: dict) -> None:
    # Every `type: number` key of the schema, including list items.
    for where, value in [
        ("tiny_sphere.training.lr", float("nan")),
        ("tiny_sphere.model.kappa", float("-inf")),
        ("tiny_sphere.sweep.lr", [float("inf")]),
        ("tiny_digits.sweep.label_noise", [0.0, float("nan")]),
        ("tiny_sphere.training.lr", 10**400),  # an integer no float can hold
    ]:
        config = copy.deepcopy(tiny)
        _set(where, value)(config)
        with pytest.raises(ConfigError, match="is not a finite number") as caught:
            validate_config(config)
        assert f"experiments.{where}" in str(caught.value)


def test_integer_bounds_are_the_largest_values_that_are_stored_and_seeded(tiny: dict) -> None:
    import numpy as np
    import torch

    from minnorm.core.seeding import derive_seed

    largest_seed, largest_count = 2**63 - 1, 2**31 - 1
    # The largest allowed seed can be seeded and stored as int64 (netCDF); the next cannot be
    # stored.
    derive_seed("data", largest_seed, largest_seed)
    torch.Generator().manual_seed(largest_seed)
    assert np.array([largest_seed]).dtype == np.int64
    with pytest.raises(OverflowError):
        np.array([largest_seed + 1], dtype=np.int64)
    # Two sizes multiply to an element count within int64.
    assert largest_count * largest_count <= np.iinfo(np.int64).max
    config = copy.deepcopy(tiny)
    _set("tiny_sphere.sweep.seed", [largest_seed])(config)
    _set("tiny_sphere.sweep.width", [64, 128, largest_count])(config)
    validate_config(config)
    for where, value in [
        ("tiny_sphere.sweep.seed", [largest_seed + 1]),
        ("tiny_sphere.sweep.width", [64, 128, largest_count + 1]),
        ("tiny_sphere.data.n_test", largest_count + 1),
    ]:
        bad = copy.deepcopy(tiny)
        _set(where, value)(bad)
        with pytest.raises(ConfigError, match="is out of range; must be <="):
            validate_config(bad)


def test_longest_allowed_experiment_name_keeps_file_names_under_255_bytes(
    tiny: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from minnorm.config import rules as config_rules
    from minnorm.io import files
    from minnorm.workflow import plan

    schema = load_schema()
    longest = schema["properties"]["experiments"]["propertyNames"]["maxLength"]
    name = "x" * longest
    config = copy.deepcopy(tiny)
    config["experiments"] = {name: config["experiments"]["tiny_sphere"]}
    validate_config(config)
    # Every file of the plan, with the longest wildcard values allowed, as the temporary file an
    # atomic write creates with the largest pid Linux allows (pid_max <= 2^22).
    monkeypatch.setattr(files.os, "getpid", lambda: 2**22)
    values = dict(
        exp=name,
        width=2**31 - 1,
        seed=2**63 - 1,
        noise=files.format_float(0.1 + 0.2),
        lr=files.format_float(1.0000000000000001e-300),
        figure="x" * 40,
        ext="png",
        tag="x" * config_rules.MAX_SETTING_TAG_BYTES,
    )
    templates = [v for k, v in vars(plan).items() if k.endswith("_FILE") and isinstance(v, str)]
    assert len(templates) >= 5
    for template in templates:
        temp = files._temp_path(Path(template.format(**values)))
        assert all(len(part.encode()) < 255 for part in temp.parts), temp
    config["experiments"] = {name + "x": config["experiments"][name]}
    with pytest.raises(ConfigError, match="255-byte limit"):
        validate_config(config)


def test_schema_is_one_file_shared_by_package_and_workflow() -> None:
    # The one schema is the package's; workflow/schemas/ holds the workflow catalog's copy,
    # generated from it (`make schema`; tests/project/test_docs.py checks that it is current).
    copy = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert copy.read_text(encoding="utf-8").startswith(
        "# Generated from src/minnorm/config/config.schema.yaml by `make schema` (do not edit)"
    )
    assert (
        read_schema_file()["properties"].keys()
        == yaml.safe_load(copy.read_text())["properties"].keys()
    )
    # The library finds it as package data, not through workflow/.
    assert (
        "workflow"
        not in (REPO / "src" / "minnorm" / "config" / "schema.py")
        .read_text(encoding="utf-8")
        .split('"""', 2)[2]
    )


def test_schema_enums_are_the_registry_keys() -> None:
    from minnorm.data.registry import DATASETS
    from minnorm.figures import FIGURES

    schema = load_schema()
    assert schema["$defs"]["figure_name"]["enum"] == list(FIGURES)
    assert schema["$defs"]["dataset_name"]["enum"] == list(DATASETS)
    stored = read_schema_file()
    assert "enum" not in stored["$defs"]["figure_name"]  # nothing to edit when one is added
    assert "enum" not in stored["$defs"]["dataset_name"]


def test_a_registered_figure_is_accepted_without_a_schema_edit(
    tiny: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from minnorm import figures

    _set("tiny_sphere.figures", ["ss_fig1", "my_figure"])(tiny)
    with pytest.raises(ConfigError, match=r"tiny_sphere.figures\[1\]: 'my_figure' is not allowed"):
        validate_config(tiny)
    monkeypatch.setitem(figures.FIGURES, "my_figure", figures.FIGURES["ss_fig1"])
    assert validate_config(tiny)["experiments"]["tiny_sphere"]["figures"][1] == "my_figure"


def test_check_command_gives_file_line_and_column(tmp_path: Path) -> None:
    # Snakemake reads --configfile files before any workflow code and says only "not valid JSON
    # or YAML"; `python -m minnorm.config.yaml_reader FILE` is the command that points at the
    # mistake.
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "minnorm.config.yaml_reader",
            str(BAD_DIR / "syntax-unclosed-flow.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert "syntax-unclosed-flow.yaml:5:13: YAML syntax error" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = subprocess.run(
        [sys.executable, "-m", "minnorm.config.yaml_reader", str(REPO / "config" / "tests.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert good.returncode == 0, good.stderr


# A representative subset through a real `snakemake -n` (one of each class).
SNAKEMAKE_BAD_FILES = [
    "lr-overflow",
    "seed-beyond-int64",
    "name-trailing-newline",
    "duplicate-steps",
    "duplicate-experiment",
    "digits-too-few-examples",
    "dim-one",
    "path-empty",
    "sweep-duplicate-lr",
    # issue 26
    "horizon-steps-unbounded",
    "horizon-swept-with-steps",
    "kappa-overflow-float32",
    "kappa-underflow-float32",
    "gd-vs-flow-without-horizon",
    "sweep-accelerator",
    "path-without-files",
    "sweep-too-many-runs",
]


def _dry_run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--cores", "1", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", SNAKEMAKE_BAD_FILES)
def test_snakemake_dry_run_stops_on_bad_config_file(workflow_copy: Path, name: str) -> None:
    shutil.copy(BAD_DIR / f"{name}.yaml", workflow_copy / f"{name}.yaml")
    result = _dry_run(workflow_copy, "--configfile", f"{name}.yaml", "--replace-workflow-config")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for text in _expected(BAD_DIR / f"{name}.yaml"):
        assert text in output, output
    assert "Traceback" not in output and "Job stats" not in output, output
    assert not (workflow_copy / "results").exists()


@pytest.mark.slow
def test_snakemake_dry_run_warns_of_a_rounded_horizon(workflow_copy: Path) -> None:
    config = {
        "experiments": {
            "e": {
                "data": {"name": "sphere_quadratic", "n_train": 20, "n_test": 30, "dim": 3},
                "training": {"horizon": 0.35},
                "sweep": {"width": [8], "seed": [0], "lr": [0.1]},
            }
        }
    }
    (workflow_copy / "rounded.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _dry_run(workflow_copy, "--configfile", "rounded.yaml", "--replace-workflow-config")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (
        "experiments.e.training.horizon: 0.35 is not a whole number of steps at lr 0.1" in output
        and "take 3 steps" in output
    ), output


@pytest.mark.slow
def test_snakemake_names_file_line_and_column_of_a_yaml_error(tmp_path: Path) -> None:
    # The workflow's own config file (the `configfile:` directive) is read strictly first.
    root = tmp_path / "wf"
    shutil.copytree(REPO / "workflow", root / "workflow")
    shutil.copy(REPO / "Snakefile", root / "Snakefile")
    (root / "config").mkdir()
    shutil.copy(BAD_DIR / "syntax-unclosed-flow.yaml", root / "config" / "config.yaml")
    result = _dry_run(root)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "config/config.yaml:5:13: YAML syntax error: expected ',' or '}', but got ':'" in output
    ), output
    assert "Traceback" not in output


def test_sphere_quadratic_job_refuses_dim_1_with_the_right_advice() -> None:
    # Validation stops dim 1 first (tests/configs/bad/dim-one.yaml); the generator itself must not
    # advise "increase data.n_train" when no n_train can help.
    from minnorm.data.datasets import sphere_quadratic

    with pytest.raises(ValueError, match="data.dim must be at least 2") as caught:
        sphere_quadratic(50, 10, 1, data_seed=0)
    assert "n_train" not in str(caught.value)


def test_config_files_of_a_snakemake_command_line() -> None:
    # `python -m minnorm.config.yaml_reader $(SNAKEMAKE_ARGS)` checks what that command would read.
    assert snakemake_config_files(["--cores", "2"]) == ["config/config.yaml"]
    assert snakemake_config_files(["--configfile", "a.yaml", "b.yaml", "-n"]) == [
        "config/config.yaml",
        "a.yaml",
        "b.yaml",
    ]
    assert snakemake_config_files(
        ["--configfile=a.yaml", "--replace-workflow-config", "--cores", "1"]
    ) == ["a.yaml"]
    assert snakemake_config_files([]) == ["config/config.yaml"]


@pytest.mark.slow
def test_yaml_error_in_a_configfile_argument_what_the_user_sees(workflow_copy: Path) -> None:
    # Snakemake reads --configfile files before any workflow code runs: its own message names no
    # line (the documented limitation), and the check command on the same arguments does.
    shutil.copy(BAD_DIR / "syntax-unclosed-flow.yaml", workflow_copy / "broken.yaml")
    args = ["--configfile", "broken.yaml", "--replace-workflow-config"]
    result = _dry_run(workflow_copy, *args)
    assert result.returncode != 0
    assert "Config file is not valid JSON or YAML" in result.stdout + result.stderr
    check = subprocess.run(
        [sys.executable, "-m", "minnorm.config.yaml_reader", *args],
        cwd=workflow_copy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 1
    assert "broken.yaml:5:13: YAML syntax error" in check.stderr
    assert not (workflow_copy / "results").exists()
