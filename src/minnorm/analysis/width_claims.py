"""Claims and findings about how a final quantity scales with the width m, evaluated once per
combination of the other swept values (minnorm.analysis.collect.combinations), with data draws
as the unit of the interval.

Shared by the papers' checks (minnorm.analysis.checks) and the rate studies
(minnorm.analysis.beyond.rates), so every exponent in the tables is computed one way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from minnorm.analysis.check_spec import DrawEstimate, Outcome
from minnorm.analysis.collect import WidthData, combinations, width_data
from minnorm.analysis.powerlaw import Estimate, PowerLawFit, fit_curvature, fit_power_law
from minnorm.analysis.verdicts import (
    CONTRADICT_LEVEL,
    NO_VERDICT,
    NOT_APPLICABLE,
    SUPPORT_LEVEL,
    Region,
    claim_verdict,
)


def slices(ds: xr.Dataset, exclude: tuple[str, ...] = ()) -> list[tuple[str, xr.Dataset]]:
    """(label, slice) for each combination of the swept values other than width, seed, the data
    draws and `exclude`."""
    return [(label, ds.isel(idx)) for label, idx in combinations(ds, exclude)]


def run_length(sel: xr.Dataset) -> str:
    """ "lr 0.02, 5000 steps (lr x T = 100)" for a slice at one lr (steps: the largest final step
    of its runs)."""
    lr = float(np.asarray(sel["lr"].values).ravel()[0])
    if "final_step" in sel:
        steps = np.asarray(sel["final_step"].values, dtype=np.float64)
        steps = steps[np.isfinite(steps)]
        if steps.size:
            t = int(steps.max())
            return f"lr {lr:g}, {t} steps (lr x T = {lr * t:g})"
    return f"lr {lr:g}"


def basis_text(data: WidthData, sel: xr.Dataset, widths: np.ndarray | None = None) -> str:
    """What an estimate rests on: widths, draws x seeds, lr and steps."""
    used = np.unique(data.m[np.isfinite(data.values)]) if widths is None else widths
    span = f"widths {used.min():.0f}-{used.max():.0f} ({used.size})" if used.size else "no width"
    draws = "1 data draw" if data.n_draws == 1 else f"{data.n_draws} data draws"
    return f"{span}, {draws} x {data.n_seeds} seeds, {run_length(sel)}"


def interval_text(est: Estimate, digits: int = 3) -> str:
    """ "-0.319, 90% CI [a, b], 95% CI [c, d]" (or why there is no interval)."""
    if not est.ci_defined:
        return f"{est.estimate:.{digits}f}, no interval (too few observations)"
    parts = [f"{est.estimate:.{digits}f}"]
    for level in (SUPPORT_LEVEL, CONTRADICT_LEVEL):
        lo, hi = est.bounds(level)
        parts.append(f"{level:.0%} CI [{lo:.{digits}f}, {hi:.{digits}f}]")
    return ", ".join(parts)


def draw_estimates(fit: PowerLawFit) -> tuple[DrawEstimate, ...]:
    """Each draw's own exponent and 95% interval, when the fit has several draws."""
    if fit.n_draws < 2:
        return ()
    return tuple(
        DrawEstimate(str(label), one.exponent, one.ci_low, one.ci_high)
        for label, one in zip(fit.draw_labels, fit.per_draw(), strict=True)
    )


def estimate_outcome(
    est: Estimate,
    region: Region | None,
    *,
    setting: str,
    basis: str,
    detail: str = "",
    draws: tuple[DrawEstimate, ...] = (),
) -> Outcome:
    """An Outcome of a claim (region given: three-valued verdict) or of a finding (no region)."""
    verdict = claim_verdict(est.bounds, region) if region is not None else NO_VERDICT
    scope = "conditional on the one data draw" if est.conditional else f"over {est.n_draws} draws"
    dropped = f"; {est.n_dropped} diverged or missing runs left out" if est.n_dropped else ""
    text = f"{interval_text(est)} ({est.method}; {scope}){dropped}; {basis}"
    return Outcome(
        est.estimate,
        verdict,
        f"{text}; {detail}" if detail else text,
        est.ci_low,
        est.ci_high,
        setting,
        basis,
        draws,
    )


def not_applicable(reason: str, setting: str = "") -> Outcome:
    return Outcome(np.nan, NOT_APPLICABLE, reason, setting=setting)


def fit_quantity(
    sel: xr.Dataset, name: str, keep: Callable[[np.ndarray], np.ndarray] | None = None
) -> tuple[PowerLawFit, WidthData]:
    """fit_power_law of the final `name` over the widths of a slice (with its data draws);
    `keep(widths) -> mask` restricts the widths. Raises ValueError / KeyError when it cannot."""
    data = width_data(sel, sel[name])
    if keep is not None:
        data = data.subset(keep(data.m))
    fit = fit_power_law(data.m, data.values, draw=data.draw)
    return fit, data


def curvature_text(data: WidthData) -> str:
    """The curvature behind a claim about large m: the change of the local exponent per
    doubling of m with its interval, or why there is none."""
    try:
        est = fit_curvature(data.m, data.values, draw=data.draw)
    except ValueError as exc:
        return f"curvature not estimated ({exc})"
    return f"change of the local exponent per doubling of m {interval_text(est)}"


def exponent_check(
    name: str,
    region: Region | None,
    keep: Callable[[np.ndarray], np.ndarray] | None = None,
    curvature: bool = False,
) -> Callable[[xr.Dataset], list[Outcome]]:
    """evaluate(ds): the exponent of the final `name` in m for each combination of the other
    swept values, as a claim on `region` (None: a finding); with `curvature` the detail also
    gives the curvature (claims about large m)."""

    def evaluate(ds: xr.Dataset) -> list[Outcome]:
        outs = []
        for label, sel in slices(ds):
            try:
                fit, data = fit_quantity(sel, name, keep)
            except (KeyError, ValueError) as exc:
                outs.append(not_applicable(f"cannot fit: {exc}", label))
                continue
            basis = basis_text(data, sel, fit.widths)
            detail = curvature_text(data) if curvature else ""
            outs.append(
                estimate_outcome(
                    fit,
                    region,
                    setting=label,
                    basis=basis,
                    detail=detail,
                    draws=draw_estimates(fit),
                )
            )
        return outs

    return evaluate
