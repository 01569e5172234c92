"""Figures of the swept-setting studies: the kappa x m lazy phase diagram
(minnorm.analysis.beyond.lazy)
and the Figure 1 variants against the paper's read-offs (minnorm.analysis.beyond.readoffs).

Every number drawn or returned is computed by the beyond modules, so figures and checks agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from minnorm.analysis.beyond import lazy, readoffs
from minnorm.analysis.collect import diverged_mask
from minnorm.figures.paper import SS_PANELS, readoff_markers
from minnorm.figures.style import (
    PANEL_SIZE,
    facets,
    figure_style,
    log_value_axis,
    masked,
    new_figure,
    new_grid,
    require,
    save_figure,
    seed_band,
    width_colors,
)

# Values of kappa sqrt(m) drawn as guide lines on the heatmaps (those inside the data's range).
GUIDE_PRODUCTS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
# Cells are annotated with their value while the grid is small enough to stay legible.
MAX_ANNOTATED_CELLS = 80
DEFAULT_COLOR, OTHER_COLOR, BEST_COLOR = "C3", "0.55", "C0"


# ---- lazy_phase ----


def _log_edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around sorted positive centres `values: (k,)` on a log axis: (k + 1,)."""
    logs = np.log(values.astype(np.float64))
    if logs.size == 1:
        return np.exp(logs[0] + np.array([-0.5, 0.5]) * np.log(2.0))
    mid = (logs[:-1] + logs[1:]) / 2
    return np.exp(np.concatenate([[2 * logs[0] - mid[0]], mid, [2 * logs[-1] - mid[-1]]]))


def _heatmap(ax: Axes, grid: lazy.LazyGrid, values: np.ndarray, label: str, title: str) -> None:
    """kappa (y, log) x m (x, log2) cells of `values: (k, w)`, log colour scale, kappa sqrt(m)
    guide lines; zeros and NaN left blank."""
    positive = np.where(np.isfinite(values) & (values > 0), values, np.nan)
    x_edges, y_edges = _log_edges(grid.width), _log_edges(grid.kappa)
    norm = None
    if np.isfinite(positive).any():
        low, high = np.nanmin(positive), np.nanmax(positive)
        norm = LogNorm(low, high if high > low else low * 1.01)
    mesh = ax.pcolormesh(
        x_edges, y_edges, np.ma.masked_invalid(positive), cmap="viridis", norm=norm, shading="flat"
    )
    ax.figure.colorbar(mesh, ax=ax, label=label)
    if values.size <= MAX_ANNOTATED_CELLS:
        for i, k in enumerate(grid.kappa):
            for j, m in enumerate(grid.width):
                text = "-" if not np.isfinite(values[i, j]) else f"{values[i, j]:.2g}"
                ax.text(
                    m,
                    k,
                    text,
                    ha="center",
                    va="center",
                    fontsize="x-small",
                    color="white",
                    path_effects=_outline(),
                )
    m_line = np.geomspace(x_edges[0], x_edges[-1], 50)
    products = grid.kappa_sqrt_m
    for c in GUIDE_PRODUCTS:
        if products.min() <= c <= products.max():
            kappa_line = c / np.sqrt(m_line)
            ax.plot(m_line, kappa_line, ls="--", color="white", lw=1.0)
            inside = np.flatnonzero((kappa_line >= y_edges[0]) & (kappa_line <= y_edges[-1]))
            if inside.size:  # label where the line leaves the plot (text outside would be clipped)
                at = inside[-1]
                ax.text(
                    m_line[at],
                    kappa_line[at],
                    f"$\\kappa\\sqrt{{m}}$={c:g}",
                    color="white",
                    fontsize="x-small",
                    ha="right",
                    va="bottom",
                    path_effects=_outline(),
                    clip_on=True,
                )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_xticks(grid.width)
    ax.set_xticklabels(
        [f"$2^{{{np.log2(m):.3g}}}$" if np.log2(m) % 1 == 0 else f"{m}" for m in grid.width]
    )
    ax.set_yticks(grid.kappa)
    ax.set_yticklabels([f"{k:g}" for k in grid.kappa])
    ax.minorticks_off()
    ax.set(xlabel="width $m$", ylabel="init scale $\\kappa$", title=title)


