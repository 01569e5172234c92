"""The config's JSON schema: where it lives, how it is completed from the registries, and its
messages.

The schema is package data (`minnorm/config/config.schema.yaml`, found with importlib.resources, so
it
works from an editable install, an installed wheel and a copy of the repository alike);
workflow/schemas/config.schema.yaml is the workflow catalog's generated copy (`make schema`). The
enums of figure and data set names are filled in from `minnorm.config.figure_registry.FIGURES` and
`minnorm.data.registry.DATASETS` when the schema is loaded. The validator on top of JSON Schema:
fills defaults, refuses non-finite numbers (`.nan`, `.inf`, `1.0e+400`) and booleans as numbers,
and matches `pattern` against the whole string (`re.fullmatch`, so a trailing newline fails).
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Iterator
from typing import Any

import jsonschema

from minnorm.config.figure_registry import FIGURES
from minnorm.config.schema_file import block_properties, read_schema_file
from minnorm.data.registry import DATASETS


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


def _is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that converts to a finite float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond 1.8e308
        return False


def _with_defaults(validator_class: Any) -> Any:
    """A validator class that fills each missing property that has a `default` while validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(validator: Any, props: dict, instance: Any, schema: dict) -> Iterator[Any]:
        if isinstance(instance, dict):
            for name, subschema in props.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, props, instance, schema)

    def pattern(validator: Any, regex: str, instance: Any, schema: dict) -> Iterator[Any]:
        # JSON Schema's `pattern` is a search, and Python's `$` also matches before a final
        # newline: "name\n" would pass "^[A-Za-z0-9_]+$". The whole string must match.
        if isinstance(instance, str) and re.fullmatch(regex, instance) is None:
            yield jsonschema.ValidationError(f"{instance!r} does not match {regex!r}")

    # YAML integers like 1000.0 would pass the stock "integer" check but give wildcards such as
    # "m1000.0"; booleans are never numbers here; NaN and infinities pass every minimum/maximum
    # comparison, so they are refused as numbers.
    def is_integer(_checker: Any, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def is_number(_checker: Any, value: Any) -> bool:
        return _is_finite_number(value)

    type_checker = validator_class.TYPE_CHECKER.redefine_many(
        {"integer": is_integer, "number": is_number}
    )
    return jsonschema.validators.extend(
        validator_class,
        {"properties": properties, "pattern": pattern},
        type_checker=type_checker,
    )


_DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def describe_type(value: Any) -> str:
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


def _article(noun: str) -> str:
    """'an integer', 'a list', ..."""
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _looks_numeric(text: str) -> bool:
    """True if `text` parses as a float (a number YAML 1.1 left as a string)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _non_finite(value: Any) -> bool:
    """A float NaN/infinity, or an integer too large for a float."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not _is_finite_number(value)
    )


