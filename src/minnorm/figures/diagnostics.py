"""Figures beyond the papers: width scaling of the distance to W*, the function-space gap,
lazy-regime flips."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes

from minnorm.analysis.collect import WidthData, width_data
from minnorm.analysis.powerlaw import PowerLawFit, fit_power_law
from minnorm.figures.style import (
    facets,
    figure_style,
    log_value_axis,
    log_width_axis,
    masked,
    new_grid,
    require,
    save_figure,
    seed_band,
    selection_title,
    width_colors,
)

# The theorems' residual rates for ||W - W*_L||: gradient flow and discrete GD (Satpathi & Srikant).
REFERENCE_SLOPES = ((-1.0 / 4.0, "$m^{-1/4}$ (flow)", "--"), (-1.0 / 8.0, "$m^{-1/8}$ (GD)", ":"))
# Lee et al. (2019): the linearization error and the relative weight change are O(m^-1/2).
LAZY_SLOPE = (-1.0 / 2.0, "$m^{-1/2}$ (Lee et al.)", "--")
POINT_COLOR, FIT_COLOR = "0.25", "C3"
# One colour per data draw for the points (the fit and its band stay FIT_COLOR).
DRAW_PALETTE = "tab10"


def _need_widths(figure: str, data: WidthData) -> None:
    finite = np.isfinite(data.values) & (data.values > 0)
    have = int(np.unique(data.m[finite]).size)
    if have < 2:
        raise ValueError(
            f"figure {figure!r}: needs finite positive values at two or more widths, "
            f"dataset has {have} (widths {sorted(set(data.m.astype(int).tolist()))})"
        )


def _ci_label(fit: PowerLawFit) -> str:
    """Legend text of the fit's interval, or why there is none."""
    if fit.ci_defined:
        scope = "one draw" if fit.conditional else f"{fit.n_draws} draws"
        return f"{fit.ci:.0%} CI [{fit.ci_low:.3f}, {fit.ci_high:.3f}] ({scope})"
    return "no CI (too few runs)"


def _points(
    ax: Axes, data: WidthData, marker: str = "o", color: Any = None, label: str = ""
) -> None:
    """One point per run; coloured by data draw when there are several."""
    draws = np.unique(data.draw)
    palette = sns.color_palette(DRAW_PALETTE, n_colors=max(draws.size, 1))
    for i, d in enumerate(draws):
        one = data.subset(data.draw == d)
        if color is not None:
            c = color
        else:
            c = POINT_COLOR if draws.size == 1 else palette[i]
        name = label or ("runs (one per seed)" if draws.size == 1 else f"runs of draw {d}")
        ax.scatter(
            one.m,
            one.values,
            s=18,
            color=c,
            marker=marker,
            alpha=0.7,
            label=name if (draws.size > 1 or i == 0) and (not label or i == 0) else None,
            zorder=3,
        )


def _scaling_panel(
    ax: Axes,
    data: WidthData,
    references: Sequence[tuple[float, str, str]],
    ylabel: str,
    title: str,
) -> PowerLawFit:
    """Runs as points, the fitted power law with its band, reference slopes anchored at the
    smallest width's mean; log-log."""
    _points(ax, data)
    fit = fit_power_law(data.m, data.values, draw=data.draw)
    widths = np.unique(data.m)
    grid = np.geomspace(widths.min(), widths.max(), 50)
    ax.plot(
        grid,
        fit.predict(grid),
        color=FIT_COLOR,
        lw=1.8,
        label=f"fit $\\propto m^{{{fit.exponent:.3f}}}$, {_ci_label(fit)}",
    )
    if fit.ci_defined:
        low, high = fit.band(grid)
        ax.fill_between(grid, low, high, color=FIT_COLOR, alpha=0.15, lw=0)
    has = [w for w in widths if np.isfinite(data.values[data.m == w]).any()]
    first = has[0]
    anchor = np.nanmean(data.values[data.m == first])
    for slope, label, ls in references:
        ax.plot(grid, anchor * (grid / first) ** slope, ls=ls, color="0.35", lw=1.2, label=label)
    log_value_axis(ax)
    log_width_axis(ax, widths)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize="x-small")
    return fit


def _row_title(label: str, tag: str) -> str:
    return f"{tag} ({label})" if label else tag


def _fit_line(name: str, label: str, fit: PowerLawFit) -> str:
    where = f" [{label}]" if label else ""
    return f"{name}{where}: exponent {fit.exponent:.3f}, {_ci_label(fit)}"


