"""Power laws in the width m: the exponent of values ~ prefactor * m^exponent and the curvature
of log values in log m, with intervals over seeds and data draws (minnorm.analysis.intervals).

The estimand is the least-squares slope of log(value) on log(m) over the widths given, for the
setting: averaged over data draws when several are given (the t interval on the per-draw
slopes, draws - 1 df, covers the variation between draws), and for that draw alone when only
one is (OLS with an HC2 standard error and Bell-McCaffrey df; the result says it is
conditional on that draw). Seeds are the replicates inside a draw; a (draw, seed) pair is
never split. Local slopes (two widths), curvature and paired differences (the ratio of two
quantities measured on the same (draw, seed, width)) go through the same two routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minnorm.analysis.intervals import TInterval, ols_contrasts, unit_means

CI_LEVEL = 0.95
ONE_DRAW_METHOD = "OLS with HC2 SE and Bell-McCaffrey df"
DRAWS_METHOD = "t over the per-draw OLS estimates"


@dataclass(frozen=True)
class LongForm:
    """Validated long-form data: m (N,), x = log m (N,), y = log value (N,), draw codes (N,) in
    0..D-1, the draw labels (D,), and how many NaN values were dropped."""

    m: np.ndarray
    x: np.ndarray
    y: np.ndarray
    codes: np.ndarray
    labels: np.ndarray
    n_dropped: int

    def draw(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of draw code d."""
        mask = self.codes == d
        return self.x[mask], self.y[mask]

    def draw_m(self, d: int) -> np.ndarray:
        """m of draw code d."""
        return self.m[self.codes == d]


def _label(value: Any) -> object:
    """A draw label as a plain Python value (numpy scalars print as np.int64(0))."""
    return value.item() if hasattr(value, "item") else value


def long_form(
    m: np.ndarray, values: np.ndarray, draw: np.ndarray | None = None, *, min_widths: int = 2
) -> LongForm:
    """Check and log-transform long-form data (one row per observation).

    Raises ValueError naming the cause: arrays that are not 1-D of one length, a width that is
    not finite and positive, a finite value <= 0 (no logarithm), a draw with values at fewer
    than `min_widths` widths (after NaN values are dropped), or no value at all.
    """
    m = np.asarray(m, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    labels = np.zeros(values.shape, dtype=np.int64) if draw is None else np.asarray(draw)
    if m.ndim != 1 or values.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            "fit_power_law: m, values and draw must be 1-D (long form: one row per observation), "
            f"got shapes {m.shape}, {values.shape}, {labels.shape}"
        )
    if not m.size == values.size == labels.size:
        raise ValueError(
            f"fit_power_law: m, values and draw must have one length, got {m.size}, "
            f"{values.size} and {labels.size}"
        )
    if not np.all(np.isfinite(m) & (m > 0)):
        raise ValueError("fit_power_law: every width m must be finite and positive")
    keep = ~np.isnan(values)
    bad = values[keep]
    if np.any(~np.isfinite(bad)) or np.any(bad <= 0):
        count = int(np.sum(~np.isfinite(bad) | (bad <= 0)))
        raise ValueError(
            f"fit_power_law: {count} value(s) are <= 0 or infinite; a log-log fit needs "
            "positive finite values (NaN values are dropped)"
        )
    if not keep.any():
        raise ValueError("fit_power_law: no value left after dropping NaN")
    names, codes = np.unique(labels[keep], return_inverse=True)
    x, y = np.log(m[keep]), np.log(values[keep])
    for d, name in enumerate(names):
        count = np.unique(x[codes == d]).size
        if count < min_widths:
            which = "the data" if draw is None else f"draw {_label(name)!r}"
            raise ValueError(
                f"fit_power_law: {which} has values at {count} width(s); need {min_widths} or "
                "more per draw"
            )
    return LongForm(m[keep], x, y, codes, names, int((~keep).sum()))


