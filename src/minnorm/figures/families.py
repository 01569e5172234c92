"""Figures of the study over networks (issue 29; minnorm.analysis.beyond.families): a final
quantity against the width, one line per activation, one panel per output layer (fixed,
trained).

Every number drawn or returned is computed by minnorm.analysis.beyond.families, the module the
checks use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.axes import Axes

from minnorm.analysis.beyond.families import (
    DISTANCE,
    FUNCTION_GAP,
    FamilyCurve,
    curve_lines,
    family_curves,
)
from minnorm.figures.style import (
    figure_style,
    log_value_axis,
    log_width_axis,
    new_figure,
    require,
    save_figure,
)

# The reference slopes drawn in every panel (the flow theorem's and m^-1/2).
REFERENCES = ((-0.25, "$m^{-1/4}$", "--"), (-0.5, "$m^{-1/2}$", ":"))


def _plot(
    collected: xr.Dataset, out_png: Path, out_pdf: Path, quantity: str, name: str, ylabel: str
) -> list[str]:
    require(collected, (quantity, "diverged"), name)
    curves = family_curves(collected, quantity)  # other swept values: their first
    if not curves:
        raise ValueError(f"figure {name!r}: no runs")
    if not any(np.isfinite(c.means).any() for c in curves):
        raise ValueError(f"figure {name!r}: every run diverged; nothing to plot")
    panels = {"fixed": [c for c in curves if c.label.endswith("fixed")]}
    trained = [c for c in curves if c.label.endswith("trained")]
    if trained:
        panels["trained"] = trained
    activations = list(dict.fromkeys(c.label.split(",")[0] for c in curves))
    colors = {a: f"C{i}" for i, a in enumerate(activations)}
    with figure_style():
        fig, axes = new_figure(len(panels))
        for ax, (kind, members) in zip(axes, panels.items(), strict=True):
            _panel(ax, members, colors)
            ax.set(ylabel=ylabel, title=f"output layer {kind}")
        save_figure(fig, out_png, out_pdf)
    return curve_lines(curves, quantity)


def _panel(ax: Axes, members: list[FamilyCurve], colors: dict[str, str]) -> None:
    widths = np.unique(np.concatenate([c.widths for c in members]))
    for curve in members:
        activation = curve.label.split(",")[0]
        fitted = f" ({curve.fit.exponent:+.3f})" if curve.fit is not None else ""
        ax.plot(curve.widths, curve.means, "o-", ms=3.5, lw=1.3, color=colors[activation],
                label=f"{activation}{fitted}")  # fmt: skip
    finite = [c.means[0] for c in members if c.means.size and np.isfinite(c.means[0])]
    if finite:
        anchor = float(np.exp(np.mean(np.log(finite))))
        grid = np.geomspace(widths[0], widths[-1], 50)
        for slope, text, ls in REFERENCES:
            ax.plot(grid, anchor * (grid / widths[0]) ** slope, ls=ls, color="0.35", lw=1.0,
                    label=text)  # fmt: skip
    log_value_axis(ax)
    log_width_axis(ax, widths)
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(fontsize="x-small", title="exponent over all widths", title_fontsize="x-small")


def plot_families_distance(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Final ||theta(T) - theta*|| against m, one line per activation (geometric mean over draws
    and seeds), a panel per output layer; returns each family's exponent with its intervals."""
    return _plot(
        collected, out_png, out_pdf, DISTANCE, "families_distance",
        "$\\|\\theta(T) - \\theta^*\\|$ (final step)",
    )  # fmt: skip


def plot_families_gap(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Final RMS network-to-linearisation gap f - f_L(.; theta*) on the test points against m, one
    line per activation, a panel per output layer; returns each family's exponent."""
    return _plot(
        collected, out_png, out_pdf, FUNCTION_GAP, "families_gap",
        "RMS $f - f_L(\\cdot; \\theta^*)$ on test points (final step)",
    )  # fmt: skip