def plot_width_scaling(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Final ||W(T) - W*|| and ||W(T) - W*|| / ||W* - W0|| against m (log-log), with power-law
    fits over the data draws; one row per combination of the other swept values. Needs two or
    more widths and `dist_to_target`, `target_norm`. Returns the fitted exponents."""
    require(collected, ("dist_to_target", "target_norm", "diverged"), "width_scaling")
    rows = facets(collected)
    lines = []
    with figure_style():
        fig, axes = new_grid(len(rows), 2)
        for (label, sel), (ax_abs, ax_rel) in zip(rows, axes, strict=True):
            dist = width_data(sel, sel["dist_to_target"])
            _need_widths("width_scaling", dist)
            norm = width_data(sel, sel["target_norm"])
            rel = WidthData(dist.m, dist.values / norm.values, dist.draw, dist.seed)
            fit = _scaling_panel(
                ax_abs,
                dist,
                REFERENCE_SLOPES,
                "$\\|W(T) - W^*\\|$",
                _row_title(label, "(a) distance to target"),
            )
            fit_rel = _scaling_panel(
                ax_rel,
                rel,
                REFERENCE_SLOPES,
                "$\\|W(T) - W^*\\| \\,/\\, \\|W^* - W_0\\|$",
                _row_title(label, "(b) relative distance"),
            )
            lines += [_fit_line("distance", label, fit), _fit_line("relative", label, fit_rel)]
        fig.suptitle(selection_title(collected, collected, "final distance to the min-norm target"))
        save_figure(fig, out_png, out_pdf)
    return lines


def _over_time(ax: Axes, ds: xr.Dataset, da: xr.DataArray, ylabel: str, title: str) -> None:
    """One mean line (+-1 sd band over the runs) per width against the step; log y."""
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


def plot_function_space(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """RMS gap on test points between the network and (i) the linearized min-norm predictor,
    (ii) infinite-width kernel regression: final gap against m, and the linearized gap over time;
    one row per combination of the other swept values. One width is allowed (no fit then).
    Needs `gap_linearized`, `gap_kernel`."""
    require(collected, ("gap_linearized", "gap_kernel", "diverged"), "function_space")
    rows = facets(collected)
    lines = []
    with figure_style():
        fig, axes = new_grid(len(rows), 2)
        for (label, sel), (ax_m, ax_t) in zip(rows, axes, strict=True):
            lin = width_data(sel, sel["gap_linearized"])
            ker = width_data(sel, sel["gap_kernel"])
            if not np.isfinite(lin.values).any():
                raise ValueError(
                    "figure 'function_space': no finite gap_linearized; every run diverged?"
                )
            widths = np.unique(lin.m)
            for data, color, marker, name in (
                (lin, "C0", "o", "to linearized min-norm $f_L(\\cdot; W^*)$"),
                (ker, "C1", "s", "to kernel regression with $H^\\infty$"),
            ):
                _points(ax_m, data, marker=marker, color=color, label=name)
                means = [np.nanmean(data.values[data.m == w]) for w in widths]
                ax_m.plot(widths, means, color=color, lw=1.2)
            positive = np.isfinite(lin.values) & (lin.values > 0)
            if np.unique(lin.m[positive]).size >= 2:
                fit = fit_power_law(lin.m, lin.values, draw=lin.draw)
                ax_m.plot(
                    widths,
                    fit.predict(widths),
                    color="C3",
                    lw=1.8,
                    label=f"fit (linearized) $\\propto m^{{{fit.exponent:.3f}}}$, "
                    + _ci_label(fit),
                )
                lines.append(_fit_line("gap to the linearization", label, fit))
            log_value_axis(ax_m)
            log_width_axis(ax_m, widths)
            ax_m.set(
                ylabel="RMS gap on test points (final step)",
                title=_row_title(label, "(a) gap against width"),
            )
            ax_m.legend(fontsize="x-small")
            _over_time(
                ax_t,
                sel,
                masked(sel, "gap_linearized"),
                "RMS $f - f_L(\\cdot; W^*)$ on test points",
                _row_title(label, "(b) linearized gap over training"),
            )
        fig.suptitle(selection_title(collected, collected, "network against its linearization"))
        save_figure(fig, out_png, out_pdf)
    return lines


def plot_lazy_regime(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Fraction of hidden units whose activation pattern on the training set flipped since init:
    final value against m (log-log, fitted slope, m^-1/2 reference) and its growth over steps;
    one row per combination of the other swept values. Needs two or more widths with a positive
    final fraction."""
    require(collected, ("activation_flip_fraction", "diverged"), "lazy_regime")
    rows = facets(collected)
    lines = []
    with figure_style():
        fig, axes = new_grid(len(rows), 2)
        for (label, sel), (ax_m, ax_t) in zip(rows, axes, strict=True):
            flips = masked(sel, "activation_flip_fraction")
            data = width_data(sel, sel["activation_flip_fraction"])
            _need_widths("lazy_regime", data)
            # A run with no flip at all cannot sit on a log axis: dropped from the fit, counted.
            zeros = int((data.values == 0).sum())
            data = WidthData(
                data.m, np.where(data.values > 0, data.values, np.nan), data.draw, data.seed
            )
            title = "(a) final fraction" + (f" ({zeros} runs with 0 omitted)" if zeros else "")
            fit = _scaling_panel(
                ax_m,
                data,
                (LAZY_SLOPE,),
                "fraction of flipped activations",
                _row_title(label, title),
            )
            lines.append(_fit_line("flipped fraction", label, fit))
            _over_time(
                ax_t,
                sel,
                flips.where(flips > 0),
                "fraction of flipped activations",
                _row_title(label, "(b) over training"),
            )
        fig.suptitle(selection_title(collected, collected, "lazy regime: flipped activations"))
        save_figure(fig, out_png, out_pdf)
    return lines
