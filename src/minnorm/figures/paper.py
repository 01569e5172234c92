"""The papers' figures redrawn from a collected experiment: Satpathi & Srikant Fig. 1, Arora et al.
Figs. 1-2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from minnorm.analysis.beyond import readoffs
from minnorm.analysis.collect import final_values, initial_values
from minnorm.figures.style import (
    PANEL_SIZE,
    facets,
    figure_style,
    masked,
    new_figure,
    require,
    save_figure,
    seed_band,
    select,
    selection_title,
    width_colors,
)

SS_PANELS = (
    ("dist_to_target_perp", r"$\|P_0^\perp(w - w^*)\|^2$", "(a)"),
    ("dist_to_target", r"$\|w - w^*\|^2$", "(b)"),
    ("dist_from_init", r"$\|w - w_0\|^2$", "(c)"),
)
# A 0-1 error is at most 1: a bound of 1 or more on it is vacuous (Arora et al.'s bound is
# drawn in that region for noisy labels).
VACUOUS_BOUND = 1.0
PAPER_MARKER: dict[str, Any] = dict(marker="D", s=46, edgecolor="black", linewidth=0.8, zorder=5)


def _range_marker(
    ax: Axes, x: float, value: float, band: tuple[float, float], label: str | None
) -> None:
    """A white diamond at (x, value) with an error bar over the read-off range `band`."""
    ax.errorbar(
        [x],
        [value],
        yerr=[[value - band[0]], [band[1] - value]],
        color="black",
        capsize=3,
        lw=1,
        zorder=4,
    )
    ax.scatter([x], [value], color="white", label=label, **PAPER_MARKER)


def readoff_markers(
    ax: Axes, panel: str, colors: dict[int, tuple], widths: list[int], scale: float = 1.0
) -> None:
    """The paper's read-offs of one panel (values read off Satpathi & Srikant's Figure 1,
    minnorm.analysis.beyond.readoffs), divided by `scale`: end values at step 10^4 (per width
    present, in that width's colour), and the start value at step 0 on panel (b)."""
    _, paper = readoffs.PANELS[panel]
    band = readoffs.PAPER_END_INIT_BAND
    if panel == "c":  # one value at every width: one white diamond with the read-off range
        _range_marker(
            ax,
            readoffs.PAPER_STEPS,
            readoffs.PAPER_END_INIT / scale,
            (band[0] / scale, band[1] / scale),
            "paper read-off (every m)",
        )
        return
    for k, w in enumerate(readoffs.PAPER_WIDTHS):
        if w in widths:
            ax.scatter([readoffs.PAPER_STEPS], [paper[k] / scale], color=colors[w], **PAPER_MARKER)
    if panel == "b":
        lo, hi = readoffs.PAPER_START_BAND
        _range_marker(
            ax,
            0,
            readoffs.PAPER_START / scale,
            (lo / scale, hi / scale),
            "paper read-offs (diamonds)",
        )


def _reading(collected: xr.Dataset, label: str) -> str:
    """The label reading (and other settings) of a row: its combination, or as configured."""
    return label or readoffs.variant_label({}, collected)


def _fig1_row(
    axes: list[Axes], sel: xr.Dataset, title: str, normalised: bool, paper: bool
) -> list[str]:
    """Figure 1's three panels for one slice (dims width, seed [, data_seed], step), absolute or
    divided run by run by the start ||w0 - w*||^2; the paper's read-offs on the paper's widths.
    Returns the mean end value per width of panel (b)."""
    widths = [int(w) for w in sel["width"].values]
    colors = width_colors(sel["width"].values)
    steps = sel["step"].values
    start = initial_values(masked(sel, "dist_to_target") ** 2)
    ends = []
    for ax, (name, label, tag) in zip(axes, SS_PANELS, strict=True):
        squared = masked(sel, name) ** 2
        if normalised:
            squared = squared / start
            label = label[:-1] + r" / \|w_0 - w^*\|^2$"
        for w in widths:
            one = squared.sel(width=w)
            end = float(np.nanmean(final_values(one).values)) if np.isfinite(one).any() else np.nan
            seed_band(ax, steps, one, color=colors[w], label=f"m = {w}: end {end:.3g}")
            if name == "dist_to_target":
                ends.append(f"m = {w} {end:.3g}")
        if paper:
            readoff_markers(ax, tag[1], colors, widths, readoffs.PAPER_START if normalised else 1.0)
        ax.set_xlabel("epoch (full-batch GD step)")
        ax.set_ylabel(label)
        ax.set_title(f"{tag} {title}".strip(), fontsize="small")
        ax.legend(fontsize="xx-small", title="mean over runs", title_fontsize="xx-small")
    return ends


def plot_ss_fig1(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> list[str]:
    """Satpathi & Srikant Fig. 1a-c: squared distances against epochs, one line per width, and
    the same divided run by run by the start ||w0 - w*||^2; two rows per combination of the
    swept settings (e.g. each label reading), each titled with it.

    Mean over runs with a +-1 sd band; the paper's read-off values (when the paper's widths are
    present) as diamonds, divided by the paper's start of ~42 in the normalised rows. Diverged
    runs are left out and counted in the title. Needs `dist_to_target_perp`, `dist_to_target`,
    `dist_from_init` (norms; squared here). Returns, per row, the start level with its interval
    beside the paper's, and the end values of panel (b).
    """
    require(collected, tuple(p[0] for p in SS_PANELS) + ("diverged",), "ss_fig1")
    rows = facets(collected)
    if not any(np.isfinite(masked(sel, "dist_to_target").values).any() for _, sel in rows):
        raise ValueError("figure 'ss_fig1': every run diverged; nothing to plot")
    paper = bool(readoffs.paper_widths_present(collected))
    lines = []
    with figure_style():
        fig = Figure(
            figsize=(PANEL_SIZE[0] * 3, (2 * PANEL_SIZE[1] + 1.0) * len(rows) + 0.4),
            layout="constrained",
        )
        subs = fig.subfigures(len(rows), 1, squeeze=False).ravel()
        for sub, (label, sel) in zip(subs, rows, strict=True):
            reading = _reading(collected, label)
            axes = sub.subplots(2, 3)
            ends = _fig1_row(list(axes[0]), sel, "", normalised=False, paper=paper)
            _fig1_row(list(axes[1]), sel, "/ start", normalised=True, paper=paper)
            start = readoffs.start_levels(sel)
            ci = f" [{start.ci_low:.1f}, {start.ci_high:.1f}]" if start.ci_defined else " (no CI)"
            scope = "one data draw" if start.conditional else f"{start.n_draws} data draws"
            sub.suptitle(
                f"{reading}: start {start.estimate:.1f}{ci} vs paper ~{readoffs.PAPER_START:g}",
                fontsize="medium",
            )
            lines.append(
                f"{reading}: start ||w0 - w*||^2 {start.estimate:.1f}{ci} (95% CI, {scope}, "
                f"{sel.sizes.get('seed', 1)} seeds) against the paper's ~"
                f"{readoffs.PAPER_START:g}; end of (b): {', '.join(ends)}"
            )
        fig.suptitle(
            selection_title(collected, collected, "distances to the min-norm target and to init")
        )
        save_figure(fig, out_png, out_pdf)
    return lines


def _noise_label(p: float) -> str:
    if p == 0.0:
        return "true labels (p = 0)"
    if p == 1.0:
        return "random labels (p = 1)"
    return f"label noise p = {p:g}"


def plot_arora_fig1(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> None:
    """Arora et al. Fig. 1: training loss against steps, eigenvalues of H, projections |v_i . y|.

    Two label sets: the smallest label noise (true labels when 0) and the largest (random labels
    when 1); with a single noise level only that one. Largest width, first lr; mean over seeds
    with a +-1 sd band. Needs `train_loss`, `H_eigenvalues (eig)`, `y_projections (eig)`.
    """
    require(collected, ("train_loss", "H_eigenvalues", "y_projections", "diverged"), "arora_fig1")
    ds = select(collected, label_noise=None, width="max")
    noises = np.unique(ds["label_noise"].values[[0, -1]]) if "label_noise" in ds.dims else None
    sets = (
        [(ds.sel(label_noise=p), p) for p in noises]
        if noises is not None
        else [(ds, float(ds.label_noise))]
    )
    palette = dict(zip([p for _, p in sets], sns.color_palette("deep", 2), strict=False))
    if not np.isfinite(masked(ds, "train_loss").values).any():
        raise ValueError("figure 'arora_fig1': every run diverged; nothing to plot")
    with figure_style():
        fig, (ax_loss, ax_eig, ax_proj) = new_figure(3)
        for one, p in sets:
            seed_band(
                ax_loss,
                ds["step"].values,
                masked(one, "train_loss"),
                color=palette[p],
                label=_noise_label(p),
            )
            index = np.arange(1, one.sizes["eig"] + 1)
            seed_band(ax_proj, index, one["y_projections"], color=palette[p], label=_noise_label(p))
        eig = sets[0][0]["H_eigenvalues"]
        eig = eig.mean("seed") if "seed" in eig.dims else eig
        ax_eig.plot(np.arange(1, eig.size + 1), eig.values, color="0.2", lw=1.6)
        ax_loss.set(
            yscale="log",
            xlabel="GD step",
            ylabel="training loss (mean squared error)",
            title="(a) training loss",
        )
        ax_eig.set(
            yscale="log",
            xlabel="index $i$ (descending)",
            ylabel="eigenvalue $\\lambda_i$ of $H$",
            title="(b) spectrum of $H^\\infty$",
        )
        ax_proj.set(
            xlabel="index $i$ (descending $\\lambda_i$)",
            ylabel="$|v_i^\\top y|$",
            title="(c) projections of $y$ on eigenvectors",
        )
        ax_loss.legend(fontsize="small")
        ax_proj.legend(fontsize="small")
        fig.suptitle(selection_title(collected, ds, "training speed and label structure"))
        save_figure(fig, out_png, out_pdf)


def _final_frame(ds: xr.Dataset, names: dict[str, str]) -> pd.DataFrame:
    """Long-form final values: columns label_noise, seed, quantity, value (diverged runs
    dropped)."""
    frames = []
    for name, quantity in names.items():
        da = masked(ds, name)
        da = final_values(da) if "step" in da.dims else da
        df = da.rename("value").to_dataframe().reset_index()
        df["quantity"] = quantity
        frames.append(df[["label_noise", "seed", "quantity", "value"]])
    out = pd.concat(frames, ignore_index=True)
    return out[np.isfinite(out["value"])]


def plot_arora_fig2(collected: xr.Dataset, out_png: Path, out_pdf: Path) -> None:
    """Arora et al. Fig. 2: final test error, l1 loss and the bound against the noise fraction.

    Panel (b): final ||W(T) - W0|| against sqrt(y^T H^-1 y), one point per run, coloured by
    noise. Largest width, first lr; mean and +-1 sd over seeds. Needs two or more label-noise
    levels and `test_error`, `test_l1` (may be all NaN: then left out), `arora_bound`,
    `dist_from_init`, `yHy`.
    """
    require(
        collected,
        ("test_error", "test_l1", "arora_bound", "dist_from_init", "yHy", "diverged"),
        "arora_fig2",
    )
    if collected.sizes.get("label_noise", 1) < 2:
        raise ValueError(
            "figure 'arora_fig2': needs two or more label_noise levels, "
            f"dataset has {collected.sizes.get('label_noise', 1)}"
        )
    ds = select(collected, label_noise=None, width="max")
    quantities = {
        "test_error": "test 0-1 error",
        "test_l1": "test $\\ell_1$ loss",
        "arora_bound": "bound $\\sqrt{2 y^\\top H^{-1} y / n}$",
    }
    frame = _final_frame(ds, quantities)
    if frame.empty:
        raise ValueError("figure 'arora_fig2': no finite final values; every run diverged?")
    with figure_style():
        fig, (ax_err, ax_dist) = new_figure(2)
        sns.lineplot(
            frame,
            x="label_noise",
            y="value",
            hue="quantity",
            style="quantity",
            markers=True,
            dashes=False,
            errorbar="sd",
            err_style="band",
            ax=ax_err,
        )
        bound = frame[frame["quantity"] == quantities["arora_bound"]]
        levels = bound.groupby("label_noise")["value"].mean()
        vacuous = int((levels >= VACUOUS_BOUND).sum())
        top = max(float(frame["value"].max()) * 1.05, VACUOUS_BOUND * 1.1)
        ax_err.axhspan(
            VACUOUS_BOUND,
            top,
            color="0.6",
            alpha=0.18,
            lw=0,
            label=f"bound >= 1: vacuous for a 0-1 error ({vacuous} of {levels.size} noise levels)",
        )
        ax_err.set(
            xlabel="label noise fraction $p$",
            ylabel="test loss / bound",
            title="(a) generalization",
            ylim=(0, top),
        )
        ax_err.legend(fontsize="small", title=None)
        runs = (
            _final_frame(ds, {"dist_from_init": "d", "yHy": "q"})
            .pivot_table(index=["label_noise", "seed"], columns="quantity", values="value")
            .dropna()
            .reset_index()
        )
        runs["sqrt_q"] = np.sqrt(runs["q"])
        sns.scatterplot(
            runs,
            x="sqrt_q",
            y="d",
            hue="label_noise",
            palette="viridis",
            ax=ax_dist,
            s=35,
            edgecolor="none",
        )
        lim = float(max(runs["sqrt_q"].max(), runs["d"].max())) * 1.05 if len(runs) else 1.0
        ax_dist.plot([0, lim], [0, lim], ls="--", color="0.4", lw=1, label="$y = x$ (Arora bound)")
        ax_dist.set(
            xlim=(0, lim),
            ylim=(0, lim),
            xlabel="$\\sqrt{y^\\top H^{-1} y}$",
            ylabel="$\\|W(T) - W(0)\\|_F$",
            title="(b) distance moved",
        )
        ax_dist.legend(fontsize="small", title="label noise $p$", title_fontsize="small")
        fig.suptitle(selection_title(collected, ds, "generalization against label noise"))
        save_figure(fig, out_png, out_pdf)