@dataclass(frozen=True)
class Estimate:
    """One estimate with its t interval, and where it comes from.

    `draw_estimates: (D,)` the per-draw estimates (one draw: the estimate itself);
    `conditional`: True with one data draw (the interval is about that draw only).
    """

    interval: TInterval
    ci: float
    n_draws: int
    n_obs: int
    n_dropped: int
    draw_estimates: np.ndarray = field(repr=False, compare=False)

    @property
    def estimate(self) -> float:
        return self.interval.estimate

    @property
    def method(self) -> str:
        return self.interval.method

    @property
    def conditional(self) -> bool:
        return self.n_draws == 1

    @property
    def ci_defined(self) -> bool:
        return self.interval.defined

    @property
    def ci_low(self) -> float:
        return self.interval.bounds(self.ci)[0]

    @property
    def ci_high(self) -> float:
        return self.interval.bounds(self.ci)[1]

    def bounds(self, level: float) -> tuple[float, float]:
        """The interval at another level (e.g. 0.90 for an equivalence test)."""
        return self.interval.bounds(level)

    def ci_text(self, digits: int = 3) -> str:
        """ "95% CI [lo, hi]" or why there is none; marks an interval conditional on one draw."""
        if not self.ci_defined:
            return f"{self.ci:.0%} CI undefined (too few observations)"
        lo, hi = self.bounds(self.ci)
        tail = ", one data draw" if self.conditional else f", {self.n_draws} data draws"
        return f"{self.ci:.0%} CI [{lo:.{digits}f}, {hi:.{digits}f}]{tail}"


def contrast_estimate(
    data: LongForm,
    design: Callable[[np.ndarray], np.ndarray],
    contrast: np.ndarray,
    ci: float = CI_LEVEL,
) -> tuple[Estimate, np.ndarray]:
    """The contrast of an OLS fit of y on design(x): (N, q), per draw; with one draw its HC2 /
    Bell-McCaffrey interval, with several the t interval on the per-draw estimates. Also returns
    the per-draw coefficient vectors (D, q)."""
    coefs, per_draw, se, df = [], [], np.nan, np.nan
    contrast = np.asarray(contrast, dtype=np.float64)
    for d in range(data.labels.size):
        x, y = data.draw(d)
        X = design(x)
        coef = np.linalg.pinv(X.T @ X) @ X.T @ y
        coefs.append(coef)
        per_draw.append(float(contrast @ coef))
        if data.labels.size == 1:
            _, se_all, df_all = ols_contrasts(X, y, contrast[None, :])
            se, df = float(se_all[0]), float(df_all[0])
    per_draw_arr = np.array(per_draw)
    if data.labels.size == 1:
        interval = TInterval(per_draw[0], se, df, ONE_DRAW_METHOD)
    else:
        mean, sem, dof = unit_means(per_draw_arr)
        interval = TInterval(float(mean), float(sem), float(dof), DRAWS_METHOD)
    est = Estimate(interval, ci, data.labels.size, data.x.size, data.n_dropped, per_draw_arr)
    return est, np.array(coefs)


def _line(x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(x), x])


