"""The one resolver of "package.module:function" references, which registries use to name a
function without importing its (possibly heavy) module until it is needed."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def split_reference(reference: str) -> tuple[str, str]:
    """("package.module", "function") of a "package.module:function" reference; ValueError naming
    the reference when either part is missing."""
    module, sep, attr = reference.partition(":")
    if not (sep and module and attr):
        raise ValueError(f"{reference!r} is not a 'package.module:function' reference")
    return module, attr


def resolve(function: Callable[..., Any] | str) -> Callable[..., Any]:
    """`function` itself, or the function a "package.module:function" string names (its module is
    imported now). Raises ValueError naming the reference when the module has no such callable."""
    if callable(function):
        return function
    module, attr = split_reference(function)
    found = getattr(importlib.import_module(module), attr, None)
    if not callable(found):
        raise ValueError(f"{function!r}: module {module} has no function {attr!r}")
    return found
