"""Three-valued verdicts on claims: supported, contradicted or inconclusive, from an interval and
the region the claim allows.

A claim states a region for its quantity with a margin: an upper bound (the theorem's rate:
exponent <= -1/4 + delta; a steeper exponent is consistent with it), a point hypothesis
[b0 - delta, b0 + delta], or an equivalence margin around 0 for "no effect". The verdict:

- supported: the 90% interval lies inside the region, i.e. the data reject "outside the
  region" at 5% (for a point or "no effect" region: the two one-sided tests of an equivalence
  test; for a bound: one one-sided test);
- contradicted: the 95% interval lies wholly outside the region;
- inconclusive: neither, e.g. an interval too wide to decide anything.

Each claim is decided at 5% on its own (no family-wise correction); the tables state how many
claims they hold, so a reader can weigh the chance of a false verdict among them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# A claim is supported when its 90% interval lies inside the region (an equivalence test at
# 5%), contradicted when its 95% interval lies outside it.
SUPPORT_LEVEL = 0.90
CONTRADICT_LEVEL = 0.95
# Margin delta of claims about exponents of m, unless a check states why another: 0.05 is a
# factor 10^0.05 = 1.12 per decade of m, below the spread between the theorems' rates (1/8).
EXPONENT_MARGIN = 0.05
# Equivalence margin of "no effect" claims on a paired difference of exponents (lr, kappa):
# 0.02 is 5% of a decade's factor (10^0.02 = 1.047), well below EXPONENT_MARGIN.
EQUIVALENCE_MARGIN = 0.02

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "n/a"
NO_VERDICT = "no verdict"


@dataclass(frozen=True)
class Region:
    """The values a claim allows: low <= value <= high (either end may be infinite)."""

    low: float = -np.inf
    high: float = np.inf

    def text(self, name: str = "value", digits: int = 3) -> str:
        """ "exponent <= -0.200", "-0.300 <= exponent <= -0.200", "exponent >= 0.100"."""
        if np.isinf(self.low):
            return f"{name} <= {self.high:.{digits}f}"
        if np.isinf(self.high):
            return f"{name} >= {self.low:.{digits}f}"
        return f"{self.low:.{digits}f} <= {name} <= {self.high:.{digits}f}"

    def contains(self, low: float, high: float) -> bool:
        """Whether the interval [low, high] lies inside the region."""
        return bool(self.low <= low and high <= self.high)

    def disjoint(self, low: float, high: float) -> bool:
        """Whether the interval [low, high] lies wholly outside the region."""
        return bool(high < self.low or low > self.high)


def at_most(bound: float, margin: float = EXPONENT_MARGIN) -> Region:
    """An upper-bound claim: value <= bound + margin."""
    return Region(high=bound + margin)


def around(value: float, margin: float = EXPONENT_MARGIN) -> Region:
    """A point hypothesis with its margin: value - margin <= . <= value + margin."""
    return Region(value - margin, value + margin)


def claim_verdict(bounds: Callable[[float], tuple[float, float]], region: Region) -> str:
    """The three-valued verdict of a claim from `bounds(level) -> (low, high)` (an interval at
    any level): SUPPORTED, CONTRADICTED or INCONCLUSIVE; INCONCLUSIVE when no interval exists."""
    low90, high90 = bounds(SUPPORT_LEVEL)
    low95, high95 = bounds(CONTRADICT_LEVEL)
    if not (np.isfinite(low90) and np.isfinite(high90)):
        return INCONCLUSIVE
    if region.contains(low90, high90):
        return SUPPORTED
    if region.disjoint(low95, high95):
        return CONTRADICTED
    return INCONCLUSIVE


def criterion_text(region: Region, name: str = "value") -> str:
    """The decision rule of a claim as shown in the tables."""
    return (
        f"region {region.text(name)}; supported if the {SUPPORT_LEVEL:.0%} CI lies inside, "
        f"contradicted if the {CONTRADICT_LEVEL:.0%} CI lies outside"
    )


def width_needed(region: Region, estimate: float) -> float:
    """The widest 90% interval around `estimate` that could still be supported: twice the
    distance to the nearest end of the region (0 when the estimate is outside it)."""
    if not (region.low <= estimate <= region.high):
        return 0.0
    return float(2 * min(estimate - region.low, region.high - estimate))
