"""Coverage of fit_power_law's interval by simulation with a known exponent.

Scenarios span 4-11 widths (2^7 ...), 1-5 data draws x 2-5 seeds, log-noise SD 0.02-0.3 that
varies 3x across the widths (growing or shrinking with m) or not at all, and draw-level random
intercepts and slopes (slope SD 0 or twice the within-draw standard error). With one draw the
target is that draw's own slope, with several the mean slope. In every scenario the 95%
interval must cover at least 93% of 2000 replications and be on average at most 1.25x as wide as
the reference interval (OLS with t quantiles for one draw; the t interval on per-draw slopes
for several), so that it cannot pass by being wide.

The simulation runs the same array code as `fit_power_law` (`minnorm.analysis.intervals`) on all
replications at once; `test_vectorised_route_equals_fit_power_law` ties the two together.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from minnorm import fit_power_law
from minnorm.analysis.intervals import contrast_weights, ols_contrasts, unit_means

REPLICATIONS = 2000
LEVEL = 0.95
MIN_COVERAGE = 0.93
MAX_WIDTH_RATIO = 1.25
TRUE_SLOPE = -0.3
INTERCEPT_SD = 0.5

WIDTH_COUNTS = (4, 6, 11)
DRAW_COUNTS = (1, 2, 3, 5)
SEED_COUNTS = (2, 3, 5)
NOISE_SDS = (0.02, 0.3)
# Noise SD per width, relative: flat, or varying 3x log-linearly in log m (up or down).
PATTERNS = ("flat", "grows 3x", "shrinks 3x")
# Random slope SD in units of the within-draw standard error of the OLS slope.
SLOPE_SD_FACTORS = (0.0, 2.0)


def noise_profile(pattern: str, k: int) -> np.ndarray:
    u = np.linspace(0.0, 1.0, k)
    return {"flat": np.ones(k), "grows 3x": 3.0**u, "shrinks 3x": 3.0 ** (1 - u)}[pattern]


def simulate(k, draws, seeds, noise_sd, pattern, slope_factor, rng):
    """(coverage, mean width, mean reference width) of the 95% interval in one scenario."""
    x = np.repeat(np.log(2.0 ** np.arange(7, 7 + k)), seeds)  # (N,) one draw's design
    sd = noise_sd * np.repeat(noise_profile(pattern, k), seeds)
    X = np.column_stack([np.ones_like(x), x])
    slope_weights = contrast_weights(X, np.array([[0.0, 1.0]]))[:, 0]  # (N,)
    within_se = float(np.sqrt((slope_weights**2 * sd**2).sum()))
    slopes = TRUE_SLOPE + slope_factor * within_se * rng.standard_normal((REPLICATIONS, draws))
    intercepts = INTERCEPT_SD * rng.standard_normal((REPLICATIONS, draws))
    noise = sd * rng.standard_normal((REPLICATIONS, draws, x.size))
    y = intercepts[..., None] + slopes[..., None] * x + noise  # (R, D, N)
    if draws == 1:
        target = slopes[:, 0]
        estimate, se, df = ols_contrasts(X, y[:, 0, :], np.array([[0.0, 1.0]]))
        half = stats.t.ppf(0.5 + LEVEL / 2, df[0]) * se[:, 0]
        estimate = estimate[:, 0]
        resid = y[:, 0, :] - estimate[:, None] * x
        resid -= resid.mean(axis=1, keepdims=True)
        ols_se = np.sqrt((resid**2).sum(axis=1) / (x.size - 2) / ((x - x.mean()) ** 2).sum())
        ref_half = stats.t.ppf(0.5 + LEVEL / 2, x.size - 2) * ols_se
    else:
        target = np.full(REPLICATIONS, TRUE_SLOPE)
        per_draw = y @ slope_weights  # (R, D)
        estimate, se, df = unit_means(per_draw)
        half = stats.t.ppf(0.5 + LEVEL / 2, df) * se
        ref_half = half  # the reference itself: per-draw slopes, draws - 1 df
    covered = np.abs(estimate - target) <= half
    return covered.mean(), 2 * half.mean(), 2 * ref_half.mean()


SCENARIOS = list(
    itertools.product(WIDTH_COUNTS, DRAW_COUNTS, SEED_COUNTS, NOISE_SDS, PATTERNS, SLOPE_SD_FACTORS)
)


def test_interval_has_nominal_coverage_and_is_not_wider_than_the_reference():
    rng = np.random.default_rng(20250525)
    failures = []
    worst_coverage, worst_ratio = 1.0, 0.0
    for scenario in SCENARIOS:
        coverage, width, ref_width = simulate(*scenario, rng)
        ratio = width / ref_width
        worst_coverage, worst_ratio = min(worst_coverage, coverage), max(worst_ratio, ratio)
        if coverage < MIN_COVERAGE or ratio > MAX_WIDTH_RATIO:
            failures.append((scenario, round(coverage, 4), round(ratio, 3)))
    assert not failures, failures
    # The simulation is not vacuous: some scenario gets near the bounds.
    assert worst_coverage < 0.95 and worst_ratio > 1.05, (worst_coverage, worst_ratio)


def test_plain_ols_fails_where_the_noise_changes_across_widths():
    """The reference alone undercovers with noise growing 3x over 4 widths and 5 seeds: the
    scenarios can tell a right interval from a naive one."""
    rng = np.random.default_rng(7)
    k, seeds = 4, 5
    x = np.repeat(np.log(2.0 ** np.arange(7, 7 + k)), seeds)
    sd = 0.1 * np.repeat(noise_profile("grows 3x", k), seeds)
    y = TRUE_SLOPE * x + sd * rng.standard_normal((20000, x.size))
    slope = (y - y.mean(axis=1, keepdims=True)) @ (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    resid = y - y.mean(axis=1, keepdims=True) - slope[:, None] * (x - x.mean())
    ols_se = np.sqrt((resid**2).sum(axis=1) / (x.size - 2) / ((x - x.mean()) ** 2).sum())
    half = stats.t.ppf(0.975, x.size - 2) * ols_se
    assert np.mean(np.abs(slope - TRUE_SLOPE) <= half) < 0.935


@pytest.mark.parametrize("draws", [1, 3])
def test_vectorised_route_equals_fit_power_law(draws):
    """fit_power_law on long-form data gives the numbers of the array route of the simulation."""
    rng = np.random.default_rng(3)
    k, seeds = 5, 3
    m = np.tile(np.repeat(2.0 ** np.arange(7, 7 + k), seeds), draws)
    labels = np.repeat([f"d{i}" for i in range(draws)], k * seeds)
    log_values = -0.3 * np.log(m) + 0.1 * rng.standard_normal(m.size)
    fit = fit_power_law(m, np.exp(log_values), draw=labels if draws > 1 else None)
    x = np.log(m[: k * seeds])
    X = np.column_stack([np.ones_like(x), x])
    per_draw = log_values.reshape(draws, -1)
    if draws == 1:
        estimate, se, df = ols_contrasts(X, per_draw[0], np.array([[0.0, 1.0]]))
        expected = (float(estimate[0]), float(se[0]), float(df[0]))
    else:
        slopes = per_draw @ contrast_weights(X, np.array([[0.0, 1.0]]))[:, 0]
        mean, sem, dof = unit_means(slopes)
        expected = (float(mean), float(sem), float(dof))
    got = (fit.exponent, fit.interval.se, fit.interval.df)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
