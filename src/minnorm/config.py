"""Validate the workflow config against its JSON schema and expand each experiment's sweep into runs."""

from __future__ import annotations

import copy
import difflib
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from minnorm.files import format_float

# The schema lives with the workflow (Snakemake convention); the library reads the same file so
# that validation behaves identically with and without Snakemake. Found relative to the working
# tree that holds this package (editable install); pass `schema_path` when installed elsewhere.
DEFAULT_SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
)

# Classes each labelled data set has: 10 digits, 10 MNIST digits, 10 CIFAR-10 categories.
DATASET_CLASSES: dict[str, range] = {
    "digits": range(10),
    "mnist": range(10),
    "cifar10": range(10),
}
# Data sets read from a user-supplied folder (not bundled with scikit-learn).
DATASETS_WITH_PATH = ("mnist", "cifar10")
# Input dimension d of the image data sets (pixels x channels); sphere_quadratic uses data.dim.
DATASET_DIMS: dict[str, int] = {"digits": 64, "mnist": 28 * 28, "cifar10": 32 * 32 * 3}

# What each figure needs from its experiment's sweep. A power law needs at least three widths to
# be a fit rather than a line through two points; comparisons across widths need two.
FIGURE_MIN_WIDTHS: dict[str, int] = {
    "ss_fig1": 1,
    "width_scaling": 3,
    "function_space": 2,
    "lazy_regime": 2,
    "arora_fig1": 1,
    "arora_fig2": 1,
}
# Figures about label noise and the 0-1 test error need +-1 labels (a labelled image data set).
FIGURES_NEEDING_PM1 = ("arora_fig1", "arora_fig2")
# Arora et al.'s Figure 2 is a curve over the label-noise fraction: it needs two points at least.
ARORA_FIG2_MIN_NOISE_LEVELS = 2

# Fixed memory of a Python process with torch and pytorch_lightning imported.
BASE_PROCESS_MB = 600
# Rough throughput of one CPU core on the GD step (multiply-adds per second), measured order of
# magnitude; the runtime request is generous on purpose because a job over its limit is killed.
CPU_MULTIPLY_ADDS_PER_S = 2e9
# One step does a forward and a backward pass: about three (n, p) x (p, m) products.
PRODUCTS_PER_STEP = 3
RUNTIME_SAFETY_FACTOR = 3.0
RUNTIME_OVERHEAD_MIN = 5


class ConfigError(ValueError):
    """A config mistake; the message names the key path (e.g. `experiments.a.sweep.width[1]`)."""