def _log_x_axis(ax: Axes) -> None:
    """Log x axis labelled at 1, 2, 5 x 10^k as plain numbers (as style.log_value_axis for y)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def _outline() -> list:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=1.5, foreground="black")]


def _collapse_panel(ax: Axes, grid: lazy.LazyGrid, fit: lazy.Collapse, title: str) -> None:
    """Every cell's relative distance against kappa m^beta (beta: the estimate), coloured by
    kappa, with the degree-2 fit."""
    colors = sns.color_palette("rocket", n_colors=len(grid.kappa))
    products = grid.kappa[:, None] * grid.width[None, :].astype(np.float64) ** fit.beta
    for i, k in enumerate(grid.kappa):
        ok = np.isfinite(grid.rel_dist[i]) & (grid.rel_dist[i] > 0)
        ax.plot(
            products[i, ok],
            grid.rel_dist[i, ok],
            "o-",
            color=colors[i],
            ms=5,
            lw=0.8,
            label=f"$\\kappa$ = {k:g}",
        )
    if fit.n_cells and np.all(np.isfinite(fit.collapse.coef)):
        xs = np.geomspace(*fit.x_range, 100)
        ax.plot(
            xs,
            np.exp(fit.collapse.predict(np.log(xs))),
            color="0.2",
            lw=1.6,
            label=f"degree-{lazy.COLLAPSE_DEGREE} fit, $R^2$ = {fit.collapse.r2:.3f}",
        )
    ax.axhline(
        lazy.LAZY_REL_DIST,
        ls=":",
        color="0.4",
        lw=1.0,
        label=f"relative distance {lazy.LAZY_REL_DIST:g}",
    )
    _log_x_axis(ax)
    log_value_axis(ax)
    ax.set(
        xlabel=f"$\\kappa\\, m^{{\\hat\\beta}}$, $\\hat\\beta$ = {fit.beta:.3f}",
        ylabel="$\\|W(T) - W^*\\| / \\|W^* - W_0\\|$",
        title=title,
    )
    ax.legend(fontsize="x-small")


def lazy_summary(b: lazy.LazyBeta) -> list[str]:
    """Summary lines of the lazy phase diagram: ranges, beta with its interval, the fits, where
    the collapse crosses the lazy level."""

    def span(values: np.ndarray) -> str:
        ok = values[np.isfinite(values)]
        return f"{ok.min():.3g}-{ok.max():.3g}" if ok.size else "none finite"

    grid = b.grid
    lines = [
        f"relative distance ||W(T)-W*|| / ||W*-W0||: {span(grid.rel_dist)} over "
        f"{grid.rel_dist.size} (kappa, m) cells; flipped fraction {span(grid.flips)}",
        *lazy.beta_lines(b),
    ]
    cross = lazy.lazy_crossing(b.collapse)
    lines.append(
        f"fitted relative distance falls below {lazy.LAZY_REL_DIST:g} at kappa m^beta_hat "
        f"~ {cross:.3g}"
        if cross is not None
        else f"fitted relative distance does not cross {lazy.LAZY_REL_DIST:g} within "
        f"kappa m^beta_hat {b.collapse.x_range[0]:.3g}-{b.collapse.x_range[1]:.3g}"
    )
    return lines


def plot_lazy_phase(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """(a) mean relative distance to W* on the kappa x m grid, (b) the flipped-activation
    fraction there, both with kappa sqrt(m) = const lines, (c) relative distance against
    kappa m^beta_hat for every cell, coloured by kappa, with the degree-2 collapse fit; one row
    per combination of the swept values other than kappa.

    Needs `dist_to_target`, `target_norm`, `activation_flip_fraction`, and a model_kappa dim or
    model.kappa in the config attrs. Returns beta with its interval and the fits.
    """
    require(
        collected,
        ("dist_to_target", "target_norm", "activation_flip_fraction", "diverged"),
        "lazy_phase",
    )
    rows = facets(collected, exclude=(lazy.KAPPA_DIM,))
    results = []
    for label, sel in rows:
        try:
            grid = lazy.lazy_grid(sel)
        except ValueError as exc:
            raise ValueError(f"figure 'lazy_phase': {exc}") from exc
        if not np.isfinite(grid.rel_dist).any():
            raise ValueError("figure 'lazy_phase': every run diverged; nothing to plot")
        try:
            b = lazy.lazy_beta(sel)
        except ValueError:
            b = None
        results.append((label, grid, b))
    lines = []
    with figure_style():
        fig, axes = new_grid(len(rows), 3)
        for (label, grid, b), (ax_rel, ax_flip, ax_col) in zip(results, axes, strict=True):
            tag = f" ({label})" if label else ""
            _heatmap(
                ax_rel,
                grid,
                grid.rel_dist,
                "relative distance",
                "(a) $\\|W(T)-W^*\\| / \\|W^*-W_0\\|$" + tag,
            )
            _heatmap(ax_flip, grid, grid.flips, "flipped fraction", "(b) flipped activations" + tag)
            fit = b.collapse if b is not None else lazy.collapse_fits(grid)
            _collapse_panel(ax_col, grid, fit, "(c) collapse onto $\\kappa m^{\\beta}$" + tag)
            if b is not None:
                lines += [f"[{label}] {x}" if label else x for x in lazy_summary(b)]
            else:
                lines.append(f"[{label}] beta cannot be estimated: too few cells per unit")
        n_div = int(diverged_mask(collected).sum())
        title = (
            f"{collected.attrs.get('experiment', '')}: end of the lazy regime, means over runs "
            "at the final step"
        )
        fig.suptitle(
            title + (f"\n{n_div} diverged run{'s' if n_div > 1 else ''} left out" if n_div else "")
        )
        save_figure(fig, out_png, out_pdf)
    return lines


# ---- fig1_variants ----


def _ranking(collected: xr.Dataset, figure: str) -> pd.DataFrame:
    """The variants' ranking, or ValueError naming the figure (missing variables, nothing
    finite)."""
    require(collected, readoffs.VARIABLES, figure)
    frame = readoffs.ranking(collected)
    if not np.isfinite(frame["score"]).any():
        raise ValueError(f"figure {figure!r}: every run diverged; nothing to score")
    return frame


def _missing_widths_line(collected: xr.Dataset) -> list[str]:
    present = readoffs.paper_widths_present(collected)
    missing = [w for w in readoffs.PAPER_WIDTHS if w not in present]
    if not present:
        return [
            f"none of the paper's widths {list(readoffs.PAPER_WIDTHS)} in the data: only "
            "the width-independent read-offs (start of (b), end of (c)) are compared, at "
            f"every width {collected['width'].values.tolist()}"
        ]
    return (
        [f"paper widths missing from the data, their read-offs skipped: {missing}"]
        if missing
        else []
    )


def variants_summary(frame: pd.DataFrame, collected: xr.Dataset) -> list[str]:
    """Top three variants with scores and typical factors; the default's rank and score."""
    lines = [
        f"#{int(r['rank'])} {r.label}: score {r.score:.3f} (typical factor x{r.factor:.2f}, "
        f"start ||W0-W*||^2 {r.start:.1f}, {int(r.n_readoffs)} read-offs)"
        for _, r in frame.head(3).iterrows()
    ]
    default = frame[frame.is_default]
    if len(default):
        d = default.iloc[0]
        lines.append(
            f"default ({d.label}): rank {int(d['rank'])} of {len(frame)}, score "
            f"{d.score:.3f} (x{d.factor:.2f}), start {d.start:.1f} against "
            f"{readoffs.PAPER_START:g}"
        )
    else:
        lines.append("default (our ss_fig1 settings) not among the variants")
    best = frame.iloc[0]
    lines.append(
        f"best is {'within' if best.factor <= readoffs.READOFF_MAX_FACTOR else 'outside'}"
        f" the match threshold x{readoffs.READOFF_MAX_FACTOR:g}"
    )
    return lines + _missing_widths_line(collected)


