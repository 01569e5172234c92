"""Shared look and plumbing of the figures: theme, selection of runs, bands over seeds, atomic
saving."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from minnorm.analysis.collect import (
    combinations,
    converged,
    diverged_mask,
    first_lr,
    setting_dims,
)
from minnorm.io.files import atomic_write_all

# Screen-sized PNGs that stay sharp in the HTML report; the PDF is vector.
PNG_DPI = 150
# One panel is about a third of a landscape page.
PANEL_SIZE = (4.2, 3.4)
# Alpha of the seed bands, light enough for overlapping widths to stay readable.
BAND_ALPHA = 0.2


@contextmanager
def figure_style() -> Iterator[None]:
    """Seaborn's white-grid paper look, set only while a figure is drawn (no global state)."""
    rc = {
        **sns.axes_style("whitegrid"),
        **sns.plotting_context("paper", font_scale=1.15),
        "legend.frameon": True,
        "legend.framealpha": 0.85,
        "pdf.fonttype": 42,
    }
    with matplotlib.rc_context(rc):
        yield


def new_figure(ncols: int) -> tuple[Figure, list[Axes]]:
    """A Figure (not registered with pyplot, so nothing leaks) with `ncols` panels in a row."""
    fig = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] + 0.5), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def new_grid(nrows: int, ncols: int) -> tuple[Figure, list[list[Axes]]]:
    """A Figure with `nrows` x `ncols` panels (rows of facets), not registered with pyplot."""
    fig = Figure(
        figsize=(PANEL_SIZE[0] * ncols, (PANEL_SIZE[1] + 0.3) * nrows + 0.5), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [list(row) for row in axes]


def facets(ds: xr.Dataset, exclude: tuple[str, ...] = ()) -> list[tuple[str, xr.Dataset]]:
    """One (title, slice) per combination of the swept values other than width, seed, the data
    draws and `exclude` (minnorm.analysis.collect.combinations): a figure draws a row for each,
    never a silent first value. The title names the combination ("" when nothing is swept)."""
    return [(label, ds.isel(idx)) for label, idx in combinations(ds, exclude)]


def save_figure(fig: Figure, out_png: Path, out_pdf: Path) -> None:
    """Write the PNG and PDF together (files.atomic_write_all): a failure leaves neither changed."""

    def write(temps: list[Path]) -> None:
        png, pdf = temps
        # Fixed metadata keeps reruns byte-comparable (no creation date in the PDF).
        fig.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": "minnorm"})
        fig.savefig(pdf, format="pdf", dpi=PNG_DPI, metadata={"CreationDate": None})

    atomic_write_all([out_png, out_pdf], write)


def require(ds: xr.Dataset, names: tuple[str, ...], figure: str) -> None:
    """Raise ValueError naming the figure and the variables the collected Dataset lacks."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(f"figure {figure!r}: the collected dataset lacks {missing}")


def select(
    ds: xr.Dataset, *, label_noise: str | None = "min", width: str | None = None
) -> xr.Dataset:
    """First lr; then optionally the smallest/largest label noise and/or width (dims dropped)."""
    out = first_lr(ds)
    for dim, which in (("label_noise", label_noise), ("width", width)):
        if which is not None and dim in out.dims:
            out = out.isel({dim: 0 if which == "min" else -1})
    return out


def selection_title(full: xr.Dataset, sel: xr.Dataset, what: str) -> str:
    """Suptitle: experiment, what is shown, the fixed values, and how many runs were hidden."""
    fixed = [
        f"{d.replace('_', ' ')} {sel[d].item():g}"
        + (f" (first of {full.sizes[d]})" if d == "lr" and full.sizes[d] > 1 else "")
        for d in ("lr", "label_noise", "width")
        if d in full.dims and d in sel.coords and sel[d].ndim == 0
    ]
    fixed += [
        f"{d} {sel[d].item()} (first of {full.sizes[d]})"
        for d in setting_dims(full)
        if d in sel.coords and sel[d].ndim == 0 and full.sizes[d] > 1
    ]
    n_div = int(diverged_mask(sel).sum())
    title = f"{full.attrs.get('experiment', '')}: {what}" + (
        f" ({', '.join(fixed)})" if fixed else ""
    )
    if n_div:
        title += f"\n{n_div} diverged run{'s' if n_div > 1 else ''} not shown"
    return title


def width_colors(widths: np.ndarray) -> dict[int, tuple]:
    """One colour per width, dark to light in increasing m (colour-blind-safe viridis ramp)."""
    palette = sns.color_palette("viridis", n_colors=max(len(widths), 1))
    return {int(w): c for w, c in zip(widths, palette, strict=False)}


def seed_band(ax: Axes, x: np.ndarray, da: xr.DataArray, *, color: Any, label: str) -> bool:
    """Plot the mean over the runs (seeds and data draws) of `da: (seed [, data_seed], x)` (or
    `(x,)`) with a +-1 sd band.

    Only x positions where some seed is finite are drawn. Returns False (and draws nothing)
    when no value is finite, so callers can skip the legend entry.
    """
    runs = [d for d in ("seed", "data_seed") if d in da.dims]
    values = da.stack(run=runs).transpose("run", ...).values if runs else da.values[None, :]
    keep = np.isfinite(values).any(axis=0)
    if not keep.any():
        return False
    finite = np.where(np.isfinite(values[:, keep]), values[:, keep], 0.0)
    count = np.isfinite(values[:, keep]).sum(axis=0)
    mean = finite.sum(axis=0) / count
    sd = np.sqrt(
        np.where(np.isfinite(values[:, keep]), (values[:, keep] - mean) ** 2, 0.0).sum(axis=0)
        / count
    )
    ax.plot(x[keep], mean, color=color, label=label, lw=1.6)
    if values.shape[0] > 1:
        ax.fill_between(x[keep], mean - sd, mean + sd, color=color, alpha=BAND_ALPHA, lw=0)
    return True


def masked(ds: xr.Dataset, name: str) -> xr.DataArray:
    """Variable `name` with diverged runs set to NaN."""
    return converged(ds[name], ds)


def log_width_axis(ax: Axes, widths: np.ndarray) -> None:
    """Log x axis with a tick at each width, labelled as plain integers."""
    ax.set_xscale("log")
    ax.set_xticks(widths)
    ax.set_xticklabels([f"{int(w)}" for w in widths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("width $m$")


def log_value_axis(ax: Axes) -> None:
    """Log y axis labelled at 1, 2, 3, 5 x 10^k, so ranges within one decade still get numbers."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())
