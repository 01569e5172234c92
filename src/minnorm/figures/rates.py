"""Figures of the rate studies (minnorm.analysis.beyond.rates): local slopes of ||W(T) - W*|| in m,
and
the width exponent per learning rate (gradient descent against gradient flow).

Every number drawn or returned is computed by minnorm.analysis.beyond.rates, the module the theorem
checks use, so figure and checks agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes

from minnorm.analysis.beyond.rates import (
    FLOW_EXPONENT,
    LAZY_EXPONENT,
    QUANTITY,
    LrScaling,
    RateTightness,
    lr_lines,
    lr_scaling,
    lr_slice,
    n_lrs,
    rate_lines,
    rate_tightness,
)
from minnorm.analysis.collect import diverged_mask
from minnorm.figures.style import (
    figure_style,
    log_value_axis,
    log_width_axis,
    new_figure,
    require,
    save_figure,
    select,
    selection_title,
    width_colors,
)

# Reference exponents drawn in both panels: the flow theorem's rate and m^-1/2.
REFERENCES = (
    (FLOW_EXPONENT, "$m^{-1/4}$ (flow theorem)", "--"),
    (LAZY_EXPONENT, "$m^{-1/2}$", ":"),
)
POINT_COLOR, MEAN_COLOR, UPPER_COLOR = "0.45", "0.1", "C3"
# Seeds are context, the seed means are the data of the fits: faint points.
SEED_ALPHA = 0.35


def _seed_points(
    ax: Axes, widths: np.ndarray, values: np.ndarray, color, label: str | None, alpha: float = 0.7
) -> None:
    """One small point per (width, seed) of `values: (k, seeds)`."""
    for j, w in enumerate(widths):
        ax.scatter(
            np.full(values.shape[1], w),
            values[j],
            s=12,
            color=color,
            alpha=alpha,
            label=label if j == 0 else None,
            zorder=3,
            lw=0,
        )


def _distance_axes(ax: Axes, widths: np.ndarray, title: str) -> None:
    """Log-log axes of a final-distance panel over `widths`, its labels and legend."""
    log_value_axis(ax)
    log_width_axis(ax, widths)
    ax.tick_params(axis="x", labelrotation=45)
    ax.set(ylabel="$\\|W(T) - W^*\\|$ (final step)", title=title)
    ax.legend(fontsize="small")


# ---- rate_tightness ----


def _distance_panel(ax: Axes, r: RateTightness) -> None:
    """(a) final distance against m: seeds, geometric seed mean, reference slopes."""
    _seed_points(ax, r.widths, r.values, POINT_COLOR, "runs (one per seed)")
    means = np.exp(r.local.log_means)
    ax.plot(
        r.widths, means, "o-", color=MEAN_COLOR, ms=4, lw=1.4, label="geometric mean over seeds"
    )
    grid = np.geomspace(r.widths[0], r.widths[-1], 50)
    for slope, label, ls in REFERENCES:
        ax.plot(
            grid, means[0] * (grid / r.widths[0]) ** slope, ls=ls, color="0.35", lw=1.1, label=label
        )
    _distance_axes(ax, r.widths, "(a) final distance to the target")


def _slope_panel(ax: Axes, r: RateTightness) -> None:
    """(b) local slopes at the pairs' geometric midpoints with CIs, references, upper-half fit."""
    loc = r.local
    yerr = (
        np.vstack([loc.slopes - loc.ci_low, loc.ci_high - loc.slopes]) if loc.ci_defined else None
    )
    label = "local slope, 95% CI" if loc.ci_defined else "local slope (no CI: < 2 seeds at a width)"
    ax.errorbar(
        loc.midpoints,
        loc.slopes,
        yerr=yerr,
        fmt="o",
        color=MEAN_COLOR,
        ms=4,
        capsize=3,
        label=label,
        zorder=3,
    )
    if np.isfinite(loc.trend):
        ci = f" [{loc.trend_ci_low:+.3f}, {loc.trend_ci_high:+.3f}]" if loc.ci_defined else ""
        ax.plot(
            loc.midpoints,
            loc.trend_line(loc.midpoints),
            color="C0",
            lw=1.0,
            label=f"trend {loc.trend:+.3f}{ci} per doubling",
        )
    for slope, text, ls in REFERENCES:
        ax.axhline(slope, ls=ls, color="0.35", lw=1.1, label=text)
    up, span = r.upper, (r.upper_widths[0], r.upper_widths[-1])
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
        title="(b) local slopes between neighbouring widths",
    )
    ax.legend(fontsize="x-small", loc="best")