def plot_fig1_variants(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """(a) score per variant (mean |log(ours / paper)| over the read-offs), sorted, best on top,
    the default in red, per-panel scores as markers; (b) each variant's start value
    ||W0 - W*||^2 against the paper's 40-44 band.

    First lr, smallest label noise; seed means, diverged runs excluded.
    """
    frame = _ranking(collected, "fig1_variants")
    n = len(frame)
    y = np.arange(n)[::-1]  # best on top
    colors = [DEFAULT_COLOR if d else OTHER_COLOR for d in frame.is_default]
    with figure_style():
        fig, (ax_s, ax_0) = new_figure(2)
        fig.set_size_inches(PANEL_SIZE[0] * 3.2, max(PANEL_SIZE[1], 1.2 + 0.3 * n) + 0.6)
        ax_s.barh(y, frame.score, color=colors, height=0.7)
        for panel, marker in (("start", "o"), ("a", "^"), ("b", "s"), ("c", "v")):
            ax_s.scatter(
                frame[f"score_{panel}"],
                y,
                marker=marker,
                s=18,
                edgecolors="black",
                facecolors="none" if panel != "start" else "black",
                lw=0.8,
                zorder=4,
                label=f"panel {panel}" if panel != "start" else "start of (b)",
            )
        for yy, (_, r) in zip(y, frame.iterrows(), strict=True):
            if np.isfinite(r.score):
                ax_s.text(r.score, yy, f" x{r.factor:.2f}", va="center", fontsize="x-small")
        ax_s.axvline(
            np.log(readoffs.READOFF_MAX_FACTOR),
            ls="--",
            color="0.3",
            lw=1,
            label=f"match: x{readoffs.READOFF_MAX_FACTOR:g}",
        )
        ax_s.set_yticks(y)
        ax_s.set_yticklabels(frame.label, fontsize="small")
        for tick, d in zip(ax_s.get_yticklabels(), frame.is_default, strict=True):
            if d:
                tick.set_color(DEFAULT_COLOR)
                tick.set_fontweight("bold")
        ax_s.set(
            xlabel="score: mean $|\\log(\\mathrm{ours} / \\mathrm{paper})|$",
            title="(a) distance to the read-offs (default in red)",
        )
        finite = np.concatenate([frame[c].to_numpy(float) for c in frame if c.startswith("score")])
        finite = finite[np.isfinite(finite)]
        ax_s.set_xlim(0, max(finite.max(), np.log(readoffs.READOFF_MAX_FACTOR)) * 1.18)
        ax_s.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=5)
        ax_0.axvspan(
            *readoffs.PAPER_START_BAND,
            color="C2",
            alpha=0.25,
            lw=0,
            label=f"paper {readoffs.PAPER_START_BAND[0]:g}-{readoffs.PAPER_START_BAND[1]:g}",
        )
        ax_0.scatter(frame.start, y, color=colors, s=30, zorder=3)
        _log_x_axis(ax_0)
        starts = np.concatenate([frame.start.to_numpy(float), readoffs.PAPER_START_BAND])
        starts = starts[np.isfinite(starts) & (starts > 0)]
        ax_0.set_xlim(starts.min() / 1.3, starts.max() * 1.3)
        ax_0.set_yticks(y)
        ax_0.set_yticklabels([])
        ax_0.set(
            xlabel="$\\|W_0 - W^*\\|^2$ (seed mean, paper widths)",
            title="(b) start of panel (b)",
            ylim=ax_s.get_ylim(),
        )
        ax_0.legend(fontsize="x-small")
        fig.suptitle(
            f"{collected.attrs.get('experiment', '')}: Figure 1 variants ranked by the "
            "paper's read-off values (first lr, seed means)"
        )
        save_figure(fig, out_png, out_pdf)
    return variants_summary(frame, collected)


