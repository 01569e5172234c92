"""How tight is the m^-1/4 rate, and does the step size change it (Satpathi & Srikant 2021).

Study 1, `rate_tightness`: the flow theorem bounds ||W(T) - W*|| by O(m^-1/4); is -1/4 the
exponent at large m, or does the local exponent keep steepening (towards -1/2)? Read from the
final converged ||W(T) - W*||, once per combination of the other swept values:

- local slopes: `fit_power_law` on each pair of neighbouring widths (the slope of the mean of
  log d between them), with its interval;
- the upper-half exponent: `fit_power_law` over the widths at or above their median, tested as
  two point hypotheses, -1/4 and -1/2, each with the margin EXPONENT_MARGIN;
- the curvature: `fit_curvature`, the change of the local exponent per doubling of m, reported
  as a finding (positive: the decay flattens; negative: it steepens).

Study 2, `gd_vs_flow`: the discrete-GD theorem leaves an O(m^-1/8) residual against O(m^-1/4)
for the flow; lr is swept at fixed lr * T. The runs at different lr share their data draw and
W0, so each lr is compared with the smallest by the per-run ratio d(lr) / d(smallest lr) on the
same (draw, seed, width): the ratio's exponent in m is the difference of the two exponents
(a "no effect" claim with the margin EQUIVALENCE_MARGIN), and its geometric mean at the largest
width is the level difference (a finding).

Every interval goes through minnorm.analysis.powerlaw: over data draws when there are several,
conditional on the one draw otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from minnorm.analysis.check_spec import CLAIM, FINDING, CheckSpec, Outcome
from minnorm.analysis.collect import WidthData, width_data
from minnorm.analysis.intervals import mean_interval
from minnorm.analysis.powerlaw import Estimate, PowerLawFit, fit_curvature, fit_power_law
from minnorm.analysis.verdicts import (
    EQUIVALENCE_MARGIN,
    EXPONENT_MARGIN,
    around,
    criterion_text,
)
from minnorm.analysis.width_claims import (
    basis_text,
    draw_estimates,
    estimate_outcome,
    interval_text,
    not_applicable,
    run_length,
    slices,
)

QUANTITY = "dist_to_target"
# Reference exponents: the flow theorem's m^-1/4 and the m^-1/2 a Lee et al.-type linearization
# error would give; the upper-half exponent is tested against each.
FLOW_EXPONENT = -1.0 / 4.0
LAZY_EXPONENT = -1.0 / 2.0
# The upper half of the widths must hold three widths to be a fit rather than a line through two
# points, so study 1 needs six widths (and the curvature three).
MIN_WIDTHS_STUDY1 = 6
# The figure draws local slopes and the curvature (a quadratic: three widths) from fewer widths.
MIN_WIDTHS_FIGURE = 3
# A width exponent per lr needs three widths to be a fit rather than a line through two points.
MIN_WIDTHS_PER_LR = 3


def n_widths(ds: xr.Dataset) -> int:
    """Number of widths of the collected Dataset (1 when width is not a dim)."""
    return int(ds.sizes.get("width", 1))


def n_lrs(ds: xr.Dataset) -> int:
    """Number of learning rates of the collected Dataset."""
    return int(ds.sizes.get("lr", 1))


# ---- study 1: local slopes, upper-half exponent, curvature ----


def upper_half(widths: np.ndarray) -> np.ndarray:
    """Boolean mask of the widths at or above the median of the distinct widths."""
    widths = np.asarray(widths, dtype=np.float64)
    return widths >= np.median(np.unique(widths))


@dataclass(frozen=True)
class RateTightness:
    """Study 1 on one slice: the data, local slopes, the upper-half fit and the curvature.

    widths: (k,) distinct widths with a finite value; log_means: (k,) mean of log d over every
    run at that width; local: (k-1,) one Estimate per neighbouring pair; midpoints: (k-1,)
    sqrt(m_j m_j+1).
    """

    data: WidthData
    widths: np.ndarray
    log_means: np.ndarray
    local: tuple[PowerLawFit, ...]
    midpoints: np.ndarray
    upper: PowerLawFit
    curvature: Estimate
    basis: str
    upper_basis: str


def rate_tightness(sel: xr.Dataset, min_widths: int = MIN_WIDTHS_STUDY1) -> RateTightness:
    """Study 1 on a slice with dims (width, seed [, data_seed]). Raises ValueError (naming the
    count) with fewer than `min_widths` widths with a finite value (the checks need
    MIN_WIDTHS_STUDY1; the figure draws from MIN_WIDTHS_FIGURE), KeyError when
    `dist_to_target` is missing."""
    data = width_data(sel, sel[QUANTITY])
    finite = np.isfinite(data.values)
    widths = np.unique(data.m[finite])
    if widths.size < min_widths:
        raise ValueError(f"needs finite values at {min_widths} or more widths, has {widths.size}")
    data = data.subset(np.isin(data.m, widths))
    log_means = np.array([np.nanmean(np.log(data.values[data.m == w])) for w in widths])
    local = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        pair = data.subset((data.m == a) | (data.m == b))
        local.append(fit_power_law(pair.m, pair.values, draw=pair.draw))
    keep = upper_half(data.m)
    upper_data = data.subset(keep)
    upper = fit_power_law(upper_data.m, upper_data.values, draw=upper_data.draw)
    curvature = fit_curvature(data.m, data.values, draw=data.draw)
    return RateTightness(
        data,
        widths,
        log_means,
        tuple(local),
        np.sqrt(widths[:-1] * widths[1:]),
        upper,
        curvature,
        basis_text(data, sel, widths),
        basis_text(upper_data, sel, upper.widths),
    )


def rate_lines(r: RateTightness) -> list[str]:
    """Plain-text lines of the study-1 numbers (figure summary and check details)."""
    lines = [
        f"local slope m = {int(a)}-{int(b)}: {interval_text(fit)}"
        for a, b, fit in zip(r.widths[:-1], r.widths[1:], r.local, strict=True)
    ]
    widths = ", ".join(str(int(w)) for w in r.upper.widths)
    lines.append(f"upper-half exponent (widths {widths}): {interval_text(r.upper)}")
    lines.append(f"change of the local exponent per doubling of m: {interval_text(r.curvature)}")
    lines.append(r.basis)
    return lines


def _study1(which: str) -> Callable[[xr.Dataset], list[Outcome]]:
    """evaluate(ds) of a study-1 row, per combination of the other swept values."""
    region = {
        "quarter": around(FLOW_EXPONENT, EXPONENT_MARGIN),
        "half": around(LAZY_EXPONENT, EXPONENT_MARGIN),
    }.get(which)

    def evaluate(ds: xr.Dataset) -> list[Outcome]:
        outs = []
        for label, sel in slices(ds):
            try:
                r = rate_tightness(sel)
            except (KeyError, ValueError) as exc:
                outs.append(not_applicable(f"cannot compute: {exc}", label))
                continue
            slopes = "; ".join(rate_lines(r)[:-1])
            if which == "curvature":
                outs.append(
                    estimate_outcome(r.curvature, None, setting=label, basis=r.basis, detail=slopes)
                )
            else:
                outs.append(
                    estimate_outcome(
                        r.upper,
                        region,
                        setting=label,
                        basis=r.upper_basis,
                        detail=slopes,
                        draws=draw_estimates(r.upper),
                    )
                )
        return outs

    return evaluate


def enough_widths_for_study1(ds: xr.Dataset) -> bool:
    """At least MIN_WIDTHS_STUDY1 widths."""
    return n_widths(ds) >= MIN_WIDTHS_STUDY1


# ---- study 2: width exponent and level per learning rate, paired against the smallest lr ----


@dataclass(frozen=True)
class LrComparison:
    """One lr against the reference (smallest) lr on the same runs.

    difference: exponent of d(lr) / d(ref) in m (= exponent at lr minus at ref); level:
    mean log ratio at the largest width with a value at both; ratio_width: that width.
    """

    lr: float
    difference: PowerLawFit
    level: Estimate | None
    ratio_width: float


@dataclass(frozen=True)
class LrScaling:
    """Study 2 on one slice (all lrs): per-lr fits and the paired comparisons.

    lrs: (L,); fits: one PowerLawFit per lr (None where it cannot be fitted); widths: (k,);
    log_means: (L, k) mean of log d per width; comparisons: one per lr but the smallest.
    """

    lrs: np.ndarray
    fits: tuple[PowerLawFit | None, ...]
    widths: np.ndarray
    data: tuple[WidthData, ...]
    log_means: np.ndarray
    comparisons: tuple[LrComparison, ...]
    lengths: tuple[str, ...]


def _level(ratio: WidthData) -> tuple[Estimate | None, float]:
    """Mean log ratio at the largest width where it is finite, with its interval over draws (or
    seeds with one draw)."""
    finite = np.isfinite(ratio.values)
    if not finite.any():
        return None, np.nan
    top = float(ratio.m[finite].max())
    at = ratio.subset((ratio.m == top) & finite)
    units = at.draw if at.n_draws > 1 else None
    interval = mean_interval(np.log(at.values), units)
    est = Estimate(interval, 0.95, at.n_draws, at.m.size, 0, np.log(at.values))
    return est, top


def _log_mean(values: np.ndarray) -> float:
    """Mean of the log of the finite values; NaN when there is none."""
    finite = values[np.isfinite(values)]
    return float(np.log(finite).mean()) if finite.size else np.nan


def lr_scaling(sel: xr.Dataset) -> LrScaling:
    """Study 2 on a slice with dims (lr, width, seed [, data_seed]); KeyError when
    `dist_to_target` is missing."""
    lrs = np.atleast_1d(sel["lr"].values).astype(np.float64)
    per_lr = [sel.isel(lr=i) if "lr" in sel.dims else sel for i in range(lrs.size)]
    data = [width_data(one, one[QUANTITY]) for one in per_lr]
    widths = np.unique(data[0].m)
    fits: list[PowerLawFit | None] = []
    log_means = []
    for d in data:
        with np.errstate(all="ignore"):
            log_means.append([_log_mean(d.values[d.m == w]) for w in widths])
        try:
            fits.append(fit_power_law(d.m, d.values, draw=d.draw))
        except ValueError:
            fits.append(None)
    comparisons = []
    ref = data[0]
    for lr, d in zip(lrs[1:], data[1:], strict=True):
        ratio = WidthData(ref.m, d.values / ref.values, ref.draw, ref.seed)
        try:
            diff = fit_power_law(ratio.m, ratio.values, draw=ratio.draw)
        except ValueError:
            continue
        level, top = _level(ratio)
        comparisons.append(LrComparison(float(lr), diff, level, top))
    return LrScaling(
        lrs,
        tuple(fits),
        widths,
        tuple(data),
        np.array(log_means, dtype=np.float64),
        tuple(comparisons),
        tuple(run_length(one) for one in per_lr),
    )


def lr_lines(s: LrScaling) -> list[str]:
    """Plain-text lines of the study-2 numbers (figure summary and check details)."""
    lines = [
        f"lr {lr:g}: exponent {interval_text(fit) if fit is not None else 'no fit'}"
        for lr, fit in zip(s.lrs, s.fits, strict=True)
    ]
    for c in s.comparisons:
        lines.append(
            f"lr {c.lr:g} minus lr {s.lrs[0]:g} (paired per run): exponent difference "
            f"{interval_text(c.difference, 4)}"
        )
        if c.level is not None:
            lo, hi = c.level.bounds(0.95)
            lines.append(
                f"lr {c.lr:g} / lr {s.lrs[0]:g} at m = {int(c.ratio_width)}: final distance "
                f"ratio {np.exp(c.level.estimate):.4f} [{np.exp(lo):.4f}, {np.exp(hi):.4f}]"
            )
    return lines


def _lr_rows(which: str) -> Callable[[xr.Dataset], list[Outcome]]:
    region = around(0.0, EQUIVALENCE_MARGIN)

    def evaluate(ds: xr.Dataset) -> list[Outcome]:
        outs = []
        for label, sel in slices(ds, exclude=("lr",)):
            try:
                s = lr_scaling(sel)
            except (KeyError, ValueError) as exc:
                outs.append(not_applicable(f"cannot compute: {exc}", label))
                continue
            for c in s.comparisons:
                where = f"lr={c.lr:g} vs lr={s.lrs[0]:g}"
                setting = f"{label}, {where}" if label else where
                at = int(np.flatnonzero(s.lrs == c.lr)[0])
                basis = f"{basis_text(s.data[0], sel.isel(lr=0))}; paired with {s.lengths[at]}"
                if which == "exponent":
                    outs.append(
                        estimate_outcome(
                            c.difference,
                            region,
                            setting=setting,
                            basis=basis,
                            draws=draw_estimates(c.difference),
                        )
                    )
                elif c.level is not None:
                    lo, hi = c.level.bounds(0.95)
                    ratio = (
                        f"ratio {np.exp(c.level.estimate):.4f} [{np.exp(lo):.4f}, "
                        f"{np.exp(hi):.4f}] at m = {int(c.ratio_width)}"
                    )
                    outs.append(
                        estimate_outcome(c.level, None, setting=setting, basis=basis, detail=ratio)
                    )
        return outs

    return evaluate


def lr_sweep_with_widths(ds: xr.Dataset) -> bool:
    """lr has two or more values and width MIN_WIDTHS_PER_LR or more."""
    return n_lrs(ds) >= 2 and n_widths(ds) >= MIN_WIDTHS_PER_LR


_STUDY1 = (
    f"experiments with {MIN_WIDTHS_STUDY1} or more widths: one row per combination of the other "
    "swept values; data draws as the interval's units; final step, diverged runs excluded"
)
_STUDY2 = (
    f"experiments sweeping lr (2 or more values) with {MIN_WIDTHS_PER_LR} or more widths: one "
    "row per lr against the smallest, per combination of the other swept values; runs paired "
    "on (data draw, seed, width)"
)
_QUARTER = around(FLOW_EXPONENT, EXPONENT_MARGIN)
_HALF = around(LAZY_EXPONENT, EXPONENT_MARGIN)
_NO_LR_EFFECT = around(0.0, EQUIVALENCE_MARGIN)

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "upper_exponent_quarter",
        CLAIM,
        "-1/4 is the large-m exponent of ||W(T)-W*|| (upper-half exponent)",
        "OLS exponent of the final ||W(T) - W*|| over the widths >= their median",
        criterion_text(_QUARTER, "exponent"),
        _STUDY1,
        enough_widths_for_study1,
        _study1("quarter"),
        quantity="exponent of ||W(T)-W*|| in m, upper half of the widths",
    ),
    CheckSpec(
        "upper_exponent_half",
        CLAIM,
        "-1/2 is the large-m exponent of ||W(T)-W*|| (upper-half exponent)",
        "OLS exponent of the final ||W(T) - W*|| over the widths >= their median",
        criterion_text(_HALF, "exponent"),
        _STUDY1,
        enough_widths_for_study1,
        _study1("half"),
    ),
    CheckSpec(
        "local_slope_curvature",
        FINDING,
        "change of the local exponent of ||W(T)-W*|| per doubling of m (curvature)",
        "2 ln 2 x the quadratic coefficient of log ||W(T)-W*|| in log m (positive: flattens)",
        "finding: estimate and 95% CI",
        _STUDY1,
        enough_widths_for_study1,
        _study1("curvature"),
    ),
    CheckSpec(
        "lr_exponent_difference",
        CLAIM,
        "the step size does not change the width exponent of ||W(T)-W*|| (exponent difference)",
        "exponent in m of the paired ratio d(lr) / d(smallest lr) = difference of exponents",
        criterion_text(_NO_LR_EFFECT, "difference"),
        _STUDY2,
        lr_sweep_with_widths,
        _lr_rows("exponent"),
    ),
    CheckSpec(
        "lr_level_difference",
        FINDING,
        "log ratio of ||W(T)-W*|| at lr and at the smallest lr, largest width",
        "mean over runs of log d(lr) - log d(smallest lr) on the same (draw, seed), largest width",
        "finding: estimate and 95% CI",
        _STUDY2,
        lr_sweep_with_widths,
        _lr_rows("level"),
    ),
)
