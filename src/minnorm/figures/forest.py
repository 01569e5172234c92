"""The forest plot: every exponent of ||W(T) - W*|| in m that the checks estimate, with its 95%
interval, one row per experiment and setting (and per data draw where there are several),
against the flow theorem's -1/4 and the -1/2 alternative, coloured by the row's verdict.

Drawn from the estimates table (minnorm.analysis.checks.estimates_table; results/estimates.csv),
so it shows the numbers of the checks tables and nothing else.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from minnorm.analysis.check_tables import VERDICT_COLORS
from minnorm.analysis.verdicts import (
    CONTRADICTED,
    EXPONENT_MARGIN,
    INCONCLUSIVE,
    SUPPORTED,
)
from minnorm.figures.style import figure_style, save_figure

# The estimates drawn: quantities of the exponent of ||W(T) - W*|| (full range, upper half).
FOREST_PREFIX = "exponent of ||W(T)-W*||"
REFERENCES = ((-0.25, "-1/4 (flow theorem)", "--"), (-0.5, "-1/2 (alternative)", ":"))
# Marker colours by verdict: darker versions of the table's cell colours.
MARKER_COLORS = {SUPPORTED: "#1b7837", CONTRADICTED: "#b2182b", INCONCLUSIVE: "#b8860b"}
DRAW_COLOR = "0.55"
ROW_HEIGHT = 0.26
# Row labels name a setting by its key without the section (data_labels=center -> labels=center).
SHORT_NAMES = {"data_": "", "model_": "", "training_": "", "label_noise": "noise"}


def forest_rows(estimates: pd.DataFrame) -> pd.DataFrame:
    """The overall estimates to draw, in table order, with a label each; `draws` holds each
    row's per-draw estimates (a DataFrame, empty with one draw)."""
    if estimates.empty or "quantity" not in estimates:
        return pd.DataFrame(columns=["label", "estimate", "ci_low", "ci_high", "verdict", "draws"])
    rows = estimates[estimates["quantity"].astype(str).str.startswith(FOREST_PREFIX)]
    overall = rows[rows["draw"].astype(str) == "all"].copy()
    keys = ["experiment", "check", "setting"]
    per_draw = rows[rows["draw"].astype(str) != "all"]

    def label(r: pd.Series) -> str:
        part = "upper half" if "upper half" in str(r.quantity) else "all widths"
        setting = str(r.setting)
        for long, short in SHORT_NAMES.items():
            setting = setting.replace(long, short)
        return f"{r.experiment}: {part}" + (f", {setting}" if setting else "")

    overall["label"] = [label(r) for _, r in overall.iterrows()]
    overall["draws"] = [
        per_draw[(per_draw[keys] == r[keys].values).all(axis=1)] for _, r in overall.iterrows()
    ]
    return overall.reset_index(drop=True)


def plot_forest(estimates: pd.DataFrame, out_png: Path, out_pdf: Path) -> list[str]:
    """Draw the forest plot of `estimates` (ESTIMATE_COLUMNS) into PNG and PDF: one row per
    overall estimate (diamond and 95% interval coloured by verdict), its data draws' own
    estimates as grey points and lines inside the row. Returns one line per row. With no
    exponent to show, the figure says so."""
    rows = forest_rows(estimates)
    n = max(len(rows), 1)
    with figure_style():
        fig = Figure(figsize=(11.0, 2.2 + ROW_HEIGHT * 1.6 * n), layout="constrained")
        ax = fig.subplots()
        y = np.arange(n)[::-1].astype(float)
        for yy, (_, r) in zip(y, rows.iterrows(), strict=False):
            color = MARKER_COLORS.get(str(r.verdict), DRAW_COLOR)
            ax.axhspan(
                yy - 0.5,
                yy + 0.5,
                color=VERDICT_COLORS.get(str(r.verdict), "#ffffff"),
                alpha=0.35,
                lw=0,
                zorder=0,
            )
            draws = r.draws
            offsets: Sequence[float] = (
                np.linspace(-0.3, -0.12, len(draws)).tolist() if len(draws) else []
            )
            for off, (_, d) in zip(offsets, draws.iterrows(), strict=True):
                if np.isfinite(d.ci_low) and np.isfinite(d.ci_high):
                    ax.hlines(yy + off, d.ci_low, d.ci_high, color=DRAW_COLOR, lw=0.8)
                ax.plot([d.estimate], [yy + off], "o", color=DRAW_COLOR, ms=2.5, zorder=2)
            if np.isfinite(r.ci_low) and np.isfinite(r.ci_high):
                ax.hlines(yy + 0.1, r.ci_low, r.ci_high, color=color, lw=2.2)
            ax.plot([r.estimate], [yy + 0.1], "D", color=color, ms=6, zorder=3)
        for value, text, ls in REFERENCES:
            ax.axvline(value, ls=ls, color="0.2", lw=1.1, label=text)
            ax.axvspan(
                value - EXPONENT_MARGIN, value + EXPONENT_MARGIN, color="0.85", alpha=0.4, lw=0
            )
        labels = [
            f"{r.label} ({len(r.draws)} draws)" if len(r.draws) else r.label
            for _, r in rows.iterrows()
        ]
        ax.set_yticks(y[: len(rows)])
        ax.set_yticklabels(labels, fontsize="small")
        ax.set_ylim(-0.7, n - 0.3)
        ax.set_xlabel(
            "exponent of $\\|W(T) - W^*\\|$ in $m$ with 95% CI; grey bands: regions "
            f"$\\pm${EXPONENT_MARGIN:g}"
        )
        for verdict, marker_color in MARKER_COLORS.items():
            ax.plot([], [], "D", color=marker_color, label=verdict)
        ax.plot([], [], "o", color=DRAW_COLOR, label="each data draw (conditional on it)")
        ax.legend(fontsize="x-small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3)
        if rows.empty:
            ax.text(0.5, 0.5, "no exponent estimated", transform=ax.transAxes, ha="center")
        fig.suptitle("Every width exponent of the checks, with its interval and verdict")
        save_figure(fig, out_png, out_pdf)
    return [
        f"{label}: {r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] {r.verdict}"
        for label, (_, r) in zip(labels, rows.iterrows(), strict=True)
    ]


def forest_html(png: Path) -> str:
    """An <img> fragment holding the PNG as a data URI, for the report's first page (which
    includes it with a raw directive, so the report stays one self-contained file)."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (
        '<img alt="forest plot of every width exponent" style="width:100%;max-width:1100px" '
        f'src="data:image/png;base64,{data}"/>\n'
    )
