"""How tight is the m^-1/4 rate, and does the step size change it (Satpathi & Srikant 2021).

Study 1, `rate_tightness`: the flow theorem bounds ||W(T) - W*|| by O(m^-1/4); is -1/4 the
exponent at large m, or does the local exponent keep steepening (towards -1/2)? Read from the
final converged ||W(T) - W*|| at the first lr and the smallest label noise:

- local slopes: between each pair of neighbouring widths m_j < m_{j+1},
  (mean_s log d_{j+1,s} - mean_s log d_{j,s}) / (log m_{j+1} - log m_j), i.e. the slope of the
  log of the *geometric* seed mean. This is exactly `fit_power_law` on the two widths (a
  least-squares line through two x values passes through the two group means of log d), and the
  same mean of logs as every other exponent of the project, so the figure's mean line (geometric
  seed mean) has these slopes segment by segment;
- the upper-half exponent: `fit_power_law` over the widths at or above the median of the widths
  (those with a finite value; for an odd count the middle width is included);
- the trend: least-squares slope of the local slopes against log2 of the pairs' geometric
  midpoints sqrt(m_j m_{j+1}), i.e. the change of the local exponent per doubling of m.

The CIs of the local slopes and of the trend come from one joint bootstrap (`N_BOOT` resamples,
with replacement, of the seeds within each width; every local slope and the trend of one
resample are computed from the same draw, so neighbouring slopes keep their correlation). The
upper-half exponent's CI is fit_power_law's own bootstrap.

Study 2, `gd_vs_flow`: the discrete-GD theorem leaves an O(m^-1/8) residual against O(m^-1/4)
for the flow; lr is swept at fixed lr * T. For each lr (first value of every other swept
setting, smallest label noise) `fit_power_law` of the final distance against m, and the level:
the geometric seed mean at each lr divided by that at the smallest lr, width by width.

Widths at which every run diverged or is missing are dropped before anything is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from minnorm.analysis.check_spec import NOT_ENOUGH_SEEDS, CheckSpec, Outcome
from minnorm.analysis.collect import converged, final_by_width, first_lr, first_values
from minnorm.analysis.powerlaw import CI_LEVEL, MIN_SEEDS_FOR_CI, N_BOOT, PowerLawFit, fit_power_law

QUANTITY = "dist_to_target"
# Reference exponents: the flow theorem's m^-1/4 and the m^-1/2 a Lee et al.-type linearization
# error would give; the upper-half CI is tested against each.
FLOW_EXPONENT = -1.0 / 4.0
LAZY_EXPONENT = -1.0 / 2.0
# A trend of the local slopes needs three local slopes at least (two give a difference, not a
# fit), i.e. four widths; fewer and the study-1 rows do not apply.
MIN_WIDTHS_TREND = 4
# A width exponent per lr needs three widths to be a fit rather than a line through two points.
MIN_WIDTHS_PER_LR = 3
# The trend verdict: steepening is resolved when the trend's CI lies wholly below this value.
TREND_MAX = 0.0
# Seed of the joint bootstrap (fixed so figure and check give the same numbers).
BOOT_SEED = 0


# ---- selection ----


def finite_by_width(sel: xr.Dataset, name: str = QUANTITY) -> tuple[np.ndarray, np.ndarray]:
    """Final converged `name` of a slice with dims (width, seed): widths (k,), values (k, seeds).

    Diverged runs are NaN; widths where no seed has a finite value are dropped.
    """
    widths, values = final_by_width(converged(sel[name], sel))
    keep = np.isfinite(values).any(axis=1)
    return widths[keep], values[keep]


def lr_slice(ds: xr.Dataset, index: int) -> xr.Dataset:
    """The `index`-th lr at the first value of every other swept setting, smallest label noise."""
    sel = first_values(ds, keep=("lr",))
    return sel.isel(lr=index) if "lr" in sel.dims else sel


def n_widths(ds: xr.Dataset) -> int:
    """Number of widths of the collected Dataset (1 when width is not a dim)."""
    return int(ds.sizes.get("width", 1))


def n_lrs(ds: xr.Dataset) -> int:
    """Number of learning rates of the collected Dataset."""
    return int(ds.sizes.get("lr", 1))


# ---- study 1: local slopes, upper-half exponent, trend ----


@dataclass(frozen=True)
class LocalSlopes:
    """Local exponents of values ~ m^p between neighbouring widths, and their trend in log2 m.

    widths: (k,) widths with a finite value; log_means: (k,) mean over seeds of log(value);
    slopes, midpoints, ci_low, ci_high: (k-1,), midpoints = sqrt(m_j m_{j+1}); trend: change of
    the local slope per doubling of m (NaN with fewer than 3 widths). CIs are NaN when some width
    has fewer than MIN_SEEDS_FOR_CI finite values (`ci_defined` False).
    """

    widths: np.ndarray
    log_means: np.ndarray
    slopes: np.ndarray
    midpoints: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    trend: float
    trend_ci_low: float
    trend_ci_high: float
    min_seeds: int
    ci: float = CI_LEVEL

    @property
    def ci_defined(self) -> bool:
        return self.min_seeds >= MIN_SEEDS_FOR_CI

    def trend_line(self, m: np.ndarray) -> np.ndarray:
        """The least-squares line of the local slopes at widths `m: (n,)`."""
        x = np.log2(self.midpoints)
        return self.slopes.mean() + self.trend * (np.log2(np.asarray(m, float)) - x.mean())


def _trend(slopes: np.ndarray, midpoints: np.ndarray) -> np.ndarray:
    """Least-squares slope of `slopes: (..., k-1)` against log2(midpoints): shape (...)."""
    x = np.log2(midpoints)
    xc = x - x.mean()
    return (slopes - slopes.mean(axis=-1, keepdims=True)) @ xc / float(xc @ xc)


def local_slopes(
    widths: np.ndarray,
    values: np.ndarray,
    *,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    ci: float = CI_LEVEL,
) -> LocalSlopes:
    """Local slopes of `values: (k, s)` (NaN = missing, rows all finite-somewhere) against
    `widths: (k,)` (increasing), their trend, and joint bootstrap CIs over seeds.

    Raises ValueError with fewer than two widths or a non-positive value.
    """
    widths = np.asarray(widths, dtype=np.float64)
    logs = []
    for w, row in zip(widths, np.asarray(values, dtype=np.float64), strict=True):
        row = row[np.isfinite(row)]
        if row.size == 0 or np.any(row <= 0):
            raise ValueError(f"local_slopes: width {w:g} has no finite value or a non-positive one")
        logs.append(np.log(row))
    if len(logs) < 2:
        raise ValueError(f"local_slopes: need two or more widths, got {len(logs)}")
    log_means = np.array([v.mean() for v in logs])
    dlogm = np.diff(np.log(widths))
    slopes = np.diff(log_means) / dlogm
    mids = np.sqrt(widths[:-1] * widths[1:])
    trend = float(_trend(slopes, mids)) if slopes.size >= 2 else np.nan
    min_seeds = min(v.size for v in logs)
    nan = np.full(slopes.shape, np.nan)
    if min_seeds < MIN_SEEDS_FOR_CI:
        return LocalSlopes(
            widths, log_means, slopes, mids, nan, nan.copy(), trend, np.nan, np.nan, min_seeds, ci
        )
    rng = np.random.default_rng(seed)
    boot = np.stack(
        [v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1) for v in logs], axis=1
    )  # (n_boot, k)
    boot_slopes = np.diff(boot, axis=1) / dlogm  # (n_boot, k-1)
    alpha = 100 * (1 - ci) / 2
    low, high = np.percentile(boot_slopes, [alpha, 100 - alpha], axis=0)
    t_low = t_high = np.nan
    if slopes.size >= 2:
        t_low, t_high = (
            float(t) for t in np.percentile(_trend(boot_slopes, mids), [alpha, 100 - alpha])
        )
    return LocalSlopes(
        widths, log_means, slopes, mids, low, high, trend, t_low, t_high, min_seeds, ci
    )


def upper_half(widths: np.ndarray) -> np.ndarray:
    """Boolean mask (k,) of the widths at or above their median (the middle one included)."""
    widths = np.asarray(widths, dtype=np.float64)
    return widths >= np.median(widths)


@dataclass(frozen=True)
class RateTightness:
    """Study 1 on one experiment: the data, local slopes and the upper-half fit."""

    widths: np.ndarray  # (k,)
    values: np.ndarray  # (k, seeds), NaN = missing or diverged
    local: LocalSlopes
    upper_widths: np.ndarray  # (u,)
    upper: PowerLawFit
    lr: float


def rate_tightness(ds: xr.Dataset) -> RateTightness:
    """Study 1 from a collected Dataset (first lr, first settings, smallest label noise).

    Raises ValueError (naming the count) with fewer than three widths with a finite value, since
    the upper half must hold two widths, and KeyError when `dist_to_target` is missing.
    """
    sel = first_values(ds)
    widths, values = finite_by_width(sel)
    if widths.size < 3:
        raise ValueError(f"needs finite values at three or more widths, dataset has {widths.size}")
    upper = upper_half(widths)
    return RateTightness(
        widths,
        values,
        local_slopes(widths, values),
        widths[upper],
        fit_power_law(widths[upper], values[upper]),
        float(sel["lr"].item()),
    )


def _ci(low: float, high: float) -> str:
    return "CI undefined" if not np.isfinite(low) else f"[{low:.3f}, {high:.3f}]"


def rate_lines(r: RateTightness) -> list[str]:
    """Plain-text lines of the study-1 numbers (figure summary and check details)."""
    pct = f"{r.local.ci:.0%} CI"
    lines = [
        f"local slope m = {int(a)}-{int(b)}: {s:.3f} {_ci(lo, hi)}"
        for a, b, s, lo, hi in zip(
            r.widths[:-1],
            r.widths[1:],
            r.local.slopes,
            r.local.ci_low,
            r.local.ci_high,
            strict=True,
        )
    ]
    lines.append(
        f"upper-half exponent (widths {', '.join(str(int(w)) for w in r.upper_widths)}): "
        f"{r.upper.exponent:.3f} {_ci(r.upper.ci_low, r.upper.ci_high)}"
    )
    lines.append(
        f"trend of the local slope per doubling of m: {r.local.trend:.4f} "
        f"{_ci(r.local.trend_ci_low, r.local.trend_ci_high)}"
    )
    seeds = (
        f"{pct}s from {N_BOOT} bootstrap resamples of seeds within each width"
        if r.local.ci_defined
        else f"CIs undefined: fewer than {MIN_SEEDS_FOR_CI} seeds at some width"
    )
    lines.append(
        f"lr {r.lr:g}, {r.values.shape[1]} seeds (at least {r.local.min_seeds} per width); {seeds}"
    )
    return lines


_Rule = Callable[[RateTightness], str]
_Number = Callable[[RateTightness], float]


def _study1(
    verdict_of: _Rule, measured_of: _Number, ci_defined: Callable[[RateTightness], bool]
) -> Callable[[xr.Dataset], Outcome]:
    """A study-1 check: n/a when it cannot be computed, NOT_ENOUGH_SEEDS when the CI it rests on
    is undefined (fewer than MIN_SEEDS_FOR_CI seeds at a width it uses), else `verdict_of`."""

    def evaluate(ds: xr.Dataset) -> Outcome:
        try:
            r = rate_tightness(ds)
        except (KeyError, ValueError) as exc:
            return Outcome(np.nan, "n/a", f"cannot compute: {exc}")
        verdict = verdict_of(r) if ci_defined(r) else NOT_ENOUGH_SEEDS
        return Outcome(measured_of(r), verdict, "; ".join(rate_lines(r)))

    return evaluate


def _trend_rule(r: RateTightness) -> str:
    return "pass" if r.local.trend_ci_high < TREND_MAX else "fail"


def _inside(value: float) -> _Rule:
    return lambda r: "pass" if r.upper.ci_low <= value <= r.upper.ci_high else "fail"


def _upper_check(value: float) -> Callable[[xr.Dataset], Outcome]:
    return _study1(_inside(value), lambda r: r.upper.exponent, lambda r: r.upper.ci_defined)


def enough_widths_for_trend(ds: xr.Dataset) -> bool:
    """At least MIN_WIDTHS_TREND widths (at the first lr)."""
    return n_widths(first_lr(ds)) >= MIN_WIDTHS_TREND


# ---- study 2: width exponent and level per learning rate ----


@dataclass(frozen=True)
class LrScaling:
    """Study 2: per-lr fits and level ratios.

    lrs: (L,); fits: one PowerLawFit per lr, None where fewer than two widths have a value;
    widths: (k,) all widths; log_means: (L, k) mean over seeds of log final distance (NaN where
    no value); ratios: (L, k) geometric seed mean / that at the smallest lr.
    """

    lrs: np.ndarray
    fits: tuple[PowerLawFit | None, ...]
    widths: np.ndarray
    values: tuple[np.ndarray, ...]  # per lr, (k, seeds) over all widths
    log_means: np.ndarray
    ratios: np.ndarray

    def level_width(self) -> int | None:
        """Index of the largest width at which every lr has a level ratio, or None."""
        ok = np.flatnonzero(np.isfinite(self.ratios).all(axis=0))
        return int(ok[-1]) if ok.size else None


def lr_scaling(ds: xr.Dataset) -> LrScaling:
    """Study 2 from a collected Dataset; KeyError when `dist_to_target` is missing."""
    lrs = ds["lr"].values if "lr" in ds.dims else np.atleast_1d(ds["lr"].values)
    widths = ds["width"].values
    fits, values, log_means = [], [], []
    for i in range(lrs.size):
        sel = lr_slice(ds, i)
        _, v = final_by_width(converged(sel[QUANTITY], sel))
        v = np.where(v > 0, v, np.nan)
        values.append(v)
        with np.errstate(all="ignore"):
            count = np.isfinite(v).sum(axis=1)
            log_means.append(
                np.where(count > 0, np.nansum(np.log(v), axis=1) / np.maximum(count, 1), np.nan)
            )
        fits.append(fit_power_law(widths, v) if (count > 0).sum() >= 2 else None)
    log_means = np.array(log_means)
    return LrScaling(
        np.asarray(lrs, dtype=np.float64),
        tuple(fits),
        widths,
        tuple(values),
        log_means,
        np.exp(log_means - log_means[0]),
    )


def _fit_text(fit: PowerLawFit | None) -> str:
    if fit is None:
        return "no fit (fewer than two widths)"
    return f"exponent {fit.exponent:.3f} {_ci(fit.ci_low, fit.ci_high)}"


def lr_lines(s: LrScaling) -> list[str]:
    """Plain-text lines of the study-2 numbers (figure summary and check detail)."""
    lines = [f"lr {lr:g}: {_fit_text(fit)}" for lr, fit in zip(s.lrs, s.fits, strict=True)]
    j = s.level_width()
    if j is None:
        lines.append("level ratio: no width with a value at every lr")
    else:
        ratios = ", ".join(
            f"lr {lr:g} {r:.3f}" for lr, r in zip(s.lrs, s.ratios[:, j], strict=True)
        )
        lines.append(
            f"level at m = {int(s.widths[j])} (geometric seed mean / that at lr "
            f"{s.lrs[0]:g}): {ratios}"
        )
    return lines


def cis_overlap(fits: list[PowerLawFit]) -> bool:
    """Whether every pair of CIs overlaps; for intervals that is max(low) <= min(high)."""
    return max(f.ci_low for f in fits) <= min(f.ci_high for f in fits)


def _lr_exponents_agree(ds: xr.Dataset) -> Outcome:
    try:
        s = lr_scaling(ds)
    except (KeyError, ValueError) as exc:
        return Outcome(np.nan, "n/a", f"cannot compute: {exc}")
    fits = [f for f in s.fits if f is not None]
    detail = "; ".join(lr_lines(s))
    if len(fits) < 2:
        return Outcome(np.nan, "n/a", f"fewer than two lrs with a fit; {detail}")
    spread = max(f.exponent for f in fits) - min(f.exponent for f in fits)
    if not all(f.ci_defined for f in fits):
        return Outcome(spread, NOT_ENOUGH_SEEDS, detail)
    return Outcome(spread, "pass" if cis_overlap(fits) else "fail", detail)


def lr_sweep_with_widths(ds: xr.Dataset) -> bool:
    """lr has two or more values and width MIN_WIDTHS_PER_LR or more."""
    return n_lrs(ds) >= 2 and n_widths(ds) >= MIN_WIDTHS_PER_LR


_STUDY1 = (
    f"experiments with {MIN_WIDTHS_TREND} or more widths (first lr, first value of each "
    "swept setting, smallest label noise, final step, diverged runs excluded)"
)

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "local_slope_trend",
        "the local exponent of ||W(T)-W*|| steepens with m (change per doubling)",
        "least-squares slope of the local exponents (neighbouring widths) against log2 m",
        f"95% CI high < {TREND_MAX:g}",
        _STUDY1,
        enough_widths_for_trend,
        _study1(_trend_rule, lambda r: r.local.trend, lambda r: r.local.ci_defined),
        uses_ci=True,
    ),
    CheckSpec(
        "upper_exponent_quarter",
        "-1/4 is the large-m exponent of ||W(T)-W*|| (upper-half exponent)",
        "fitted exponent of the final ||W(T) - W*|| over the widths >= their median",
        "-0.25 inside the 95% CI",
        _STUDY1,
        enough_widths_for_trend,
        _upper_check(FLOW_EXPONENT),
        uses_ci=True,
    ),
    CheckSpec(
        "upper_exponent_half",
        "-1/2 is the large-m exponent of ||W(T)-W*|| (upper-half exponent)",
        "fitted exponent of the final ||W(T) - W*|| over the widths >= their median",
        "-0.5 inside the 95% CI",
        _STUDY1,
        enough_widths_for_trend,
        _upper_check(LAZY_EXPONENT),
        uses_ci=True,
    ),
    CheckSpec(
        "lr_exponents_agree",
        "the width exponent of ||W(T)-W*|| does not depend on the step size "
        "(largest - smallest exponent over lrs)",
        "largest minus smallest fitted exponent of the final ||W(T) - W*|| across lrs",
        "every pair of 95% CIs overlaps",
        f"experiments sweeping lr (2 or more values) with {MIN_WIDTHS_PER_LR} or more widths "
        "(first value of each other swept setting, smallest label noise, final step)",
        lr_sweep_with_widths,
        _lr_exponents_agree,
        uses_ci=True,
    ),
)
