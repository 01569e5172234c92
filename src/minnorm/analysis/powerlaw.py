"""Power-law fits of a quantity against the width m, with a bootstrap CI over seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Bootstrap size and confidence level for the fitted exponents.
N_BOOT = 2000
CI_LEVEL = 0.95
# Resampling seeds within a width needs two seeds there at least; with one the "interval" is a
# point (the same value drawn every time), so no CI is reported.
MIN_SEEDS_FOR_CI = 2


@dataclass(frozen=True)
class PowerLawFit:
    """values ~ prefactor * m^exponent, with a bootstrap CI on the exponent.

    `ci_low`/`ci_high` are NaN when the CI is undefined (`min_seeds` < MIN_SEEDS_FOR_CI): then
    `ci_defined` is False and `band` cannot be drawn.
    """

    exponent: float
    prefactor: float
    ci_low: float
    ci_high: float
    ci: float = CI_LEVEL
    min_seeds: int = MIN_SEEDS_FOR_CI
    boot_exponents: np.ndarray = field(
        default_factory=lambda: np.empty(0), repr=False, compare=False
    )
    boot_log_prefactors: np.ndarray = field(
        default_factory=lambda: np.empty(0), repr=False, compare=False
    )

    @property
    def ci_defined(self) -> bool:
        """Whether every width had enough seeds for a bootstrap CI."""
        return self.min_seeds >= MIN_SEEDS_FOR_CI

    def ci_text(self) -> str:
        """ "95% CI [lo, hi]", or why there is none."""
        if not self.ci_defined:
            return f"{self.ci:.0%} CI undefined (fewer than {MIN_SEEDS_FOR_CI} seeds at some width)"
        return f"{self.ci:.0%} CI [{self.ci_low:.3f}, {self.ci_high:.3f}]"

    def predict(self, m: np.ndarray) -> np.ndarray:
        """The fitted curve at widths `m: (k,)`."""
        return self.prefactor * np.asarray(m, dtype=np.float64) ** self.exponent

    def band(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise CI of the fitted curve at `m: (k,)` from the bootstrap fits: (low, high).

        Raises ValueError when the CI is undefined (too few seeds).
        """
        if not self.ci_defined:
            raise ValueError(f"PowerLawFit.band: {self.ci_text()}")
        logm = np.log(np.asarray(m, dtype=np.float64))
        curves = self.boot_log_prefactors[:, None] + self.boot_exponents[:, None] * logm[None, :]
        alpha = 100 * (1 - self.ci) / 2
        low, high = np.percentile(curves, [alpha, 100 - alpha], axis=0)
        return np.exp(low), np.exp(high)


def _groups(m: np.ndarray, values: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Finite values grouped by width: [(m_j, values_j: (n_j,))], widths with no value dropped."""
    m = np.asarray(m, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2 and values.shape[0] == m.shape[0]:
        pairs = [(m[j], values[j]) for j in range(m.shape[0])]
    elif values.ndim == 1 and values.shape == m.shape:
        pairs = [(w, values[m == w]) for w in np.unique(m)]
    else:
        raise ValueError(
            f"fit_power_law: values of shape {values.shape} match neither (k, s) nor "
            f"long form for m of shape {m.shape}"
        )
    out = []
    for w, v in pairs:
        v = v[np.isfinite(v)]
        if np.any(v <= 0) or w <= 0:
            raise ValueError("fit_power_law: widths and values must be positive for a log-log fit")
        if v.size:
            out.append((float(w), v))
    return out


def fit_power_law(
    m: np.ndarray, values: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0, ci: float = CI_LEVEL
) -> PowerLawFit:
    """Least-squares fit of log(values) = log(prefactor) + exponent * log(m).

    `m: (k,)` widths with `values: (k, s)` (one column per seed; NaN = missing), or long form
    `m: (N,)`, `values: (N,)`. The CI resamples, with replacement, the values within each width
    (seeds), refits, and takes percentiles. With fewer than two finite values at some width the
    CI is undefined (NaN bounds, `ci_defined` False). Raises ValueError when fewer than two
    widths have a finite value.
    """
    groups = _groups(m, values)
    if len(groups) < 2:
        raise ValueError(
            f"fit_power_law: need finite values at two or more widths, got {len(groups)}"
        )
    x = np.concatenate([np.full(v.size, np.log(w)) for w, v in groups])
    y = np.concatenate([np.log(v) for _, v in groups])
    xc = x - x.mean()
    sxx = float(xc @ xc)
    exponent = float(xc @ (y - y.mean()) / sxx)
    log_prefactor = float(y.mean() - exponent * x.mean())
    min_seeds = min(v.size for _, v in groups)
    if min_seeds < MIN_SEEDS_FOR_CI:
        return PowerLawFit(exponent, float(np.exp(log_prefactor)), np.nan, np.nan, ci, min_seeds)

    rng = np.random.default_rng(seed)
    boot_y = np.concatenate(
        [np.log(v)[rng.integers(0, v.size, size=(n_boot, v.size))] for _, v in groups], axis=1
    )  # (n_boot, N)
    boot_exp = (boot_y - boot_y.mean(axis=1, keepdims=True)) @ xc / sxx
    boot_logc = boot_y.mean(axis=1) - boot_exp * x.mean()
    alpha = 100 * (1 - ci) / 2
    low, high = np.percentile(boot_exp, [alpha, 100 - alpha])
    return PowerLawFit(
        exponent,
        float(np.exp(log_prefactor)),
        float(low),
        float(high),
        ci,
        min_seeds,
        boot_exp,
        boot_logc,
    )