def key_path(parts: Iterator[Any] | list[Any]) -> str:
    """Dotted key path with list indices in brackets: ["a", "b", 1] -> "a.b[1]"."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<top level>"


def _with_defaults(validator_class: type) -> type:
    """A validator class that fills each missing property that has a `default` while validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(
        validator: Any, props: dict, instance: Any, schema: dict
    ) -> Iterator[Any]:
        if isinstance(instance, dict):
            for name, subschema in props.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, props, instance, schema)

    # YAML integers like 1000.0 would pass the stock "integer" check but give wildcards such as
    # "m1000.0"; booleans are never numbers here.
    def is_integer(_checker: Any, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def is_number(_checker: Any, value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    type_checker = validator_class.TYPE_CHECKER.redefine_many(
        {"integer": is_integer, "number": is_number}
    )
    return jsonschema.validators.extend(
        validator_class, {"properties": properties}, type_checker=type_checker
    )


_DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def _describe_type(value: Any) -> str:
    """Short name of a YAML value's type for error messages."""
    names = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _schema_error_message(error: jsonschema.ValidationError) -> str:
    """One line naming the key path, the offending value and what is allowed."""
    path = list(error.absolute_path)
    value = error.instance
    kind = error.validator
    bound = error.validator_value
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        lines = []
        for key in sorted(set(value) - set(allowed)):
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            lines.append(
                f"{key_path([*path, key])}: unknown key{hint}; allowed keys: {', '.join(allowed)}"
            )
        return "\n".join(lines)
    if kind == "required":
        missing = [key for key in bound if key not in value]
        return "\n".join(
            f"{key_path([*path, key])}: required key is missing" for key in missing
        )
    where = key_path(path)
    if kind == "type":
        expected = " or ".join(bound) if isinstance(bound, list) else bound
        message = (
            f"{where}: {value!r} is a {_describe_type(value)}; expected type {expected}"
        )
        if isinstance(value, str) and _looks_numeric(value):
            message += " (YAML reads numbers like 1e-2 as text; write 1.0e-2 or 0.01)"
        return message
    if kind == "enum":
        return f"{where}: {value!r} is not allowed; allowed values: {', '.join(map(str, bound))}"
    if kind == "minimum":
        return f"{where}: {value!r} is out of range; must be >= {bound}"
    if kind == "maximum":
        return f"{where}: {value!r} is out of range; must be <= {bound}"
    if kind == "exclusiveMinimum":
        return f"{where}: {value!r} is out of range; must be > {bound}"
    if kind == "minItems":
        return f"{where}: the list has {len(value)} value(s); it needs at least {bound}"
    if kind == "maxItems":
        return f"{where}: the list has {len(value)} values; it allows at most {bound}"
    if kind == "uniqueItems":
        return (
            f"{where}: duplicate values in {value!r}; each value may appear only once"
        )
    if kind == "minProperties":
        return f"{where}: must define at least {bound} entry"
    if kind == "pattern":
        return f"{where}: name {value!r} is not allowed; names must match {bound}"
    return f"{where}: {error.message}"


def _looks_numeric(text: str) -> bool:
    """True if `text` parses as a float (a number YAML 1.1 left as a string)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_schema(schema_path: str | Path = DEFAULT_SCHEMA_PATH) -> dict:
    """Read the JSON schema (YAML) at `schema_path`."""
    path = Path(schema_path)
    if not path.is_file():
        raise FileNotFoundError(f"config schema not found: {path}")
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def validate_config(
    config: dict, schema_path: str | Path = DEFAULT_SCHEMA_PATH
) -> dict:
    """Check `config` against the schema and the semantic rules; return a copy with defaults filled.

    Raises ConfigError listing every problem, one line each, each starting with its key path.
    `sweep.lr` defaults to `[training.lr]`. The input is not modified.
    """
    if not isinstance(config, dict):
        raise ConfigError(
            f"<top level>: the config must be a mapping, got a {_describe_type(config)}"
        )
    resolved = copy.deepcopy(config)
    validator = _DefaultFillingValidator(load_schema(schema_path))
    errors = sorted(
        validator.iter_errors(resolved), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if errors:
        raise ConfigError(
            "invalid config:\n" + "\n".join(_schema_error_message(e) for e in errors)
        )
    problems: list[str] = []
    for name, experiment in resolved["experiments"].items():
        experiment["sweep"].setdefault("lr", [experiment["training"]["lr"]])
        problems.extend(_experiment_problems(name, experiment))
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(problems))
    return resolved


def _experiment_problems(name: str, experiment: dict) -> list[str]:
    """Mistakes in one schema-valid experiment that JSON Schema cannot express."""
    where = f"experiments.{name}"
    data = experiment["data"]
    dataset = data["name"]
    problems: list[str] = []
    if dataset == "sphere_quadratic":
        if "dim" not in data:
            problems.append(
                f"{where}.data.dim: required for sphere_quadratic (input dimension, >= 1)"
            )
        if "classes" in data:
            problems.append(
                f"{where}.data.classes: only for digits, mnist, cifar10; remove it"
            )
    else:
        if "dim" in data:
            problems.append(
                f"{where}.data.dim: only for sphere_quadratic ({dataset} has d={DATASET_DIMS[dataset]})"
            )
        problems.extend(
            _class_problems(f"{where}.data.classes", dataset, data.get("classes"))
        )
    problems.extend(_path_problems(f"{where}.data.path", dataset, data["path"]))
    sweep = experiment["sweep"]
    noisy = [p for p in sweep["label_noise"] if p > 0]
    if noisy and dataset not in DATASET_CLASSES:
        problems.append(
            f"{where}.sweep.label_noise: values > 0 ({noisy}) need +-1 labels; "
            f"allowed only for {', '.join(DATASET_CLASSES)} (use [0.0] for {dataset})"
        )
    problems.extend(_figure_problems(where, experiment))
    return problems


def _class_problems(where: str, dataset: str, classes: list[int] | None) -> list[str]:
    """The two classes must be given, exist in the data set and differ."""
    allowed = DATASET_CLASSES[dataset]
    allowed_text = f"{allowed.start}..{allowed.stop - 1}"
    if classes is None:
        return [
            f"{where}: required for {dataset}: two distinct classes out of {allowed_text}"
        ]
    problems = [
        f"{where}[{i}]: class {c} does not exist in {dataset}; allowed values: {allowed_text}"
        for i, c in enumerate(classes)
        if c not in allowed
    ]
    if classes[0] == classes[1]:
        problems.append(
            f"{where}: {classes} names the same class twice; give two distinct classes out of {allowed_text}"
        )
    return problems


def _path_problems(where: str, dataset: str, path: str | None) -> list[str]:
    """mnist/cifar10 need an existing folder; the other data sets take no path."""
    if dataset not in DATASETS_WITH_PATH:
        return (
            []
            if path is None
            else [
                f"{where}: only for {', '.join(DATASETS_WITH_PATH)} ({dataset} needs no files); remove it"
            ]
        )
    if path is None:
        return [
            f"{where}: required for {dataset}: the folder holding the original {dataset} files"
        ]
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return [
            f"{where}: folder {path!r} does not exist (resolved to {folder.resolve()})"
        ]
    return []


def _figure_problems(where: str, experiment: dict) -> list[str]:
    """Each requested figure must be drawable from the experiment's data set and sweep."""
    problems = []
    sweep = experiment["sweep"]
    dataset = experiment["data"]["name"]
    for index, figure in enumerate(experiment["figures"]):
        at = f"{where}.figures[{index}]"
        need = FIGURE_MIN_WIDTHS[figure]
        if len(sweep["width"]) < need:
            problems.append(
                f"{at}: {figure} needs at least {need} widths in {where}.sweep.width, found {len(sweep['width'])}"
            )
        if figure in FIGURES_NEEDING_PM1 and dataset not in DATASET_CLASSES:
            problems.append(
                f"{at}: {figure} needs +-1 labels; data.name must be one of {', '.join(DATASET_CLASSES)}, not {dataset}"
            )
        if (
            figure == "arora_fig2"
            and len(sweep["label_noise"]) < ARORA_FIG2_MIN_NOISE_LEVELS
        ):
            problems.append(
                f"{at}: arora_fig2 plots against the label-noise fraction; {where}.sweep.label_noise "
                f"needs at least {ARORA_FIG2_MIN_NOISE_LEVELS} values"
            )
    return problems


def _experiment(config: dict, exp: str) -> dict:
    """The experiment `exp` of a validated config, with a clear error if it is not there."""
    experiments = config["experiments"]
    if exp not in experiments:
        raise ConfigError(
            f"experiments.{exp}: no such experiment; defined: {', '.join(experiments)}"
        )
    return experiments[exp]


def _key_sorted(value: Any) -> Any:
    """`value` with every dict's keys in sorted order (recursively; lists keep their order).

    Snakemake compares a job's params through `repr`, which follows dict insertion order: without
    this, reordering keys in the YAML (or loading the same config another way) would rerun every
    job although no setting changed.
    """
    if isinstance(value, dict):
        return {key: _key_sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_key_sorted(item) for item in value]
    return value


def experiment_runs(config: dict, exp: str) -> list[dict]:
    """One dict `{width, seed, label_noise, lr}` per run of experiment `exp` (the sweep's product).

    `config` must come from `validate_config` (so `sweep.lr` and `sweep.label_noise` are filled).
    """
    sweep = _experiment(config, exp)["sweep"]
    return [
        {
            "width": int(width),
            "seed": int(seed),
            "label_noise": float(noise),
            "lr": float(lr),
        }
        for width, seed, noise, lr in itertools.product(
            sweep["width"], sweep["seed"], sweep["label_noise"], sweep["lr"]
        )
    ]


def run_settings(
    config: dict, exp: str, width: int, seed: int, label_noise: float, lr: float
) -> dict:
    """The resolved run config: experiment name, data/model/training sections and the run's values.

    `training.lr` is set to `lr`. The result is a fresh, JSON-serialisable dict.
    """
    experiment = _experiment(config, exp)
    training = copy.deepcopy(experiment["training"])
    training["lr"] = float(lr)
    return _key_sorted(
        {
            "experiment": exp,
            "data": copy.deepcopy(experiment["data"]),
            "model": copy.deepcopy(experiment["model"]),
            "training": training,
            "width": int(width),
            "seed": int(seed),
            "label_noise": float(label_noise),
            "lr": float(lr),
        }
    )


def sweep_value(config: dict, exp: str, key: str, text: str) -> Any:
    """The configured value of `sweep.<key>` whose wildcard spelling is `text`.

    Wildcards hold `str(width)`, `str(seed)` and `format_float(value)` for label noise and lr;
    looking the value up (instead of parsing the text) guarantees the run uses exactly the number
    in the config, and a path that names no configured value fails clearly.
    """
    values = _experiment(config, exp)["sweep"][key]
    spell = format_float if key in ("label_noise", "lr") else str
    for value in values:
        if spell(value) == text:
            return value
    raise ConfigError(
        f"experiments.{exp}.sweep.{key}: {text!r} is not one of the configured values {values}"
    )


def data_settings(config: dict, exp: str, seed: int, label_noise: float) -> dict:
    """What determines a data file: `{experiment, data, seed, label_noise}`.

    Narrower than `run_settings` on purpose: these are the data rule's params, and Snakemake
    reruns a job whose params change, so adding a width or changing a training value must not
    rebuild (and thereby invalidate) the data files.
    """
    return _key_sorted(
        {
            "experiment": exp,
            "data": copy.deepcopy(_experiment(config, exp)["data"]),
            "seed": int(seed),
            "label_noise": float(label_noise),
        }
    )


def target_settings(
    config: dict, exp: str, width: int, seed: int, label_noise: float
) -> dict:
    """What determines a target file: `data_settings` plus `model` and `width` (no training)."""
    settings = data_settings(config, exp, seed, label_noise)
    settings["model"] = copy.deepcopy(_experiment(config, exp)["model"])
    settings["width"] = int(width)
    return _key_sorted(settings)


def input_dim(run_config: dict) -> int:
    """Dimension p of a weight vector: the data's input dimension, plus one with a bias."""
    data = run_config["data"]
    d = (
        data["dim"]
        if data["name"] == "sphere_quadratic"
        else DATASET_DIMS[data["name"]]
    )
    return d + 1 if run_config["model"]["bias"] else d


def run_bytes(run_config: dict) -> int:
    """Estimated peak bytes of one training run (`minnorm.training.train.estimate_run_bytes`)."""
    # Imported here: resources imports torch, which validation alone does not need.
    from minnorm.training.resources import estimate_run_bytes

    data = run_config["data"]
    return int(
        estimate_run_bytes(
            data["n_train"],
            run_config["width"],
            input_dim(run_config),
            run_config["training"]["dtype"],
            data["n_test"],
        )
    )


def run_mem_mb(run_config: dict) -> int:
    """Memory request (MB) for a training or target job: the run's arrays plus the process."""
    return BASE_PROCESS_MB + math.ceil(run_bytes(run_config) / 1e6)


def run_runtime_min(run_config: dict) -> int:
    """Generous wall-time request (minutes) for a training job from its steps and size."""
    data = run_config["data"]
    work = data["n_train"] + data["n_test"]
    multiply_adds = (
        run_config["training"]["steps"]
        * PRODUCTS_PER_STEP
        * work
        * run_config["width"]
        * input_dim(run_config)
    )
    seconds = multiply_adds / CPU_MULTIPLY_ADDS_PER_S
    return RUNTIME_OVERHEAD_MIN + math.ceil(RUNTIME_SAFETY_FACTOR * seconds / 60)
