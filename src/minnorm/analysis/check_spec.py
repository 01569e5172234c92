"""CheckSpec and Outcome: what a check declares and what it measures.

Kept apart from the registry (minnorm.analysis.checks.CHECKS) so that the modules that compute
checks (minnorm.analysis.checks, minnorm.analysis.beyond.*) can declare their CheckSpecs without
importing each other.

Every row of a checks table is one of three kinds:

- deterministic: a property of the runs themselves (the loss reached its floor, no run
  diverged, a measured ratio below a bound in these runs): pass / fail;
- claim: a statement about the setting, decided from an interval by the three-valued rule of
  minnorm.analysis.verdicts: supported / contradicted / inconclusive;
- finding: what a study measures, an estimate with its interval: no verdict.

Any kind may be n/a when the runs cannot compute it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from minnorm.analysis.verdicts import (
    CONTRADICTED,
    FAIL,
    INCONCLUSIVE,
    NO_VERDICT,
    NOT_APPLICABLE,
    PASS,
    SUPPORTED,
)

COLUMNS = [
    "experiment",
    "kind",
    "check",
    "setting",
    "claim",
    "measured",
    "ci_low",
    "ci_high",
    "criterion",
    "verdict",
    "detail",
]
DETERMINISTIC, CLAIM, FINDING = "deterministic", "claim", "finding"
VERDICTS: dict[str, tuple[str, ...]] = {
    DETERMINISTIC: (PASS, FAIL, NOT_APPLICABLE),
    CLAIM: (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_APPLICABLE),
    FINDING: (NO_VERDICT, NOT_APPLICABLE),
}
# Columns of the estimates table (results/<exp>/estimates.csv): every estimate a row of the
# checks table rests on, overall and per data draw (the forest plot draws them).
ESTIMATE_COLUMNS = [
    "experiment",
    "check",
    "setting",
    "draw",
    "quantity",
    "estimate",
    "ci_low",
    "ci_high",
    "verdict",
    "basis",
]


@dataclass(frozen=True)
class DrawEstimate:
    """One data draw's own estimate with its (conditional) 95% interval."""

    draw: str
    estimate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Outcome:
    """What a check measured on one combination of swept settings.

    measured: the statistic; ci_low, ci_high: its 95% interval (NaN: none); verdict: one of the
    check kind's VERDICTS; detail: the numbers behind it; setting: the combination of other
    swept values ("" when none); basis: the data the estimate rests on (widths, draws x seeds,
    lr, steps), the first thing two rows with opposite verdicts differ in; draws: per-draw
    estimates when there are several draws.
    """

    measured: float
    verdict: str
    detail: str
    ci_low: float = np.nan
    ci_high: float = np.nan
    setting: str = ""
    basis: str = ""
    draws: tuple[DrawEstimate, ...] = field(default=())


# The model settings that make the papers' network, and their values there (a run file's config
# leaves them out at these values: minnorm.config.run_config.ModelSettings.to_mapping).
PAPER_NETWORK: dict[str, object] = {"activation": "relu", "train_output": False}


def paper_network(ds: xr.Dataset) -> bool:
    """Whether every run of a collected Dataset is the papers' network: relu with the output layer
    fixed, read from the swept dims (`model_activation`, `model_train_output`) or else the shared
    config (`attrs["config"]`; a key that is absent there has its paper value)."""
    try:
        model = json.loads(ds.attrs.get("config", "{}")).get("model", {})
    except (TypeError, ValueError, AttributeError):
        model = {}
    for key, paper in PAPER_NETWORK.items():
        dim = f"model_{key}"
        values = (
            list(np.atleast_1d(ds[dim].values)) if dim in ds.coords else [model.get(key, paper)]
        )
        if any(value != paper for value in values):
            return False
    return True


@dataclass(frozen=True)
class CheckSpec:
    """One check.

    name: short identifier (the `check` column). kind: DETERMINISTIC, CLAIM or FINDING.
    claim: what is claimed or measured, as shown in the table. statistic: what `measured` is.
    criterion: the pass condition or the claim's region and decision rule, as shown.
    applies_to: in words, which experiments get rows; `applies(ds)` decides it from the
    collected Dataset. evaluate(ds) -> Outcome or list of Outcome (one per combination of other
    swept settings) gets the whole collected Dataset (diverged runs included; each check masks
    them itself). quantity: what the estimate is, for the estimates table ("" for none).
    needs_paper_network: the check is about the papers' network only (relu with the output layer
    fixed: the Arora et al. bound is proved for it alone); it gets no rows for runs of any other
    network (`applicable`).
    """

    name: str
    kind: str
    claim: str
    statistic: str
    criterion: str
    applies_to: str
    applies: Callable[[xr.Dataset], bool]
    evaluate: Callable[[xr.Dataset], Outcome | list[Outcome]]
    quantity: str = ""
    needs_paper_network: bool = False

    def applicable(self, ds: xr.Dataset) -> bool:
        """Whether the check gets rows for the collected Dataset `ds`: `applies(ds)`, and, for a
        check of the papers' network, every run of `ds` is that network (`paper_network`)."""
        return (not self.needs_paper_network or paper_network(ds)) and self.applies(ds)

    def outcomes(self, ds: xr.Dataset) -> list[Outcome]:
        """Every outcome of this check on `ds`, verdicts validated against its kind."""
        got = self.evaluate(ds)
        outs = got if isinstance(got, list) else [got]
        for out in outs:
            if out.verdict not in VERDICTS[self.kind]:
                raise ValueError(
                    f"check {self.name!r} ({self.kind}): verdict {out.verdict!r} not in "
                    f"{VERDICTS[self.kind]}"
                )
        return outs

    def row(self, experiment: str, out: Outcome) -> dict:
        """The table row of one outcome (columns COLUMNS)."""
        values = (
            experiment,
            self.kind,
            self.name,
            out.setting,
            self.claim,
            float(out.measured),
            float(out.ci_low),
            float(out.ci_high),
            self.criterion,
            out.verdict,
            out.detail,
        )
        return dict(zip(COLUMNS, values, strict=True))

    def estimate_rows(self, experiment: str, out: Outcome) -> list[dict]:
        """Rows of the estimates table: the overall estimate (draw "all") and each draw's."""
        if not self.quantity or not np.isfinite(out.measured):
            return []
        rows = [
            (experiment, self.name, out.setting, "all", self.quantity, out.measured)
            + (out.ci_low, out.ci_high, out.verdict, out.basis)
        ]
        rows += [
            (experiment, self.name, out.setting, d.draw, self.quantity, d.estimate)
            + (d.ci_low, d.ci_high, "", out.basis)
            for d in out.draws
        ]
        return [dict(zip(ESTIMATE_COLUMNS, r, strict=True)) for r in rows]
