"""CheckSpec and Outcome: what a theorem check declares and what it measures.

Kept apart from the registry (minnorm.analysis.checks.CHECKS) so that the modules that compute
checks
(minnorm.analysis.checks, minnorm.analysis.beyond.*) can declare their CheckSpecs without importing
each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import xarray as xr

COLUMNS = ["experiment", "claim", "measured", "threshold", "verdict", "detail"]
# A verdict that rests on a bootstrap CI cannot be given from one seed per width.
NOT_ENOUGH_SEEDS = "not enough seeds"
VERDICTS = ("pass", "fail", "n/a", NOT_ENOUGH_SEEDS)


@dataclass(frozen=True)
class Outcome:
    """What a check measured on one experiment: the statistic, the verdict and a detail line."""

    measured: float
    verdict: str
    detail: str


@dataclass(frozen=True)
class CheckSpec:
    """One theorem check.

    name: short identifier. claim: the claim with the measured statistic in parentheses, as
    shown in the table. statistic: what `measured` is. threshold: the pass condition, as shown.
    applies_to: in words, which experiments get this row; `applies(ds)` decides it from the
    collected Dataset. evaluate(ds) -> Outcome gets the whole collected Dataset (diverged runs
    included; each check masks them itself). uses_ci: whether the verdict needs a bootstrap CI
    (then it is NOT_ENOUGH_SEEDS with fewer than two seeds per width).
    """

    name: str
    claim: str
    statistic: str
    threshold: str
    applies_to: str
    applies: Callable[[xr.Dataset], bool]
    evaluate: Callable[[xr.Dataset], Outcome]
    uses_ci: bool = False

    def row(self, experiment: str, ds: xr.Dataset) -> dict:
        """The table row of this check on `ds` (columns COLUMNS)."""
        out = self.evaluate(ds)
        if out.verdict not in VERDICTS:
            raise ValueError(f"check {self.name!r}: verdict {out.verdict!r} not in {VERDICTS}")
        return dict(
            zip(
                COLUMNS,
                (
                    experiment,
                    self.claim,
                    float(out.measured),
                    self.threshold,
                    out.verdict,
                    out.detail,
                ),
                strict=True,
            )
        )