def plot_rate_tightness(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Final ||W(T) - W*|| against m and its local slopes between neighbouring widths.

    First lr, first value of each swept setting, smallest label noise; needs finite values at
    three or more widths. Returns the local slopes, the upper-half exponent and the trend, with
    their CIs.
    """
    require(collected, (QUANTITY, "diverged"), "rate_tightness")
    try:
        r = rate_tightness(collected)
    except ValueError as exc:
        raise ValueError(f"figure 'rate_tightness': {exc}") from exc
    with figure_style():
        fig, (ax_d, ax_s) = new_figure(2)
        _distance_panel(ax_d, r)
        _slope_panel(ax_s, r)
        fig.suptitle(
            selection_title(collected, select(collected), "how tight is the $m^{-1/4}$ rate")
        )
        save_figure(fig, out_png, out_pdf)
    return rate_lines(r)


# ---- gd_vs_flow ----


def _lr_colors(lrs: np.ndarray) -> list:
    """One colour per lr, from a sequential colour-blind-safe ramp (small lr light)."""
    return sns.color_palette("rocket_r", n_colors=len(lrs) + 1)[1:]


def _lr_panel(ax: Axes, s: LrScaling) -> None:
    """(a) final distance against m, one colour per lr: seeds faint, geometric means, fits."""
    grid = np.geomspace(s.widths.min(), s.widths.max(), 50)
    for lr, fit, values, logm, color in zip(
        s.lrs, s.fits, s.values, s.log_means, _lr_colors(s.lrs), strict=True
    ):
        _seed_points(ax, s.widths, values, color, None, alpha=SEED_ALPHA)
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
            label=f"lr {lr:g}: exponent {fit.exponent:.2f} {ci}",
        )
    _distance_axes(ax, s.widths, "(a) final distance, one fit per lr")


def _level_panel(ax: Axes, s: LrScaling) -> None:
    """(b) geometric seed mean at each lr / that at the smallest lr, one line per width."""
    colors = width_colors(s.widths)
    for j, w in enumerate(s.widths):
        ok = np.isfinite(s.ratios[:, j])
        if ok.sum():
            ax.plot(
                s.lrs[ok],
                s.ratios[ok, j],
                "o-",
                color=colors[int(w)],
                ms=4,
                lw=1.2,
                label=f"m = {int(w)}",
            )
    ax.axhline(1.0, color="0.35", lw=1.0, ls="--")
    ax.set_xscale("log")
    ax.set_xticks(s.lrs)
    ax.set_xticklabels([f"{lr:g}" for lr in s.lrs])
    ax.minorticks_off()
    ax.set(
        xlabel="learning rate (lr * T fixed)",
        ylabel=f"final distance / that at lr {s.lrs[0]:g}",
        title="(b) level against lr",
    )
    ax.legend(fontsize="small", ncols=2)


def _gd_title(collected: xr.Dataset) -> str:
    """Suptitle: experiment, the fixed selection, and how many diverged runs are not shown."""
    sel = [lr_slice(collected, i) for i in range(n_lrs(collected))]
    n_div = sum(int(diverged_mask(one).sum()) for one in sel)
    noise = (
        f" (label noise {sel[0]['label_noise'].item():g})"
        if collected.sizes.get("label_noise", 1) > 1
        else ""
    )
    title = f"{collected.attrs.get('experiment', '')}: width exponent against the step size{noise}"
    return title + (f"\n{n_div} diverged run{'s' if n_div > 1 else ''} not shown" if n_div else "")


def plot_gd_vs_flow(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Final ||W(T) - W*|| against m, one power-law fit per lr; level ratios against lr.

    First value of each other swept setting, smallest label noise; needs two or more lrs and,
    at some lr, finite values at two or more widths. Returns each lr's exponent with its CI and
    the level ratios at the largest width.
    """
    require(collected, (QUANTITY, "diverged"), "gd_vs_flow")
    if n_lrs(collected) < 2:
        raise ValueError(
            f"figure 'gd_vs_flow': needs two or more learning rates, dataset has {n_lrs(collected)}"
        )
    s = lr_scaling(collected)
    fitted = sum(f is not None for f in s.fits)
    if fitted == 0:
        raise ValueError(
            "figure 'gd_vs_flow': needs finite values at two or more widths at some "
            "lr, dataset has 0 (every run diverged?)"
        )
    with figure_style():
        fig, (ax_m, ax_lr) = new_figure(2)
        _lr_panel(ax_m, s)
        _level_panel(ax_lr, s)
        fig.suptitle(_gd_title(collected))
        save_figure(fig, out_png, out_pdf)
    return lr_lines(s)
