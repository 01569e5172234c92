"""FigureSpec: everything the workflow, the config validation and the report need to know about one figure.

A figure is declared once, as an entry of `minnorm.figures.FIGURES`; the schema enum of
`experiments.<name>.figures`, the semantic config checks, the Snakemake rule (one per entry, in
workflow/rules/figures.smk) and the report caption all derive from it. This module imports no
plotting library, so validating a config stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minnorm.data.registry import DATASETS, pm1_datasets

# Captions (reStructuredText templates rendered by `snakemake --report`) live next to the
# plotting code, one file per figure: captions/<name>.rst.
CAPTIONS = Path(__file__).resolve().parent / "captions"

# Every plot function takes (collected Dataset, out_png: Path, out_pdf: Path), writes both files
# and raises ValueError naming the figure when the Dataset lacks what it needs. It may return a
# few lines of text with the numbers it measured (fitted exponents, rankings, ...): the workflow
# writes them next to the figure (`<name>.summary.html`) and the report shows them under the
# caption. None (the paper's figures) gives an empty summary.
PlotFunction = Callable[[Any, Path, Path], "list[str] | None"]


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the workflow.

    name: as written in a config's `figures:` list; also the Snakemake rule name and the file
      stem `results/<exp>/figures/<name>.{png,pdf}`.
    plot: the plot function, or "package.module:function" (imported on first use, so that the
      registry does not import matplotlib).
    summary: one line describing the figure (rule comment, docs).
    caption: path of the reStructuredText caption template; default `captions/<name>.rst` next to
      this module. Snakemake renders it with `snakemake.wildcards.exp` and `snakemake.config`.
    min_widths: smallest number of widths in `sweep.width` the figure can be drawn from.
    needs_pm1: whether the figure needs +-1 labels (a classification data set).
    min_noise_levels: smallest number of values in `sweep.label_noise`.
    needs_sweep: sweep keys (`lr`, `model.kappa`, ...) the figure compares across; each must be
      swept with at least two values.
    """

    name: str
    plot: PlotFunction | str
    summary: str
    caption: Path = field(default=None)  # type: ignore[assignment]  # filled in __post_init__
    min_widths: int = 1
    needs_pm1: bool = False
    min_noise_levels: int = 1
    needs_sweep: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        caption = CAPTIONS / f"{self.name}.rst" if self.caption is None else Path(self.caption)
        object.__setattr__(self, "caption", caption)

    @property
    def function(self) -> PlotFunction:
        """The plot function (imported now if `plot` names it)."""
        if callable(self.plot):
            return self.plot
        module, _, attr = self.plot.partition(":")
        return getattr(importlib.import_module(module), attr)

    def __call__(self, collected: Any, out_png: Path, out_pdf: Path) -> list[str]:
        """Draw the figure from a collected Dataset into `out_png` and `out_pdf`; return the
        lines of its numeric summary ([] when the plot function gives none)."""
        return list(self.function(collected, out_png, out_pdf) or [])

    def problems(self, where: str, experiment: dict) -> list[str]:
        """Why this figure cannot be drawn from a (schema-valid) experiment; [] when it can.

        `where` is the experiment's key path ("experiments.<name>"); each message starts with
        `<where>.figures[<i>]`, the position of this figure in the experiment's list.
        """
        figures = experiment.get("figures", [])
        at = f"{where}.figures[{figures.index(self.name)}]" if self.name in figures else f"{where}.figures"
        sweep = experiment["sweep"]
        dataset = experiment["data"]["name"]
        problems = []
        widths = len(sweep["width"])
        if widths < self.min_widths:
            problems.append(f"{at}: {self.name} needs at least {self.min_widths} widths in "
                            f"{where}.sweep.width, found {widths}")
        spec = DATASETS.get(dataset)
        if self.needs_pm1 and spec is not None and not spec.pm1_labels:
            problems.append(f"{at}: {self.name} needs +-1 labels; data.name must be one of "
                            f"{', '.join(pm1_datasets())}, not {dataset}")
        noise = len(sweep.get("label_noise", [0.0]))
        if noise < self.min_noise_levels:
            problems.append(f"{at}: {self.name} plots against the label-noise fraction; "
                            f"{where}.sweep.label_noise needs at least {self.min_noise_levels} "
                            f"values, found {noise}")
        for key in self.needs_sweep:
            values = sweep.get(key, [])
            if len(values) < 2:
                problems.append(f"{at}: {self.name} compares runs across {key}; "
                                f"{where}.sweep.{key} needs at least 2 values, found {len(values)}")
        return problems
