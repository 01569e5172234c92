"""Figures beyond the papers: width scaling of the distance to W*, the function-space gap,
lazy-regime flips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.axes import Axes

from minnorm.analysis.collect import final_by_width
from minnorm.analysis.powerlaw import PowerLawFit, fit_power_law
from minnorm.figures.style import (
    figure_style,
    log_value_axis,
    log_width_axis,
    masked,
    new_figure,
    require,
    save_figure,
    seed_band,
    select,
    selection_title,
    width_colors,
)

# The theorems' residual rates for ||W - W*_L||: gradient flow and discrete GD (Satpathi & Srikant).
REFERENCE_SLOPES = ((-1.0 / 4.0, "$m^{-1/4}$ (flow)", "--"), (-1.0 / 8.0, "$m^{-1/8}$ (GD)", ":"))
# Lee et al. (2019): the linearization error and the relative weight change are O(m^-1/2).
LAZY_SLOPE = (-1.0 / 2.0, "$m^{-1/2}$ (Lee et al.)", "--")
POINT_COLOR, FIT_COLOR = "0.25", "C3"


def _need_widths(figure: str, widths: np.ndarray, values: np.ndarray) -> None:
    have = int((np.isfinite(values) & (values > 0)).any(axis=1).sum())
    if have < 2:
        raise ValueError(
            f"figure {figure!r}: needs finite positive values at two or more widths, "
            f"dataset has {have} (widths {list(widths)})"
        )


def _ci_label(fit: PowerLawFit) -> str:
    """Legend text of the fit's CI: "95% CI [lo, hi]", or that one seed per width gives none."""
    if fit.ci_defined:
        return f"{fit.ci:.0%} CI [{fit.ci_low:.3f}, {fit.ci_high:.3f}]"
    return "no CI (< 2 seeds at a width)"


def _scaling_panel(
    ax: Axes, widths: np.ndarray, values: np.ndarray, references, ylabel: str, title: str
) -> PowerLawFit:
    """Seeds as points, the fitted power law with its bootstrap band, reference slopes anchored
    at the smallest width's mean; log-log. `values: (k, seeds)`."""
    for j, w in enumerate(widths):
        ax.scatter(
            np.full(values.shape[1], w),
            values[j],
            s=18,
            color=POINT_COLOR,
            alpha=0.7,
            label="runs (one per seed)" if j == 0 else None,
            zorder=3,
        )
    fit = fit_power_law(widths, values)
    grid = np.geomspace(widths.min(), widths.max(), 50)
    ax.plot(
        grid,
        fit.predict(grid),
        color=FIT_COLOR,
        lw=1.8,
        label=f"fit $\\propto m^{{{fit.exponent:.3f}}}$, {_ci_label(fit)}",
    )
    if fit.ci_defined:  # with one seed at a width the bootstrap band would be a line
        low, high = fit.band(grid)
        ax.fill_between(grid, low, high, color=FIT_COLOR, alpha=0.15, lw=0)
    first = np.flatnonzero(np.isfinite(values).any(axis=1))[0]
    anchor = np.nanmean(values[first])
    for slope, label, ls in references:
        ax.plot(
            grid, anchor * (grid / widths[first]) ** slope, ls=ls, color="0.35", lw=1.2, label=label
        )
    log_value_axis(ax)
    log_width_axis(ax, widths)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize="small")
    return fit


