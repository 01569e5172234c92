"""The figure registry: name (as in a config's `figures:` list) -> FigureSpec, what the workflow,
the config
validation and the report need to know about each figure.

A figure is declared once, as an entry of `FIGURES` below (re-exported as
`minnorm.figures.FIGURES`); the schema enum of
`experiments.<name>.figures`, the semantic config checks, the Snakemake rule (one per entry, in
workflow/rules/figures.smk) and the report caption all derive from it. This module imports no
plotting library, so validating a config stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from minnorm.config.experiment import ExperimentConfig
from minnorm.config.run_config import DEFAULT_ACTIVATION
from minnorm.data.registry import DATASETS, pm1_datasets
from minnorm.io.resolve import resolve

# Captions (reStructuredText templates rendered by `snakemake --report`) live next to the
# plotting code, one file per figure: captions/<name>.rst.
CAPTIONS = Path(__file__).resolve().parents[1] / "figures" / "captions"

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
    needs_paper_network: whether the figure is about the papers' network only (relu with the
      output layer fixed: the Arora et al. bound is proved for it alone); any other
      `model.activation` or `model.train_output`, written or swept, is refused.
    needs_horizon: whether the figure compares learning rates at a fixed gradient-flow time
      lr * T, which only `training.horizon` (written or swept) gives every run.
    """

    name: str
    plot: PlotFunction | str
    summary: str
    caption: Path = field(default=None)  # type: ignore[assignment]  # filled in __post_init__
    min_widths: int = 1
    needs_pm1: bool = False
    min_noise_levels: int = 1
    needs_sweep: tuple[str, ...] = ()
    needs_paper_network: bool = False
    needs_horizon: bool = False

    def __post_init__(self) -> None:
        given = cast("Path | str | None", self.caption)  # None: the default caption file
        caption = CAPTIONS / f"{self.name}.rst" if given is None else Path(given)
        object.__setattr__(self, "caption", caption)

    @property
    def function(self) -> PlotFunction:
        """The plot function (imported now if `plot` names it)."""
        return resolve(self.plot)

    def __call__(self, collected: Any, out_png: Path, out_pdf: Path) -> list[str]:
        """Draw the figure from a collected Dataset into `out_png` and `out_pdf`; return the
        lines of its numeric summary ([] when the plot function gives none)."""
        return list(self.function(collected, out_png, out_pdf) or [])

    def problems(self, where: str, experiment: ExperimentConfig) -> list[str]:
        """Why this figure cannot be drawn from a (schema-valid) experiment; [] when it can.

        `where` is the experiment's key path ("experiments.<name>"); each message starts with
        `<where>.figures[<i>]`, the position of this figure in the experiment's list.
        """
        figures = experiment.figures
        at = (
            f"{where}.figures[{figures.index(self.name)}]"
            if self.name in figures
            else f"{where}.figures"
        )
        sweep = experiment.sweep
        dataset = experiment.data.name
        problems = []
        widths = len(sweep.width)
        if widths < self.min_widths:
            problems.append(
                f"{at}: {self.name} needs at least {self.min_widths} widths in "
                f"{where}.sweep.width, found {widths}"
            )
        spec = DATASETS.get(dataset)
        if self.needs_pm1 and spec is not None and not spec.pm1_labels:
            problems.append(
                f"{at}: {self.name} needs +-1 labels; data.name must be one of "
                f"{', '.join(pm1_datasets())}, not {dataset}"
            )
        noise = len(sweep.label_noise)
        if noise < self.min_noise_levels:
            problems.append(
                f"{at}: {self.name} plots against the label-noise fraction; "
                f"{where}.sweep.label_noise needs at least {self.min_noise_levels} "
                f"values, found {noise}"
            )
        if self.needs_paper_network:
            problems.extend(
                f"{at}: {self.name} needs relu with a fixed output layer (the Arora et al. "
                f"bound is proved for that network only); {source} is {value!r}"
                for source, value in _model_values(where, experiment)
                if value != _PAPER_MODEL[source.rsplit(".", 1)[-1]]
            )
        for key in self.needs_sweep:
            values = sweep.values(key)
            if len(values) < 2:
                problems.append(
                    f"{at}: {self.name} compares runs across {key}; "
                    f"{where}.sweep.{key} needs at least 2 values, found {len(values)}"
                )
        horizon = experiment.training.horizon is not None or sweep.values("training.horizon")
        if self.needs_horizon and not horizon:
            problems.append(
                f"{at}: {self.name} compares learning rates at a fixed lr * T; set "
                f"{where}.training.horizon (it gives every run round(horizon / lr) steps) "
                "instead of training.steps"
            )
        return problems


