"""The figures: plot functions over collected datasets, one module per group of figures.

A figure is declared once, as an entry of `FIGURES` (`minnorm.config.figure_registry`, where the
config validation reads it): its plot function (named "module:function" of this package), its
requirements on the sweep and its caption `captions/<name>.rst`. The config schema's enum, the
config checks (`FigureSpec.problems`), the Snakemake rule and the report entry derive from it.
The plot functions are imported on first access, so that importing this package (at every config
validation) does not import matplotlib and seaborn.
"""

from __future__ import annotations

from typing import Any

from minnorm.config.figure_registry import FIGURES, FigureSpec
from minnorm.io.resolve import resolve, split_reference

# plot function name -> its "module:function" reference, from the registry.
_PLOT_FUNCTIONS: dict[str, str] = {
    split_reference(spec.plot)[1]: spec.plot
    for spec in FIGURES.values()
    if isinstance(spec.plot, str)
}


def __getattr__(name: str) -> Any:
    """`minnorm.figures.plot_*` imported on first access (keeps the registry import light)."""
    if name in _PLOT_FUNCTIONS:
        return resolve(_PLOT_FUNCTIONS[name])
    raise AttributeError(f"module 'minnorm.figures' has no attribute {name!r}")


__all__ = ["FIGURES", "FigureSpec", *_PLOT_FUNCTIONS]