# ---- fig1_readoffs ----


def _readoff_row(axes: list[Axes], collected: xr.Dataset, variant: dict) -> None:
    """Figure 1's three panels for one variant, with the paper's read-offs."""
    sel = readoffs.base_selection(collected)
    sel = sel.sel(variant) if variant else sel
    widths = [int(w) for w in sel["width"].values]
    colors = width_colors(sel["width"].values)
    steps = sel["step"].values
    for ax, (name, label, tag), panel in zip(axes, SS_PANELS, ("a", "b", "c"), strict=True):
        squared = masked(sel, name) ** 2
        for w in widths:
            seed_band(ax, steps, squared.sel(width=w), color=colors[w], label=f"m = {w}")
        readoff_markers(ax, panel, colors, widths)
        ax.set(xlabel="epoch (full-batch GD step)", ylabel=label, title=f"{tag} {label}")
        ax.legend(fontsize="x-small")


def readoffs_summary(
    frame: pd.DataFrame, rows: list[tuple[str, pd.Series]], collected: xr.Dataset
) -> list[str]:
    """One line per drawn variant: its per-panel scores against the read-offs."""
    lines = []
    for role, r in rows:
        panels = ", ".join(
            f"{p} {r[f'score_{p}']:.3f}"
            for p in ("start", "a", "b", "c")
            if np.isfinite(r[f"score_{p}"])
        )
        lines.append(
            f"{role} ({r.label}, rank {int(r['rank'])} of {len(frame)}): score "
            f"{r.score:.3f} (x{r.factor:.2f}); per panel {panels}"
        )
    return lines + _missing_widths_line(collected)


