"""Registry of the figures: name (as in a config's `figures:` list) -> FigureSpec.

Adding a figure takes three things and nothing else: its plot function, one entry below, and
its caption `captions/<name>.rst`. The config schema's enum, the config checks
(`FigureSpec.problems`), the Snakemake rule and the report entry are derived from this dict.
The plot functions are named as "module:function" so that importing the registry (at every
config validation) does not import matplotlib and seaborn.
"""

from __future__ import annotations

import importlib
from typing import Any

from minnorm.figures.spec import FigureSpec

_PAPER = "minnorm.figures.paper"
_DIAGNOSTICS = "minnorm.figures.diagnostics"
_RATES = "minnorm.figures.rates"
_VARIANTS = "minnorm.figures.variants"

# A power law needs at least three widths to be a fit rather than a line through two points;
# comparisons across widths need two. Every figure uses the first (smallest) learning rate when
# several were swept.
FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("ss_fig1", f"{_PAPER}:plot_ss_fig1",
                   "Satpathi & Srikant Figure 1: distances to the target and from init against steps"),
        FigureSpec("width_scaling", f"{_DIAGNOSTICS}:plot_width_scaling",
                   "final distance to the target against width, with the fitted power law",
                   min_widths=3),
        FigureSpec("function_space", f"{_DIAGNOSTICS}:plot_function_space",
                   "network against its linearization and kernel regression (Lee et al.)",
                   min_widths=2),
        FigureSpec("arora_fig2", f"{_PAPER}:plot_arora_fig2",
                   "Arora et al. Figure 2: test loss, test error and the bound against label noise",
                   needs_pm1=True, min_noise_levels=2),
        FigureSpec("arora_fig1", f"{_PAPER}:plot_arora_fig1",
                   "Arora et al. Figure 1: training loss and the spectrum of H with label projections",
                   needs_pm1=True),
        FigureSpec("lazy_regime", f"{_DIAGNOSTICS}:plot_lazy_regime",
                   "fraction of flipped activations against width (lazy regime)",
                   min_widths=2),
        # Beyond the paper (config/beyond.yaml, README "Beyond the paper").
        FigureSpec("rate_tightness", f"{_RATES}:plot_rate_tightness",
                   "local slopes of ||W(T) - W*|| between neighbouring widths, with bootstrap CIs",
                   min_widths=4),
        FigureSpec("gd_vs_flow", f"{_RATES}:plot_gd_vs_flow",
                   "final ||W(T) - W*|| against width, one line per learning rate at fixed lr * T",
                   min_widths=3, needs_sweep=("lr",)),
        FigureSpec("lazy_phase", f"{_VARIANTS}:plot_lazy_phase",
                   "kappa x m phase diagram of the relative distance and the flipped activations",
                   min_widths=2, needs_sweep=("model.kappa",)),
        FigureSpec("fig1_variants", f"{_VARIANTS}:plot_fig1_variants",
                   "Figure 1 variants ranked by their distance to the paper's read-off values",
                   min_widths=1),
        FigureSpec("fig1_readoffs", f"{_VARIANTS}:plot_fig1_readoffs",
                   "Figure 1 panels of the closest variant and of the default, with the read-offs",
                   min_widths=1),
    )
}

_PLOT_FUNCTIONS = {
    "plot_ss_fig1": _PAPER, "plot_arora_fig1": _PAPER, "plot_arora_fig2": _PAPER,
    "plot_width_scaling": _DIAGNOSTICS, "plot_function_space": _DIAGNOSTICS,
    "plot_lazy_regime": _DIAGNOSTICS,
    "plot_rate_tightness": _RATES, "plot_gd_vs_flow": _RATES,
    "plot_lazy_phase": _VARIANTS, "plot_fig1_variants": _VARIANTS, "plot_fig1_readoffs": _VARIANTS,
}


def __getattr__(name: str) -> Any:
    """`minnorm.figures.plot_*` imported on first access (keeps the registry import light)."""
    if name in _PLOT_FUNCTIONS:
        return getattr(importlib.import_module(_PLOT_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'minnorm.figures' has no attribute {name!r}")


__all__ = ["FIGURES", "FigureSpec", *_PLOT_FUNCTIONS]