def _shown(value: Any) -> str:
    """`repr` of a value, shortened when huge (a 400-digit integer)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _duplicate_message(where: str, path: list[Any], values: list) -> str:
    """Name each repeated value of a list and the positions it repeats."""
    lines = []
    for index, value in enumerate(values):
        earlier = [i for i in range(index) if values[i] == value and type(values[i]) is not bool]
        if earlier:
            lines.append(
                f"{key_path([*path, index])}: {value!r} repeats {key_path([*path, earlier[0]])}; "
                "each value may appear only once "
                "(a repeated run would be trained twice into one file)"
            )
    return (
        "\n".join(lines)
        or f"{where}: duplicate values in {values!r}; each value may appear only once"
    )


def schema_error_message(error: jsonschema.ValidationError) -> str:
    """One line (or one per key) naming the key path, the offending value and what is allowed."""
    path = list(error.absolute_path)
    value = error.instance
    kind = error.validator
    bound = error.validator_value
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        lines = []
        for key in sorted(set(value) - set(allowed), key=str):
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            lines.append(
                f"{key_path([*path, key])}: unknown key{hint}; allowed keys: {', '.join(allowed)}"
            )
        return "\n".join(lines)
    if kind == "required":
        missing = [key for key in bound if key not in value]
        return "\n".join(f"{key_path([*path, key])}: required key is missing" for key in missing)
    where = key_path(path)
    if _non_finite(value) and (isinstance(value, float) or kind == "type"):
        return (
            f"{where}: {_shown(value)} is not a finite number (YAML reads .nan, .inf and numbers "
            "beyond about 1.8e308, such as 1.0e+400, as non-finite); give a finite value"
        )
    if kind == "type":
        expected = " or ".join(bound) if isinstance(bound, list) else bound
        kind_of = _article(describe_type(value))
        message = f"{where}: {_shown(value)} is {kind_of}; expected type {expected}"
        if isinstance(value, str) and _looks_numeric(value):
            message += " (YAML reads numbers like 1e-2 as text; write 1.0e-2 or 0.01)"
        return message
    if kind == "enum":
        return (
            f"{where}: {_shown(value)} is not allowed; allowed values: {', '.join(map(str, bound))}"
        )
    if kind == "minimum":
        return f"{where}: {_shown(value)} is out of range; must be >= {bound}"
    if kind == "maximum":
        reason = ""
        if bound == 2**63 - 1:
            reason = " (2^63 - 1: seeds are stored as int64 in the run files)"
        elif bound == 2**31 - 1:
            reason = (
                " (2^31 - 1: sizes and counts must keep every array's element count within int64)"
            )
        return f"{where}: {_shown(value)} is out of range; must be <= {bound}{reason}"
    if kind == "exclusiveMinimum":
        return f"{where}: {_shown(value)} is out of range; must be > {bound}"
    if kind == "minItems":
        return f"{where}: the list has {len(value)} value(s); it needs at least {bound}"
    if kind == "maxItems":
        return f"{where}: the list has {len(value)} values; it allows at most {bound}"
    if kind == "uniqueItems":
        return _duplicate_message(where, path, value)
    if kind == "minProperties":
        return f"{where}: must define at least {bound} entry"
    if kind == "pattern":
        return f"{where}: name {value!r} is not allowed; names must match {bound} (the whole name)"
    if kind == "maxLength":
        return (
            f"{where}: name {_shown(value)} has {len(value)} characters; "
            f"at most {bound} are allowed "
            "(file names are built from it and must stay under the 255-byte limit)"
        )
    return f"{where}: {error.message}"


def load_schema() -> dict:
    """The JSON schema completed from the registries: `$defs.figure_name`/`$defs.dataset_name`
    enums, and each data set's own keys (`DatasetSpec.schema`) added to `$defs.data`."""
    schema = read_schema_file()
    defs = schema.get("$defs", {})
    for name, registry in (("figure_name", FIGURES), ("dataset_name", DATASETS)):
        if name in defs:
            defs[name]["enum"] = list(registry)
    if "data" in defs:
        merge_dataset_keys(block_properties(schema, "data"))
    return schema


def merge_dataset_keys(properties: dict) -> None:
    """Add every data set's `DatasetSpec.schema` ({key: JSON schema of its value}) to the
    properties of the `data:` block, in place.

    A key may not have a `default` (it would be filled in for every data set; the generator
    applies its own default), and may not redefine a common key or another data set's key
    differently; either is a registry mistake and raises ValueError naming the data set and key.
    Which data sets may use a key is checked by `minnorm.config.rules` (`dataset_keys`).
    """
    common = set(properties)
    for name, spec in DATASETS.items():
        for key, fragment in (spec.schema or {}).items():
            where = f"minnorm.data.registry.DATASETS[{name!r}].schema[{key!r}]"
            if key in common:
                raise ValueError(
                    f"{where}: data.{key} is a key of every data set; use another name"
                )
            if "default" in fragment:
                raise ValueError(
                    f"{where}: has a default, which would apply to every data set; "
                    "let the generator supply it"
                )
            if properties.get(key, fragment) != fragment:
                raise ValueError(f"{where}: differs from another data set's data.{key}")
            properties[key] = copy.deepcopy(fragment)


def dataset_keys() -> dict[str, list[str]]:
    """Each data-set-specific key of `data:` -> the data sets whose `schema` declares it."""
    owners: dict[str, list[str]] = {}
    for name, spec in DATASETS.items():
        for key in spec.schema or {}:
            owners.setdefault(key, []).append(name)
    return owners


def schema_problems(config: dict, schema: dict) -> list[str]:
    """Validate `config` in place (defaults filled) and return one message per problem."""
    validator = _DefaultFillingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    messages = [schema_error_message(e) for e in errors]
    return [line for message in messages for line in message.splitlines() if line]
