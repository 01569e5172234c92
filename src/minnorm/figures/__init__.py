"""The figures: plot functions over collected datasets, one module per group of figures.

A figure is declared once, as an entry of `FIGURES` (`minnorm.config.figure_registry`, where the
config validation reads it): its plot function (named "module:function" of this package), its
requirements on the sweep and its caption `captions/<name>.rst`. The config schema's enum, the
config checks (`FigureSpec.problems`), the Snakemake rule and the report entry derive from it.
The plot functions are imported on first access, so that importing this package (at every config
validation) does not import matplotlib and seaborn.
"""

from __future__ import annotations

import importlib
from typing import Any

from minnorm.config.figure_registry import FIGURES, FigureSpec

# plot function name -> its module, from the registry's "module:function" names.
_PLOT_FUNCTIONS: dict[str, str] = {
    spec.plot.partition(":")[2]: spec.plot.partition(":")[0]
    for spec in FIGURES.values()
    if isinstance(spec.plot, str)
}


def __getattr__(name: str) -> Any:
    """`minnorm.figures.plot_*` imported on first access (keeps the registry import light)."""
    if name in _PLOT_FUNCTIONS:
        return getattr(importlib.import_module(_PLOT_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'minnorm.figures' has no attribute {name!r}")


__all__ = ["FIGURES", "FigureSpec", *_PLOT_FUNCTIONS]
