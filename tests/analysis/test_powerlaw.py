"""Tests for minnorm.fit_power_law and fit_curvature against independent references
(statsmodels' HC2 OLS, scipy's t interval on per-draw linregress slopes, closed forms)."""

import subprocess
import sys

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from minnorm import fit_power_law
from minnorm.analysis.powerlaw import fit_curvature

WIDTHS = 2.0 ** np.arange(7, 13)  # 6 widths


def one_draw(seeds=3, exponent=-0.3, sigma=0.1, rng_seed=1, heteroscedastic=False):
    rng = np.random.default_rng(rng_seed)
    m = np.repeat(WIDTHS, seeds)
    sd = sigma * (np.repeat(np.linspace(1, 3, WIDTHS.size), seeds) if heteroscedastic else 1.0)
    return m, 2.0 * m**exponent * np.exp(sd * rng.standard_normal(m.size))


def bell_mccaffrey_reference(x: np.ndarray) -> float:
    """Bell-McCaffrey df of the HC2 slope variance, written out from the definition."""
    X = np.column_stack([np.ones_like(x), x])
    H = X @ np.linalg.inv(X.T @ X) @ X.T
    M = np.eye(x.size) - H
    g = (X @ np.linalg.inv(X.T @ X))[:, 1]
    B = M @ np.diag(g**2 / (1 - np.diag(H))) @ M
    return np.trace(B) ** 2 / np.trace(B @ B)


@pytest.mark.parametrize("heteroscedastic", [False, True])
def test_one_draw_is_ols_with_hc2_and_bell_mccaffrey_df(heteroscedastic):
    m, v = one_draw(heteroscedastic=heteroscedastic)
    fit = fit_power_law(m, v)
    ref = sm.OLS(np.log(v), sm.add_constant(np.log(m))).fit(cov_type="HC2")
    assert fit.exponent == pytest.approx(ref.params[1], rel=1e-12)
    assert fit.prefactor == pytest.approx(np.exp(ref.params[0]), rel=1e-12)
    assert fit.interval.se == pytest.approx(ref.bse[1], rel=1e-10)
    df = bell_mccaffrey_reference(np.log(m))
    assert fit.interval.df == pytest.approx(df, rel=1e-10)
    half = stats.t.ppf(0.975, df) * ref.bse[1]
    assert (fit.ci_low, fit.ci_high) == pytest.approx(
        (ref.params[1] - half, ref.params[1] + half), rel=1e-10
    )
    assert fit.conditional and fit.n_draws == 1 and "one data draw" in fit.ci_text()
    lo90, hi90 = fit.bounds(0.90)
    assert fit.ci_low < lo90 < fit.exponent < hi90 < fit.ci_high


def test_several_draws_give_the_t_interval_on_per_draw_slopes():
    rng = np.random.default_rng(5)
    m, values, labels, slopes = [], [], [], []
    for d, slope in enumerate((-0.25, -0.31, -0.28, -0.35)):
        mm, vv = one_draw(exponent=slope, rng_seed=10 + d)
        m.append(mm)
        values.append(vv * np.exp(rng.normal()))  # a draw-level intercept
        labels.append(np.full(mm.size, f"draw{d}"))
        slopes.append(stats.linregress(np.log(mm), np.log(values[-1])).slope)
    fit = fit_power_law(np.concatenate(m), np.concatenate(values), draw=np.concatenate(labels))
    ref = stats.t.interval(0.95, len(slopes) - 1, loc=np.mean(slopes), scale=stats.sem(slopes))
    assert fit.exponent == pytest.approx(np.mean(slopes), rel=1e-12)
    assert (fit.ci_low, fit.ci_high) == pytest.approx(ref, rel=1e-10)
    assert not fit.conditional and fit.n_draws == 4 and "4 data draws" in fit.ci_text()
    assert [f.exponent for f in fit.per_draw()] == pytest.approx(slopes, rel=1e-12)
    assert list(fit.draw_labels) == ["draw0", "draw1", "draw2", "draw3"]


def test_nan_values_are_dropped_and_counted():
    m, v = one_draw()
    v[[0, 4]] = np.nan
    fit = fit_power_law(m, v)
    keep = np.isfinite(v)
    assert fit.n_dropped == 2 and fit.n_obs == keep.sum()
    assert fit.exponent == pytest.approx(
        stats.linregress(np.log(m[keep]), np.log(v[keep])).slope, rel=1e-12
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((WIDTHS, np.ones(3)), {}, "one length"),
        ((WIDTHS, np.ones((WIDTHS.size, 2))), {}, "1-D"),
        ((WIDTHS, -np.ones(WIDTHS.size)), {}, "<= 0"),
        ((WIDTHS * 0, np.ones(WIDTHS.size)), {}, "finite and positive"),
        (
            (WIDTHS, np.ones(WIDTHS.size)),
            {"draw": np.arange(WIDTHS.size)},
            "draw 0 has values at 1 width",
        ),
        ((WIDTHS[:1], np.ones(1)), {}, "1 width"),
        ((WIDTHS, np.full(WIDTHS.size, np.nan)), {}, "no value left"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_cause(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(*args, **kwargs)


def test_two_widths_with_one_value_each_have_no_interval():
    fit = fit_power_law(np.array([100.0, 200.0]), np.array([1.0, 0.8]))
    assert fit.exponent == pytest.approx(np.log(0.8) / np.log(2.0))
    assert not fit.ci_defined and np.isnan(fit.ci_low) and "undefined" in fit.ci_text()
    with pytest.raises(ValueError, match="undefined"):
        fit.band(np.array([100.0, 200.0]))


@pytest.mark.parametrize("draws", [1, 3])
def test_band_brackets_the_fit(draws):
    m, v = one_draw(seeds=2)
    labels = None
    if draws > 1:
        m, v = np.tile(m, draws), np.concatenate([v * (1 + 0.1 * d) ** 0.5 for d in range(draws)])
        labels = np.repeat(np.arange(draws), v.size // draws)
        v = v * np.exp(0.02 * np.random.default_rng(0).standard_normal(v.size))
    fit = fit_power_law(m, v, draw=labels)
    low, high = fit.band(WIDTHS)
    assert np.all(low < fit.predict(WIDTHS)) and np.all(fit.predict(WIDTHS) < high)


def test_curvature_is_the_change_of_the_local_exponent_per_doubling():
    # log v = -0.25 x - 0.02 x^2 (x = log2 m - 10): local exponent -0.25 - 0.04 x per doubling.
    m = np.repeat(2.0 ** np.arange(6, 15), 3)
    x = np.log2(m) - 10
    rng = np.random.default_rng(2)
    v = np.exp(np.log(2) * (-0.25 * x - 0.02 * x**2) + 0.01 * rng.standard_normal(m.size))
    est = fit_curvature(m, v)
    assert est.estimate == pytest.approx(-0.04, abs=0.005)
    assert est.ci_low < -0.04 < est.ci_high
    flat = fit_curvature(m, m**-0.25 * np.exp(0.01 * rng.standard_normal(m.size)))
    assert flat.ci_low < 0 < flat.ci_high
    with pytest.raises(ValueError, match="need 3"):
        fit_curvature(np.array([1.0, 2.0]), np.array([1.0, 0.5]))


def test_importing_minnorm_stays_cheap_and_exports_fit_power_law():
    code = (
        "import sys, minnorm; assert 'minnorm.analysis' not in sys.modules; "
        "assert 'scipy' not in sys.modules; f = minnorm.fit_power_law; "
        "assert f.__module__ == 'minnorm.analysis.powerlaw'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
