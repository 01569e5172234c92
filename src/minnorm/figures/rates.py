"""Figures of the rate studies (minnorm.analysis.beyond.rates): local slopes of ||W(T) - W*|| in m,
and the width exponent per learning rate (gradient descent against gradient flow).

Every number drawn or returned is computed by minnorm.analysis.beyond.rates, the module the theorem
checks use, so figure and checks agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes

from minnorm.analysis.beyond.rates import (
    FLOW_EXPONENT,
    LAZY_EXPONENT,
    MIN_WIDTHS_FIGURE,
    QUANTITY,
    LrScaling,
    RateTightness,
    lr_lines,
    lr_scaling,
    rate_lines,
    rate_tightness,
)
from minnorm.analysis.collect import WidthData, diverged_mask
from minnorm.figures.style import (
    facets,
    figure_style,
    log_value_axis,
    log_width_axis,
    new_grid,
    require,
    save_figure,
    selection_title,
    width_colors,
)

# Reference exponents drawn in both panels: the flow theorem's rate and m^-1/2.
REFERENCES = (
    (FLOW_EXPONENT, "$m^{-1/4}$ (flow theorem)", "--"),
    (LAZY_EXPONENT, "$m^{-1/2}$", ":"),
)
POINT_COLOR, MEAN_COLOR, UPPER_COLOR = "0.45", "0.1", "C3"
# Single runs are context, the means are the data of the fits: faint points.
SEED_ALPHA = 0.35


def _run_points(
    ax: Axes, data: WidthData, color: Any, label: str | None, alpha: float = 0.7
) -> None:
    """One small point per run of `data`."""
    ax.scatter(data.m, data.values, s=12, color=color, alpha=alpha, label=label, zorder=3, lw=0)


def _distance_axes(ax: Axes, widths: np.ndarray, title: str) -> None:
    """Log-log axes of a final-distance panel over `widths`, its labels and legend."""
    log_value_axis(ax)
    log_width_axis(ax, widths)
    ax.tick_params(axis="x", labelrotation=45)
    ax.set(ylabel="$\\|W(T) - W^*\\|$ (final step)", title=title)
    ax.legend(fontsize="x-small")


def _row(label: str, title: str) -> str:
    return f"{title} ({label})" if label else title


# ---- rate_tightness ----


def _distance_panel(ax: Axes, r: RateTightness, label: str) -> None:
    """(a) final distance against m: runs, geometric mean over runs, reference slopes."""
    runs = f"runs ({r.data.n_draws} draws x {r.data.n_seeds} seeds)"
    _run_points(ax, r.data, POINT_COLOR, runs)
    means = np.exp(r.log_means)
    ax.plot(r.widths, means, "o-", color=MEAN_COLOR, ms=4, lw=1.4, label="geometric mean")
    grid = np.geomspace(r.widths[0], r.widths[-1], 50)
    for slope, text, ls in REFERENCES:
        ax.plot(
            grid, means[0] * (grid / r.widths[0]) ** slope, ls=ls, color="0.35", lw=1.1, label=text
        )
    _distance_axes(ax, r.widths, _row(label, "(a) final distance to the target"))


def _slope_panel(ax: Axes, r: RateTightness, label: str) -> None:
    """(b) local slopes at the pairs' geometric midpoints with 95% CIs, references, the
    upper-half exponent with its band."""
    slopes = np.array([f.exponent for f in r.local])
    low = np.array([f.ci_low for f in r.local])
    high = np.array([f.ci_high for f in r.local])
    defined = np.isfinite(low) & np.isfinite(high)
    yerr = np.vstack(
        [slopes - np.where(defined, low, slopes), np.where(defined, high, slopes) - slopes]
    )
    curv = r.curvature
    text = f"local slope, 95% CI; curvature {curv.estimate:+.3f}"
    if curv.ci_defined:
        text += f" [{curv.ci_low:+.3f}, {curv.ci_high:+.3f}] per doubling"
    ax.errorbar(
        r.midpoints,
        slopes,
        yerr=yerr,
        fmt="o",
        color=MEAN_COLOR,
        ms=4,
        capsize=3,
        label=text,
        zorder=3,
    )
    for slope, name, ls in REFERENCES:
        ax.axhline(slope, ls=ls, color="0.35", lw=1.1, label=name)
    up, span = r.upper, (r.upper.widths[0], r.upper.widths[-1])
    ax.hlines(
        up.exponent,
        *span,
        color=UPPER_COLOR,
        lw=1.8,
        label=f"upper-half exponent {up.exponent:.3f}"
        + (f" [{up.ci_low:.3f}, {up.ci_high:.3f}]" if up.ci_defined else " (no CI)"),
    )
    if up.ci_defined:
        ax.fill_between(span, up.ci_low, up.ci_high, color=UPPER_COLOR, alpha=0.15, lw=0)
    log_width_axis(ax, r.widths)
    ax.tick_params(axis="x", labelrotation=45)
    ax.set(
        ylabel="local exponent $d \\log \\|W(T)-W^*\\| / d \\log m$",
        title=_row(label, "(b) local slopes between neighbouring widths"),
    )
    ax.legend(fontsize="x-small", loc="best")


def plot_rate_tightness(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Final ||W(T) - W*|| against m and its local slopes between neighbouring widths, one row
    per combination of the other swept values; needs finite values at MIN_WIDTHS_FIGURE or more
    widths. Returns the local slopes, the upper-half exponent and the curvature with their
    intervals (the numbers of the checks)."""
    require(collected, (QUANTITY, "diverged"), "rate_tightness")
    rows = facets(collected)
    results = []
    for label, sel in rows:
        try:
            results.append((label, rate_tightness(sel, MIN_WIDTHS_FIGURE)))
        except ValueError as exc:
            raise ValueError(f"figure 'rate_tightness': {exc}") from exc
    lines = []
    with figure_style():
        fig, axes = new_grid(len(rows), 2)
        for (label, r), (ax_d, ax_s) in zip(results, axes, strict=True):
            _distance_panel(ax_d, r, label)
            _slope_panel(ax_s, r, label)
            lines += [f"[{label}] {line}" if label else line for line in rate_lines(r)]
        fig.suptitle(selection_title(collected, collected, "how tight is the $m^{-1/4}$ rate"))
        save_figure(fig, out_png, out_pdf)
    return lines


