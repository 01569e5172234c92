"""Tests for minnorm.analysis.verdicts: the three-valued rule on intervals, at its edges."""

import numpy as np
import pytest
from scipy import stats

from minnorm.analysis.verdicts import (
    Region,
    around,
    at_most,
    claim_verdict,
    criterion_text,
    width_needed,
)


def normal_bounds(estimate: float, se: float):
    return lambda level: tuple(estimate + np.array([-1, 1]) * stats.norm.ppf(0.5 + level / 2) * se)


@pytest.mark.parametrize(
    ("estimate", "se", "region", "verdict"),
    [
        (-0.30, 0.02, at_most(-0.25), "supported"),  # 90% CI far below -0.20
        (-0.10, 0.02, at_most(-0.25), "contradicted"),  # 95% CI above -0.20
        (-0.20, 0.02, at_most(-0.25), "inconclusive"),  # straddles the bound
        (-0.30, 1.00, at_most(-0.25), "inconclusive"),  # too wide to decide
        (-0.25, 0.01, around(-0.25), "supported"),
        (-0.50, 0.01, around(-0.25), "contradicted"),
        (-0.25, 0.05, around(-0.25), "inconclusive"),  # centred but wider than the region
        (0.001, 0.005, around(0.0, 0.02), "supported"),
    ],
)
def test_claim_verdict(estimate, se, region, verdict):
    assert claim_verdict(normal_bounds(estimate, se), region) == verdict


def test_support_uses_the_90_and_contradiction_the_95_interval():
    region = at_most(0.0, 0.0)
    # Upper 90% bound exactly at 0: supported; a hair above: inconclusive.
    se = 1.0 / stats.norm.ppf(0.95)
    assert claim_verdict(normal_bounds(-1.0 - 1e-9, se), region) == "supported"
    assert claim_verdict(normal_bounds(-1.0 + 1e-3, se), region) == "inconclusive"
    # Lower 95% bound above 0: contradicted; the 90% bound alone is not enough.
    se = 1.0 / stats.norm.ppf(0.975)
    assert claim_verdict(normal_bounds(1.0 + 1e-9, se), region) == "contradicted"
    assert claim_verdict(normal_bounds(1.0 - 1e-3, se), region) == "inconclusive"


def test_no_interval_is_inconclusive():
    assert claim_verdict(lambda level: (np.nan, np.nan), around(0.0)) == "inconclusive"


def test_region_texts_and_the_width_needed():
    assert at_most(-0.25).text("exponent") == "exponent <= -0.200"
    assert around(-0.5).text("exponent") == "-0.550 <= exponent <= -0.450"
    assert Region(low=0.1).text() == "value >= 0.100"
    assert "90% CI lies inside" in criterion_text(around(0.0, 0.02), "difference")
    assert width_needed(around(-0.25), -0.27) == pytest.approx(0.06)
    assert width_needed(around(-0.25), -0.40) == 0.0