# The papers' network (`ModelSettings.paper_network`): the values of the model settings that
# make it.
_PAPER_MODEL: dict[str, object] = {"activation": DEFAULT_ACTIVATION, "train_output": False}


def _model_values(where: str, experiment: ExperimentConfig) -> list[tuple[str, object]]:
    """(key path, value) of every value of `model.activation` and `model.train_output` the
    experiment's runs take: the swept values (`<where>.sweep.model.<key>`) or the written one."""
    found: list[tuple[str, object]] = []
    for key in _PAPER_MODEL:
        swept = experiment.sweep.values(f"model.{key}")
        if swept:
            found.extend((f"{where}.sweep.model.{key}", value) for value in swept)
        else:
            found.append((f"{where}.model.{key}", getattr(experiment.model, key)))
    return found


_PAPER = "minnorm.figures.paper"
_DIAGNOSTICS = "minnorm.figures.diagnostics"
_RATES = "minnorm.figures.rates"
_VARIANTS = "minnorm.figures.variants"
_FAMILIES = "minnorm.figures.families"

# A power law needs at least three widths to be a fit rather than a line through two points;
# comparisons across widths need two. Every figure uses the first (smallest) learning rate when
# several were swept.
FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec(
            "ss_fig1",
            f"{_PAPER}:plot_ss_fig1",
            "Satpathi & Srikant Figure 1: distances to the target and from init against steps",
        ),
        FigureSpec(
            "width_scaling",
            f"{_DIAGNOSTICS}:plot_width_scaling",
            "final distance to the target against width, with the fitted power law",
            min_widths=3,
        ),
        FigureSpec(
            "function_space",
            f"{_DIAGNOSTICS}:plot_function_space",
            "network against its linearization and kernel regression (Lee et al.)",
            min_widths=2,
        ),
        FigureSpec(
            "arora_fig2",
            f"{_PAPER}:plot_arora_fig2",
            "Arora et al. Figure 2: test loss, test error and the bound against label noise",
            needs_pm1=True,
            needs_paper_network=True,
            min_noise_levels=2,
        ),
        FigureSpec(
            "arora_fig1",
            f"{_PAPER}:plot_arora_fig1",
            "Arora et al. Figure 1: training loss and the spectrum of H with label projections",
            needs_pm1=True,
            needs_paper_network=True,
        ),
        FigureSpec(
            "lazy_regime",
            f"{_DIAGNOSTICS}:plot_lazy_regime",
            "fraction of flipped activations against width (lazy regime)",
            min_widths=2,
        ),
        # Beyond the paper (config/beyond.yaml, README "Beyond the paper").
        FigureSpec(
            "rate_tightness",
            f"{_RATES}:plot_rate_tightness",
            "local slopes of ||W(T) - W*|| between neighbouring widths, with bootstrap CIs",
            min_widths=4,
        ),
        FigureSpec(
            "gd_vs_flow",
            f"{_RATES}:plot_gd_vs_flow",
            "final ||W(T) - W*|| against width, one line per learning rate at fixed lr * T",
            min_widths=3,
            needs_sweep=("lr",),
            needs_horizon=True,
        ),
        FigureSpec(
            "lazy_phase",
            f"{_VARIANTS}:plot_lazy_phase",
            "kappa x m phase diagram of the relative distance and the flipped activations",
            min_widths=2,
            needs_sweep=("model.kappa",),
        ),
        FigureSpec(
            "fig1_variants",
            f"{_VARIANTS}:plot_fig1_variants",
            "Figure 1 variants ranked by their distance to the paper's read-off values",
            min_widths=1,
        ),
        # Other activations and a trained output layer (config/families.yaml, issue 29).
        FigureSpec(
            "families_distance",
            f"{_FAMILIES}:plot_families_distance",
            "final ||theta(T) - theta*|| against width, one line per activation and output layer",
            min_widths=3,
        ),
        FigureSpec(
            "families_gap",
            f"{_FAMILIES}:plot_families_gap",
            "network-to-linearisation gap against width, one line per activation and output layer",
            min_widths=3,
        ),
        FigureSpec(
            "fig1_readoffs",
            f"{_VARIANTS}:plot_fig1_readoffs",
            "Figure 1 panels of the closest variant and of the default, with the read-offs",
            min_widths=1,
        ),
    )
}
