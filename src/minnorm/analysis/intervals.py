"""t intervals for the estimates of the analysis: a linear contrast of an OLS fit within one
data draw, and the mean of per-unit estimates over several draws (or seeds).

Within one draw the contrast's standard error is the HC2 sandwich (MacKinnon & White 1985),
which stays unbiased when the noise differs between widths, and its t quantile has the
Bell-McCaffrey degrees of freedom (Bell & McCaffrey 2002; Imbens & Kolesar 2016): the
Satterthwaite approximation of the HC2 estimator's distribution under equal variances, which
shrinks towards the few observations a contrast leans on. Over several draws the interval is
the t interval on the per-draw estimates with draws - 1 degrees of freedom, exact when the draws
are independent and exchangeable, whatever happens inside a draw (tests/analysis/
test_powerlaw_coverage.py simulates both).

Every function works on a batch of response vectors at once (`Y: (..., N)`), so that a coverage
simulation runs thousands of replications as a few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

# Leverage this close to 1 means an observation has a parameter to itself: its residual is 0 and
# its share of the variance cannot be estimated.
_MAX_LEVERAGE = 1.0 - 1e-10


@dataclass(frozen=True)
class TInterval:
    """estimate +- t_{df} se at any level; undefined (`defined` False) when se or df is not."""

    estimate: float
    se: float
    df: float
    method: str

    @property
    def defined(self) -> bool:
        """Whether an interval exists (a finite standard error and positive df)."""
        return bool(np.isfinite(self.se) and np.isfinite(self.df) and self.df > 0)

    def bounds(self, level: float) -> tuple[float, float]:
        """(low, high) of the two-sided interval at `level` (0.95: 95%); NaN when undefined."""
        if not self.defined:
            return np.nan, np.nan
        half = float(stats.t.ppf(0.5 + level / 2, self.df)) * self.se
        return self.estimate - half, self.estimate + half


def contrast_weights(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """G: (N, K) with column k the weights g of contrast c_k: c_k . beta_hat = g . y for the OLS
    fit of y on X: (N, q); C: (K, q)."""
    return X @ np.linalg.pinv(X.T @ X) @ C.T


def bell_mccaffrey_df(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Bell-McCaffrey degrees of freedom (K,) of the HC2 variance of each contrast row of C: (K, q)
    in the OLS fit on X: (N, q), under equal variances: tr(B)^2 / tr(B^2) with
    B = M diag(g^2 / (1 - h)) M, M = I - hat matrix."""
    hat = X @ np.linalg.pinv(X.T @ X) @ X.T
    resid = np.eye(X.shape[0]) - hat
    lev = np.clip(np.diag(hat), 0.0, _MAX_LEVERAGE)
    G = contrast_weights(X, C)
    out = np.empty(G.shape[1])
    for k in range(G.shape[1]):
        B = resid @ np.diag(G[:, k] ** 2 / (1.0 - lev)) @ resid
        tr = np.trace(B)
        out[k] = tr**2 / np.trace(B @ B) if tr > 0 else np.nan
    return out


def ols_contrasts(
    X: np.ndarray, Y: np.ndarray, C: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OLS of each response Y: (..., N) on X: (N, q); for each contrast row of C: (K, q) the
    estimate (..., K), its HC2 standard error (..., K) and its Bell-McCaffrey df (K,).

    Standard errors are NaN where the contrast leans on an observation of leverage 1 (nothing to
    estimate its variance from) or the residual degrees of freedom are 0.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    G = contrast_weights(X, C)  # (N, K)
    hat = X @ np.linalg.pinv(X.T @ X) @ X.T
    lev = np.diag(hat)
    resid = Y - Y @ hat.T  # hat is symmetric; (..., N)
    estimate = Y @ G
    weights = G**2 / np.clip(1.0 - lev, 1.0 - _MAX_LEVERAGE, None)[:, None]  # (N, K)
    variance = (resid**2) @ weights
    unidentified = ((lev > _MAX_LEVERAGE)[:, None] & (np.abs(G) > 0)).any(axis=0)
    if X.shape[0] <= np.linalg.matrix_rank(X):
        unidentified[:] = True
    se = np.where(unidentified, np.nan, np.sqrt(variance))
    df = bell_mccaffrey_df(X, C)
    return estimate, se, np.where(unidentified, np.nan, df)


def unit_means(estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean over the last axis of per-unit estimates (..., D), its standard error sd / sqrt(D)
    (NaN for D < 2) and the degrees of freedom D - 1."""
    estimates = np.asarray(estimates, dtype=np.float64)
    count = estimates.shape[-1]
    mean = estimates.mean(axis=-1)
    if count < 2:
        return mean, np.full_like(mean, np.nan), 0
    return mean, estimates.std(axis=-1, ddof=1) / np.sqrt(count), count - 1


def mean_interval(values: np.ndarray, units: np.ndarray | None = None) -> TInterval:
    """t interval of the mean of `values: (N,)` (NaN dropped). With `units: (N,)` (data draws,
    or (draw, seed) pairs) the values are first averaged within each unit and the interval is
    over the unit means (units - 1 df); without, over the values themselves."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    if units is None:
        per_unit = values[keep]
        label = "t interval over the values"
    else:
        units = np.asarray(units)[keep]
        per_unit = np.array([values[keep][units == u].mean() for u in np.unique(units)])
        label = f"t interval over {per_unit.size} per-unit means"
    if per_unit.size == 0:
        return TInterval(np.nan, np.nan, np.nan, label)
    mean, se, df = unit_means(per_unit)
    return TInterval(float(mean), float(se), float(df) if df > 0 else np.nan, label)