# ---- gd_vs_flow ----


def _lr_colors(lrs: np.ndarray) -> list:
    """One colour per lr, from a sequential colour-blind-safe ramp (small lr light)."""
    return sns.color_palette("rocket_r", n_colors=len(lrs) + 1)[1:]


def _lr_panel(ax: Axes, s: LrScaling, label: str) -> None:
    """(a) final distance against m, one colour per lr: runs faint, geometric means, fits."""
    grid = np.geomspace(s.widths.min(), s.widths.max(), 50)
    for lr, fit, data, logm, color in zip(
        s.lrs, s.fits, s.data, s.log_means, _lr_colors(s.lrs), strict=True
    ):
        _run_points(ax, data, color, None, alpha=SEED_ALPHA)
        ok = np.isfinite(logm)
        ax.plot(s.widths[ok], np.exp(logm[ok]), "o", color=color, ms=5, zorder=4)
        if fit is None:
            continue
        ci = f"[{fit.ci_low:.2f}, {fit.ci_high:.2f}]" if fit.ci_defined else "(no CI)"
        ax.plot(
            grid,
            fit.predict(grid),
            color=color,
            lw=1.5,
            label=f"lr {lr:g}: {fit.exponent:.2f} {ci}",
        )
    _distance_axes(ax, s.widths, _row(label, "(a) final distance, one fit per lr"))


def _level_panel(ax: Axes, s: LrScaling, label: str) -> None:
    """(b) geometric mean at each lr / that at the smallest lr, one line per width, and the
    paired ratio at the largest width with its 95% interval."""
    colors = width_colors(s.widths)
    ratios = np.exp(s.log_means - s.log_means[0])
    for j, w in enumerate(s.widths):
        ok = np.isfinite(ratios[:, j])
        if ok.sum():
            ax.plot(
                s.lrs[ok],
                ratios[ok, j],
                "-",
                color=colors[int(w)],
                lw=1.0,
                alpha=0.7,
                label=f"m = {int(w)}",
            )
    for c in s.comparisons:
        if c.level is None or not c.level.ci_defined:
            continue
        lo, hi = c.level.bounds(0.95)
        centre = np.exp(c.level.estimate)
        ax.errorbar(
            [c.lr],
            [centre],
            yerr=[[centre - np.exp(lo)], [np.exp(hi) - centre]],
            fmt="D",
            color="black",
            ms=5,
            capsize=3,
            zorder=4,
        )
    ax.plot([], [], "D", color="black", label="paired ratio at the largest m, 95% CI")
    ax.axhline(1.0, color="0.35", lw=1.0, ls="--")
    ax.set_xscale("log")
    ax.set_xticks(s.lrs)
    ax.set_xticklabels([f"{lr:g}" for lr in s.lrs])
    ax.minorticks_off()
    ax.set(
        xlabel="learning rate (lr * T fixed)",
        ylabel=f"final distance / that at lr {s.lrs[0]:g}",
        title=_row(label, "(b) level against lr"),
    )
    ax.legend(fontsize="x-small", ncols=2)


def _gd_title(collected: xr.Dataset) -> str:
    """Suptitle: experiment, and how many diverged runs are not shown."""
    n_div = int(diverged_mask(collected).sum())
    title = f"{collected.attrs.get('experiment', '')}: width exponent against the step size"
    return title + (f"\n{n_div} diverged run{'s' if n_div > 1 else ''} not shown" if n_div else "")


def plot_gd_vs_flow(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Final ||W(T) - W*|| against m, one power-law fit per lr; level ratios against lr; one row
    per combination of the other swept values. Needs two or more lrs and, at some lr, finite
    values at two or more widths. Returns each lr's exponent and the paired comparisons."""
    require(collected, (QUANTITY, "diverged"), "gd_vs_flow")
    if collected.sizes.get("lr", 1) < 2:
        raise ValueError(
            "figure 'gd_vs_flow': needs two or more learning rates, dataset has "
            f"{collected.sizes.get('lr', 1)}"
        )
    rows = [(label, lr_scaling(sel)) for label, sel in facets(collected, exclude=("lr",))]
    if not any(f is not None for _, s in rows for f in s.fits):
        raise ValueError(
            "figure 'gd_vs_flow': needs finite values at two or more widths at some "
            "lr, dataset has 0 (every run diverged?)"
        )
    lines = []
    with figure_style():
        fig, axes = new_grid(len(rows), 2)
        for (label, s), (ax_m, ax_lr) in zip(rows, axes, strict=True):
            _lr_panel(ax_m, s, label)
            _level_panel(ax_lr, s, label)
            lines += [f"[{label}] {line}" if label else line for line in lr_lines(s)]
        fig.suptitle(_gd_title(collected))
        save_figure(fig, out_png, out_pdf)
    return lines
