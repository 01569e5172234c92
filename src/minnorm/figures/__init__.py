"""Registry of the figures: name (as in the config's `figures:` list) -> plot function."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import xarray as xr

from minnorm.figures.diagnostics import plot_function_space, plot_lazy_regime, plot_width_scaling
from minnorm.figures.paper import plot_arora_fig1, plot_arora_fig2, plot_ss_fig1

# Each function takes (collected Dataset, out_png, out_pdf), writes both files atomically, and
# raises ValueError naming the figure when the Dataset lacks what it needs. Every figure uses the
# first (smallest) learning rate when several were swept.
FIGURES: dict[str, Callable[[xr.Dataset, Path, Path], None]] = {
    "ss_fig1": plot_ss_fig1,
    "width_scaling": plot_width_scaling,
    "function_space": plot_function_space,
    "arora_fig1": plot_arora_fig1,
    "arora_fig2": plot_arora_fig2,
    "lazy_regime": plot_lazy_regime,
}

__all__ = ["FIGURES", "plot_arora_fig1", "plot_arora_fig2", "plot_function_space",
           "plot_lazy_regime", "plot_ss_fig1", "plot_width_scaling"]
