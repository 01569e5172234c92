"""The config schema as stored: package data read once per process, without the registry enums
(`minnorm.config.schema.load_schema` adds those). Imports no registry, so the typed run config
can check its enums against the one schema without an import cycle."""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import yaml

SCHEMA_RESOURCE = "config.schema.yaml"


@functools.cache
def _stored_schema_text() -> str:
    resource = importlib.resources.files("minnorm.config").joinpath(SCHEMA_RESOURCE)
    return resource.read_text(encoding="utf-8")


def read_schema_file() -> dict[str, Any]:
    """The schema as stored (package data), without the registry enums; a fresh dict each call."""
    schema: dict[str, Any] = yaml.safe_load(_stored_schema_text())
    return schema


def block_properties(schema: dict[str, Any], block: str) -> dict[str, Any]:
    """The `properties` of `$defs.<block>` in a schema dict (this file's or a completed copy):
    the one place that knows where a block's keys sit in the schema."""
    properties: dict[str, Any] = schema["$defs"][block]["properties"]
    return properties


@functools.cache
def schema_enum(block: str, key: str) -> tuple[str, ...]:
    """The allowed values of `<block>.<key>` as the schema lists them (`enum`), e.g.
    `schema_enum("training", "loss")`."""
    return tuple(block_properties(read_schema_file(), block)[key]["enum"])
