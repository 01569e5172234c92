"""What this minnorm offers, read from its schema and registries: the settings, figures, checks,
data sets and packaged experiments, as lines for `minnorm --help` and as the Markdown of the
documentation's reference pages (docs/hooks/reference_pages.py inserts them at build time).

Nothing here is written by hand twice: a new setting (a schema property or a data set's own
key), figure, check or data set shows up in the help and the documentation by itself. The one
committed derivative is the workflow catalog's copy of the schema,
`workflow/schemas/config.schema.yaml` (`catalog_schema`; `make schema` rewrites it and
tests/project/test_docs.py says when it is stale).

    python -m minnorm.workflow.reference catalog-schema workflow/schemas/config.schema.yaml
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from minnorm.config.schema import block_properties, merge_dataset_keys, read_schema_file
from minnorm.io.files import write_text_atomic
from minnorm.workflow.packaged import workflow_root

# The experiment settings' own block, below `experiments.<name>`.
EXPERIMENT_DEF = "experiment"
# How the catalog schema names "any experiment" (not a valid experiment name: see below).
EXPERIMENT_PLACEHOLDER = "<name>"


@dataclass(frozen=True)
class Setting:
    """One setting of an experiment: its key path below `experiments.<name>`, its type in words,
    its default as YAML text ("" when it has none), its description, whether it is required."""

    path: str
    type: str
    default: str
    description: str
    required: bool


def _resolve(fragment: dict, schema: dict) -> dict:
    """`fragment` with its local `$ref` chain merged in (the fragment's own keys win)."""
    out = dict(fragment)
    while "$ref" in out:
        ref = out.pop("$ref")
        target = schema
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        out = {**target, **out}
    return out


def _bounds(fragment: dict) -> str:
    parts = []
    for key, sign in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in fragment:
            parts.append(f"{sign} {fragment[key]}")
    return f" ({', '.join(parts)})" if parts else ""


def type_text(fragment: dict, schema: dict) -> str:
    """The type of a (resolved) schema fragment in words: `integer (>= 1)`, `one of a, b`, ..."""
    fragment = _resolve(fragment, schema)
    if "enum" in fragment:
        return "one of " + ", ".join(f"`{v}`" for v in fragment["enum"])
    kind = fragment.get("type", "any")
    if kind == "array":
        items = fragment.get("items", {})
        return f"list of {type_text(items, schema)}" if items else "list"
    if kind == "object":
        return "mapping"
    names = kind if isinstance(kind, list) else [kind]
    return " or ".join(names) + _bounds(fragment)


def _default_text(fragment: dict) -> str:
    if "default" not in fragment:
        return ""
    return json.dumps(fragment["default"])


def _walk(properties: dict, required: list, prefix: str, schema: dict) -> list[Setting]:
    settings = []
    for name, raw in properties.items():
        fragment = _resolve(raw, schema)
        path = f"{prefix}{name}"
        settings.append(
            Setting(
                path=path,
                type=type_text(fragment, schema),
                default=_default_text(fragment),
                description=" ".join(str(fragment.get("description", "")).split()),
                required=name in required,
            )
        )
        if fragment.get("type") == "object" and "properties" in fragment:
            settings += _walk(
                fragment["properties"], fragment.get("required", []), f"{path}.", schema
            )
        for pattern, sub in fragment.get("patternProperties", {}).items():
            sub = _resolve(sub, schema)
            settings.append(
                Setting(
                    path=f"{path}.<section>.<key>",
                    type=type_text(sub, schema),
                    default="",
                    description=" ".join(str(sub.get("description", "")).split())
                    + f" (key pattern `{pattern}`)",
                    required=False,
                )
            )
    return settings


def settings_schema() -> dict:
    """The config schema with every data set's own keys merged in (the registry enums of figure
    and data-set names are left out: they are listed on their own pages)."""
    schema = read_schema_file()
    merge_dataset_keys(block_properties(schema, "data"))
    return schema


def experiment_settings(schema: dict | None = None) -> list[Setting]:
    """Every setting of an experiment, in schema order (blocks before their keys)."""
    schema = settings_schema() if schema is None else schema
    experiment = _resolve(schema["$defs"][EXPERIMENT_DEF], schema)
    return _walk(experiment["properties"], experiment.get("required", []), "", schema)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def configuration_markdown(schema: dict | None = None) -> str:
    """The configuration reference: a table of every experiment setting."""
    rows = [
        "| setting | type | default | description |",
        "|---|---|---|---|",
    ]
    for s in experiment_settings(schema):
        default = f"`{s.default}`" if s.default else ("required" if s.required else "")
        rows.append(f"| `{s.path}` | {_cell(s.type)} | {_cell(default)} | {_cell(s.description)} |")
    return "\n".join(rows) + "\n"


def figures_markdown() -> str:
    """One row per registered figure (`minnorm.figures.FIGURES`) with what it needs."""
    from minnorm.figures import FIGURES

    rows = ["| figure | what it shows | needs |", "|---|---|---|"]
    for name, spec in FIGURES.items():
        needs = [f"{spec.min_widths}+ widths"] if spec.min_widths > 1 else []
        needs += ["+-1 labels"] if spec.needs_pm1 else []
        if spec.min_noise_levels > 1:
            needs.append(f"{spec.min_noise_levels}+ label-noise levels")
        needs += [f"a sweep over `{key}`" for key in spec.needs_sweep]
        rows.append(f"| `{name}` | {_cell(spec.summary)} | {', '.join(needs) or 'any sweep'} |")
    return "\n".join(rows) + "\n"


def checks_markdown() -> str:
    """One row per registered theorem check (`minnorm.analysis.checks.CHECKS`)."""
    from minnorm.analysis.checks import CHECKS

    rows = [
        "| check | kind | claim | statistic | criterion | experiments |",
        "|---|---|---|---|---|---|",
    ]
    for name, spec in CHECKS.items():
        rows.append(
            f"| `{name}` | {spec.kind} | {_cell(spec.claim)} | {_cell(spec.statistic)} | "
            f"{_cell(spec.criterion)} | {_cell(spec.applies_to)} |"
        )
    return "\n".join(rows) + "\n"


def datasets_markdown() -> str:
    """One row per registered data set (`minnorm.data.registry.DATASETS`)."""
    from minnorm.data.registry import DATASETS

    rows = [
        "| data set | what it is | labels | input dimension | own keys |",
        "|---|---|---|---|---|",
    ]
    for name, spec in DATASETS.items():
        labels = (
            "real (regression)"
            if spec.classes is None
            else f"+-1, two of {len(spec.classes)} classes"
        )
        dim = str(spec.dim) if spec.dim is not None else "`data.dim`"
        keys = ", ".join(f"`data.{k}`" for k in spec.schema or {}) or "none"
        local = " (local files in `data.path`)" if spec.needs_path else ""
        rows.append(f"| `{name}` | {_cell(spec.summary)}{local} | {labels} | {dim} | {keys} |")
    return "\n".join(rows) + "\n"


def packaged_experiments(root: Path | None = None) -> dict[str, list[str]]:
    """{config file (relative to the workflow root): experiment names} of the packaged configs."""
    root = workflow_root() if root is None else root
    found: dict[str, list[str]] = {}
    for path in sorted((root / "config").glob("*.yaml")):
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
        experiments = loaded.get("experiments") if isinstance(loaded, dict) else None
        if isinstance(experiments, dict):
            found[path.relative_to(root).as_posix()] = list(experiments)
    return found


def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(name, one line)]) for `minnorm --help`: experiments, figures, data sets, checks."""
    from minnorm.analysis.checks import CHECKS
    from minnorm.data.registry import DATASETS
    from minnorm.figures import FIGURES

    experiments = [(config, ", ".join(names)) for config, names in packaged_experiments().items()]
    return [
        ("Experiments (configs that `minnorm init` copies into config/)", experiments),
        ("Figures (an experiment's `figures:`)", [(n, s.summary) for n, s in FIGURES.items()]),
        ("Data sets (`data.name`)", [(n, s.summary) for n, s in DATASETS.items()]),
        ("Theorem checks (results/<exp>/checks.csv)", [(n, s.claim) for n, s in CHECKS.items()]),
    ]


def _inline(fragment: Any, schema: dict) -> Any:
    """`fragment` with every local `$ref` replaced by what it points to, recursively."""
    if isinstance(fragment, dict):
        resolved = _resolve(fragment, schema) if "$ref" in fragment else fragment
        return {key: _inline(value, schema) for key, value in resolved.items()}
    if isinstance(fragment, list):
        return [_inline(item, schema) for item in fragment]
    return fragment


def catalog_schema() -> dict:
    """The config schema as the Snakemake workflow catalog reads it: `$ref`s inlined, and the
    experiment's settings also under `experiments.properties["<name>"]`.

    The catalog's parameter table follows `properties` only; an experiment is any key of
    `experiments` (`additionalProperties`). `<name>` is no valid experiment name
    (`propertyNames`), so the extra entry documents every setting without changing which
    configs the schema accepts. minnorm validates with the package's own schema
    (`minnorm.config.schema.load_schema`), which adds the figure and data set names.
    """
    schema = settings_schema()
    inlined = _inline({k: v for k, v in schema.items() if k != "$defs"}, schema)
    experiments = inlined["properties"]["experiments"]
    experiment = copy.deepcopy(experiments["additionalProperties"])
    experiments["properties"] = {EXPERIMENT_PLACEHOLDER: experiment}
    return inlined


CATALOG_HEADER = (
    "# Generated from src/minnorm/config/config.schema.yaml by `make schema` (do not edit): the\n"
    "# config schema for the Snakemake workflow catalog, every setting under `properties`\n"
    "# (minnorm.workflow.reference.catalog_schema explains the `<name>` entry).\n"
)


def catalog_schema_text() -> str:
    """The text of `workflow/schemas/config.schema.yaml`."""
    return CATALOG_HEADER + yaml.safe_dump(catalog_schema(), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    """`python -m minnorm.workflow.reference catalog-schema PATH`: write the catalog schema."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "catalog-schema":
        print(__doc__.rsplit("\n\n", 1)[-1].strip(), file=sys.stderr)
        return 2
    write_text_atomic(catalog_schema_text(), Path(args[1]))
    print(f"wrote {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