def plot_width_scaling(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> None:
    """Final ||W(T) - W*|| and ||W(T) - W*|| / ||W* - W0|| against m (log-log), with power-law fits.

    First lr, smallest label noise; needs two or more widths and `dist_to_target`, `target_norm`.
    """
    require(collected, ("dist_to_target", "target_norm", "diverged"), "width_scaling")
    ds = select(collected)
    widths, dist = final_by_width(masked(ds, "dist_to_target"))
    _need_widths("width_scaling", widths, dist)
    _, norm = final_by_width(masked(ds, "target_norm"))
    with figure_style():
        fig, (ax_abs, ax_rel) = new_figure(2)
        _scaling_panel(
            ax_abs, widths, dist, REFERENCE_SLOPES, "$\\|W(T) - W^*\\|$", "(a) distance to target"
        )
        _scaling_panel(
            ax_rel,
            widths,
            dist / norm,
            REFERENCE_SLOPES,
            "$\\|W(T) - W^*\\| \\,/\\, \\|W^* - W_0\\|$",
            "(b) relative distance",
        )
        fig.suptitle(
            selection_title(collected, ds, "final distance to the min-norm target against width")
        )
        save_figure(fig, out_png, out_pdf)


def _over_time(ax: Axes, ds: xr.Dataset, da: xr.DataArray, ylabel: str, title: str) -> None:
    """One mean line (+-1 sd band over seeds) per width against the step; log y."""
    colors = width_colors(ds["width"].values)
    for width in ds["width"].values:
        seed_band(
            ax,
            ds["step"].values,
            da.sel(width=width),
            color=colors[int(width)],
            label=f"m = {int(width)}",
        )
    log_value_axis(ax)
    ax.set(xlabel="GD step", ylabel=ylabel, title=title)
    ax.legend(fontsize="small")


def plot_function_space(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> None:
    """RMS gap on test points between the network and (i) the linearized min-norm predictor,
    (ii) infinite-width kernel regression: final gap against m, and the linearized gap over time.

    First lr, smallest label noise. One width is allowed (no fit then). Needs `gap_linearized`,
    `gap_kernel`.
    """
    require(collected, ("gap_linearized", "gap_kernel", "diverged"), "function_space")
    ds = select(collected)
    gap = masked(ds, "gap_linearized")
    widths, lin = final_by_width(gap)
    _, ker = final_by_width(masked(ds, "gap_kernel"))
    if not np.isfinite(lin).any():
        raise ValueError("figure 'function_space': no finite gap_linearized; every run diverged?")
    with figure_style():
        fig, (ax_m, ax_t) = new_figure(2)
        for values, color, marker, name in (
            (lin, "C0", "o", "linearized min-norm $f_L(\\cdot; W^*)$"),
            (ker, "C1", "s", "kernel regression with $H^\\infty$"),
        ):
            for j, w in enumerate(widths):
                ax_m.scatter(
                    np.full(values.shape[1], w),
                    values[j],
                    s=18,
                    color=color,
                    marker=marker,
                    alpha=0.7,
                    label=f"to {name}" if j == 0 else None,
                    zorder=3,
                )
            ax_m.plot(widths, np.nanmean(values, axis=1), color=color, lw=1.2)
        if (np.isfinite(lin) & (lin > 0)).any(axis=1).sum() >= 2:
            fit = fit_power_law(widths, lin)
            ax_m.plot(
                widths,
                fit.predict(widths),
                color="C3",
                lw=1.8,
                label=f"fit (linearized) $\\propto m^{{{fit.exponent:.3f}}}$, "
                + (
                    f"CI [{fit.ci_low:.3f}, {fit.ci_high:.3f}]"
                    if fit.ci_defined
                    else "no CI (< 2 seeds at a width)"
                ),
            )
        log_value_axis(ax_m)
        log_width_axis(ax_m, widths)
        ax_m.set(ylabel="RMS gap on test points (final step)", title="(a) gap against width")
        ax_m.legend(fontsize="small")
        _over_time(
            ax_t,
            ds,
            gap,
            "RMS $f - f_L(\\cdot; W^*)$ on test points",
            "(b) linearized gap over training",
        )
        fig.suptitle(
            selection_title(collected, ds, "network against its linearization in function space")
        )
        save_figure(fig, out_png, out_pdf)


def plot_lazy_regime(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> None:
    """Fraction of hidden units whose activation pattern on the training set flipped since init:
    final value against m (log-log, fitted slope, m^-1/2 reference) and its growth over steps.

    First lr, smallest label noise; needs two or more widths with a positive final fraction.
    """
    require(collected, ("activation_flip_fraction", "diverged"), "lazy_regime")
    ds = select(collected)
    flips = masked(ds, "activation_flip_fraction")
    widths, final = final_by_width(flips)
    _need_widths("lazy_regime", widths, final)
    # A run with no flip at all cannot sit on a log axis; it is dropped from the fit and counted.
    zeros = int((final == 0).sum())
    final = np.where(final > 0, final, np.nan)
    with figure_style():
        fig, (ax_m, ax_t) = new_figure(2)
        title = "(a) final fraction" + (f" ({zeros} runs with 0 omitted)" if zeros else "")
        _scaling_panel(ax_m, widths, final, (LAZY_SLOPE,), "fraction of flipped activations", title)
        _over_time(
            ax_t, ds, flips.where(flips > 0), "fraction of flipped activations", "(b) over training"
        )
        fig.suptitle(
            selection_title(collected, ds, "lazy regime: flipped activations against width")
        )
        save_figure(fig, out_png, out_pdf)