def plot_fig1_readoffs(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Figure 1 (a)-(c), squared distances against steps, seed mean +-1 sd per width, for the
    best-ranked variant (row 1) and the default (row 2; one row when the default is the best or
    absent), with the paper's read-offs as diamonds: start at step 0, ends at step 10^4.
    """
    require(collected, tuple(p[0] for p in SS_PANELS) + ("diverged",), "fig1_readoffs")
    frame = _ranking(collected, "fig1_readoffs")
    rows: list[tuple[str, pd.Series]] = [("closest variant", frame.iloc[0])]
    default = frame[frame.is_default]
    if len(default) and not bool(frame.iloc[0].is_default):
        rows.append(("default", default.iloc[0]))
    elif len(default):
        rows[0] = ("closest variant = default", frame.iloc[0])
    with figure_style():
        fig = Figure(
            figsize=(PANEL_SIZE[0] * 3, (PANEL_SIZE[1] + 0.4) * len(rows) + 0.5),
            layout="constrained",
        )
        subs = fig.subfigures(len(rows), 1, squeeze=False).ravel()
        for sub, (role, r) in zip(subs, rows, strict=True):
            sub.suptitle(
                f"{role}: {r.label}; score {r.score:.3f} (typical factor "
                f"x{r.factor:.2f}), rank {int(r['rank'])} of {len(frame)}",
                fontsize="medium",
            )
            _readoff_row(list(sub.subplots(1, 3)), collected, readoffs.variant_of(r, collected))
        fig.suptitle(
            f"{collected.attrs.get('experiment', '')}: Figure 1 against the paper's "
            "read-offs (diamonds; first lr, smallest label noise)"
        )
        save_figure(fig, out_png, out_pdf)
    return readoffs_summary(frame, rows, collected)