@dataclass(frozen=True)
class PowerLawFit(Estimate):
    """values ~ prefactor * m^exponent over the widths given, with a t interval on the exponent.

    exponent, ci_low, ci_high: the slope of log value on log m and its interval at level `ci`;
    prefactor: exp of the (mean per-draw) intercept; widths: (k,) the distinct widths fitted.
    """

    prefactor: float = np.nan
    widths: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    data: LongForm | None = field(default=None, repr=False, compare=False)
    lines: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), repr=False, compare=False)

    @property
    def exponent(self) -> float:
        return self.interval.estimate

    def predict(self, m: np.ndarray) -> np.ndarray:
        """The fitted curve at widths `m: (n,)`."""
        return self.prefactor * np.asarray(m, dtype=np.float64) ** self.exponent

    def band(self, m: np.ndarray, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise interval (low, high) of the fitted curve at `m: (n,)` (level: `ci`), by the
        same route as the exponent's. Raises ValueError when the interval is undefined."""
        if not self.ci_defined or self.data is None:
            raise ValueError(f"PowerLawFit.band: {self.ci_text()}")
        level = self.ci if level is None else level
        grid = np.log(np.asarray(m, dtype=np.float64))
        from scipy import stats

        if self.n_draws == 1:
            X = _line(self.data.x)
            C = _line(grid)
            center = C @ self.lines[0]
            _, se, df = ols_contrasts(X, self.data.y, C)
            q = stats.t.ppf(0.5 + level / 2, df)
        else:
            per_draw = self.lines[:, :1] + self.lines[:, 1:] * grid[None, :]  # (D, n)
            center, se, dof = unit_means(per_draw.T)
            q = stats.t.ppf(0.5 + level / 2, dof)
        return np.exp(center - q * se), np.exp(center + q * se)

    def per_draw(self) -> list[PowerLawFit]:
        """One fit per data draw (each conditional on its draw), in the order of `draw_labels`."""
        if self.data is None:
            return []
        fits = []
        for d in range(self.data.labels.size):
            _, y = self.data.draw(d)
            fits.append(fit_power_law(self.data.draw_m(d), np.exp(y), ci=self.ci))
        return fits

    @property
    def draw_labels(self) -> np.ndarray:
        return np.empty(0) if self.data is None else self.data.labels


def fit_power_law(
    m: np.ndarray,
    values: np.ndarray,
    *,
    draw: np.ndarray | None = None,
    ci: float = CI_LEVEL,
    seed: int = 0,
) -> PowerLawFit:
    """Least-squares power law values ~ prefactor * m^exponent, with an interval for the
    exponent of the setting.

    m, values: (N,) long form, one row per observation (width, value); draw: (N,) the data draw
    of each value (any labels; None: all from one draw). NaN values are dropped and counted
    (`n_dropped`). The exponent is the OLS slope of log value on log m, per draw, averaged over
    draws. Interval at level `ci`: with several draws the t interval on the per-draw slopes
    (draws - 1 df; seeds inside a draw are its replicates); with one draw the OLS slope's HC2
    standard error with Bell-McCaffrey df, which is conditional on that draw (`conditional`).
    Undefined (NaN bounds, `ci_defined` False) when nothing is left to estimate the noise from,
    e.g. one value at each of two widths. `seed` is accepted for reproducibility of resampling
    methods; the intervals used here are analytic and do not depend on it.

    Raises ValueError (naming the cause) for arrays that are not 1-D of one length, values <= 0,
    non-positive widths, or a draw with values at fewer than two widths.
    """
    del seed  # analytic intervals: no resampling
    data = long_form(m, values, draw)
    est, lines = contrast_estimate(data, _line, np.array([0.0, 1.0]), ci)
    return PowerLawFit(
        est.interval,
        ci,
        est.n_draws,
        est.n_obs,
        est.n_dropped,
        est.draw_estimates,
        prefactor=float(np.exp(lines[:, 0].mean())),
        widths=np.unique(data.m),
        data=data,
        lines=lines,
    )


def fit_curvature(
    m: np.ndarray, values: np.ndarray, *, draw: np.ndarray | None = None, ci: float = CI_LEVEL
) -> Estimate:
    """How the local exponent d log(value) / d log m changes per doubling of m: 2 ln(2) gamma
    of the OLS fit log value = a + b x + gamma x^2 (x = log m, centred on the mean over all
    draws), with an interval by the route of `fit_power_law`. Needs three widths per draw.
    Positive: the decay flattens as m grows; negative: it steepens."""
    data = long_form(m, values, draw, min_widths=3)
    centre = float(data.x.mean())

    def design(x: np.ndarray) -> np.ndarray:
        xc = x - centre
        return np.column_stack([np.ones_like(x), xc, xc**2])

    est, _ = contrast_estimate(data, design, np.array([0.0, 0.0, 2.0 * np.log(2.0)]), ci)
    return est


__all__ = [
    "CI_LEVEL",
    "Estimate",
    "PowerLawFit",
    "fit_curvature",
    "fit_power_law",
    "long_form",
]
