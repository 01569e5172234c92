"""Where the lazy regime ends: the init scale kappa against the width m (study `lazy_phase`).

With ReLU the Jacobian, and so G and the min-norm target's direction, does not depend on the
scale of W0: scaling the init by kappa moves every activation boundary by ~kappa, while the
weights move by ~m^-1/2 per neuron. Linearization should therefore hold when kappa * sqrt(m) is
large, i.e. the relative distance to the target ||W(T) - W*|| / ||W* - W0|| should be one
smooth function of log(kappa m^beta) with beta = 1/2.

The exponent beta is estimated, not assumed: for each unit (a data draw; the seeds when there is
one draw) beta_hat minimises the residual SD of a degree-2 polynomial of the mean log relative
distance of the (kappa, m) cells in log(kappa m^beta). The W0 of different kappas is the same
draw rescaled, so a unit keeps all its kappas together. The interval is the t interval over the
units' beta_hat; the claim beta = 1/2 has the margin BETA_MARGIN.

Selection: one slice per combination of the swept values other than kappa, width, seed and the
data draws; diverged runs excluded. Without a `model_kappa` dim the single kappa is read from
the experiment's config (attrs["config"]).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.optimize import minimize_scalar

from minnorm.analysis.check_spec import CLAIM, CheckSpec, Outcome
from minnorm.analysis.collect import DRAW_DIM, converged, final_values
from minnorm.analysis.intervals import TInterval, unit_means
from minnorm.analysis.powerlaw import Estimate
from minnorm.analysis.verdicts import around, criterion_text
from minnorm.analysis.width_claims import (
    estimate_outcome,
    interval_text,
    not_applicable,
    run_length,
    slices,
)
from minnorm.config.sweep import setting_value

KAPPA_DIM = "model_kappa"
# Degree of the polynomial in one log variable fitted to log(relative distance). Two allows the
# bend between the lazy (decaying) and feature-learning (flat) ends of the range without letting
# a single variable with 5-7 distinct values fit its group means exactly.
COLLAPSE_DEGREE = 2
# The claim: the collapse variable is kappa m^beta with beta = 1/2, within 0.1 (kappa m^0.4 and
# kappa m^0.6 differ by a factor 10^0.2 = 1.6 per decade of m, about the spread of the cells
# around the collapse curve over the swept range).
BETA_CLAIM = 0.5
BETA_MARGIN = 0.1
# beta is searched in this range (beta = 0: kappa alone; beyond 1 the width dominates), first on
# a grid of BETA_GRID_STEP, then refined between the grid's neighbours.
BETA_RANGE = (-0.5, 2.0)
BETA_GRID_STEP = 0.01
# Relative distance below which a cell counts as lazy (the network ends within 10% of the
# distance it had to travel from W0 to the linearized target); the summary quotes where the
# fitted collapse crosses it.
LAZY_REL_DIST = 0.1


@dataclass(frozen=True)
class LazyGrid:
    """Seed-mean final values on the (kappa, width) grid.

    kappa: (k,), width: (w,); rel_dist, flips: (k, w) seed means of the final converged
    ||W(T) - W*|| / ||W* - W0|| and activation_flip_fraction (NaN where no seed is finite);
    n_seeds: (k, w) finite seeds per cell.
    """

    kappa: np.ndarray
    width: np.ndarray
    rel_dist: np.ndarray
    flips: np.ndarray
    n_seeds: np.ndarray

    @property
    def kappa_sqrt_m(self) -> np.ndarray:
        """(k, w): kappa * sqrt(m) of every cell."""
        return self.kappa[:, None] * np.sqrt(self.width[None, :].astype(np.float64))


@dataclass(frozen=True)
class PolyFit:
    """Least-squares polynomial of log(rel dist) on one variable over the usable cells.

    r2: coefficient of determination (NaN when the values are constant); rms: root mean square
    residual in log units (exp(rms) is a typical factor); coef: np.polyfit coefficients in the
    variable as given; n: number of cells fitted.
    """

    r2: float
    rms: float
    coef: np.ndarray
    n: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Fitted log(rel dist) at `x: (j,)`."""
        return np.polyval(self.coef, x)


@dataclass(frozen=True)
class Collapse:
    """Fits of log(rel dist) on x = log(kappa m^beta), on log m and on log kappa.

    n_cells: cells with a positive finite rel dist; n_zero: cells at exactly 0, n_missing: cells
    with no finite value (both left out of the fits); x_range: kappa m^beta over the cells.
    """

    collapse: PolyFit
    width_only: PolyFit
    kappa_only: PolyFit
    n_cells: int
    n_zero: int
    n_missing: int
    x_range: tuple[float, float]
    beta: float = BETA_CLAIM


def config_kappa(ds: xr.Dataset) -> float | None:
    """model.kappa from the experiment's shared config (attrs["config"]); None when absent."""
    try:
        return float(setting_value(json.loads(ds.attrs["config"]), "model.kappa"))
    except (KeyError, TypeError, ValueError):
        return None


def _relative(sel: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray, np.ndarray]:
    """Final relative distance and flipped fraction (diverged runs NaN) of a slice, each with a
    model_kappa dim, and the kappa values. Raises ValueError without kappa or width."""
    kappa_dim = KAPPA_DIM in sel.dims
    if kappa_dim:
        kappa = sel[KAPPA_DIM].values.astype(np.float64)
    else:
        single = config_kappa(sel)
        if single is None:
            raise ValueError("no model_kappa dim and no model.kappa in the config attrs")
        kappa = np.array([single])
    if "width" not in sel.dims:
        raise ValueError("no width dim")
    rel = final_values(converged(sel["dist_to_target"], sel)) / converged(sel["target_norm"], sel)
    flips = final_values(converged(sel["activation_flip_fraction"], sel))
    if not kappa_dim:
        rel, flips = (da.expand_dims({KAPPA_DIM: kappa}) for da in (rel, flips))
    return rel, flips, kappa


def _run_dims(da: xr.DataArray) -> list[str]:
    return [d for d in ("seed", DRAW_DIM) if d in da.dims]


def lazy_grid(sel: xr.Dataset) -> LazyGrid:
    """The mean (over seeds and draws) (kappa, width) grid of the relative distance and the
    flipped fraction of a slice (dims model_kappa, width, seed [, data_seed])."""
    rel, flips, kappa = _relative(sel)
    runs = _run_dims(rel)
    return LazyGrid(
        kappa,
        sel["width"].values.astype(np.int64),
        rel.mean(runs).transpose(KAPPA_DIM, "width").values,
        flips.mean(runs).transpose(KAPPA_DIM, "width").values,
        rel.count(runs).transpose(KAPPA_DIM, "width").values,
    )


def poly_fit(x: np.ndarray, y: np.ndarray, degree: int = COLLAPSE_DEGREE) -> PolyFit:
    """Fit y ~ poly(x) of degree min(degree, distinct x - 1); x, y: (n,) finite.

    R^2 is NaN when y is constant (nothing to explain); rms is in y's units.
    """
    deg = int(min(degree, np.unique(x).size - 1))
    if deg < 0 or x.size == 0:
        return PolyFit(np.nan, np.nan, np.array([np.nan]), int(x.size))
    coef = np.polyfit(x, y, deg) if deg > 0 else np.array([y.mean()])
    resid = y - np.polyval(coef, x)
    ss_res, ss_tot = float(resid @ resid), float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else np.nan
    return PolyFit(float(r2), float(np.sqrt(ss_res / x.size)), coef, int(x.size))


def collapse_fits(grid: LazyGrid, beta: float = BETA_CLAIM) -> Collapse:
    """Fit log(rel dist) over the usable cells on log(kappa m^beta), log m and log kappa."""
    rel = grid.rel_dist
    ok = np.isfinite(rel) & (rel > 0)
    kk, mm = np.meshgrid(np.log(grid.kappa), np.log(grid.width.astype(np.float64)), indexing="ij")
    x = kk + beta * mm
    y = np.log(np.where(ok, rel, 1.0))[ok]
    collapse, width_only, kappa_only = (poly_fit(v[ok], y) for v in (x, mm, kk))
    x_ok = np.exp(x[ok])
    span = (float(x_ok.min()), float(x_ok.max())) if x_ok.size else (np.nan, np.nan)
    return Collapse(
        collapse,
        width_only,
        kappa_only,
        n_cells=int(ok.sum()),
        n_zero=int((rel == 0).sum()),
        n_missing=int((~np.isfinite(rel)).sum()),
        x_range=span,
        beta=beta,
    )


def lazy_crossing(fit: Collapse, level: float = LAZY_REL_DIST) -> float | None:
    """kappa m^beta where the fitted collapse first falls below `level`, within the data range;
    None when it does not cross there."""
    low, high = fit.x_range
    if not (np.isfinite(low) and np.all(np.isfinite(fit.collapse.coef))) or high <= low:
        return None
    grid = np.geomspace(low, high, 400)
    above = fit.collapse.predict(np.log(grid)) >= np.log(level)
    change = np.flatnonzero(above[:-1] & ~above[1:])
    return float(grid[change[0] + 1]) if change.size else None


# ---- beta: the exponent of m in the collapse variable, per unit, with a t interval ----


def residual_sd(log_kappa: np.ndarray, log_m: np.ndarray, y: np.ndarray, beta: float) -> float:
    """Residual SD of the degree-2 fit of y on log kappa + beta log m over finite cells (n - 3
    degrees of freedom)."""
    x = log_kappa + beta * log_m
    coef = np.polyfit(x, y, COLLAPSE_DEGREE)
    resid = y - np.polyval(coef, x)
    return float(np.sqrt(resid @ resid / max(y.size - COLLAPSE_DEGREE - 1, 1)))


def beta_hat(kappa: np.ndarray, width: np.ndarray, cells: np.ndarray) -> float:
    """The beta in BETA_RANGE minimising `residual_sd` of the cells' log relative distance
    `cells: (k, w)` (NaN cells left out); NaN with fewer than COLLAPSE_DEGREE + 3 finite cells."""
    kk, mm = np.meshgrid(np.log(kappa), np.log(width.astype(np.float64)), indexing="ij")
    ok = np.isfinite(cells)
    if ok.sum() < COLLAPSE_DEGREE + 3:
        return np.nan
    args = (kk[ok], mm[ok], cells[ok])
    grid = np.arange(BETA_RANGE[0], BETA_RANGE[1] + BETA_GRID_STEP / 2, BETA_GRID_STEP)
    sds = np.array([residual_sd(*args, b) for b in grid])
    i = int(np.argmin(sds))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    if hi <= lo:
        return float(grid[i])
    best = minimize_scalar(
        lambda b: residual_sd(*args, b), bounds=(lo, hi), method="bounded", options={"xatol": 1e-6}
    )
    return float(best.x)


@dataclass(frozen=True)
class LazyBeta:
    """beta on one slice: the estimate over units, each unit's beta_hat, and the pooled grid.

    units: "data draw" or "seed"; unit_betas: (U,); estimate: Estimate (t over units);
    grid: the pooled mean grid; collapse: its fit at the estimate; at_half: its fit at 1/2.
    """

    estimate: Estimate
    unit_betas: np.ndarray
    units: str
    grid: LazyGrid
    collapse: Collapse
    at_half: Collapse


def lazy_beta(sel: xr.Dataset) -> LazyBeta:
    """beta with its interval on a slice with dims (model_kappa, width, seed [, data_seed]).

    Units are the data draws when there are several (cells: the draw's mean over seeds of log
    relative distance), else the seeds of the one draw (then the interval is conditional on
    it). Raises ValueError (naming the cause) without kappa or width dims.
    """
    rel, _, kappa = _relative(sel)
    logs = xr.DataArray(np.log(rel.where(rel > 0)))
    if DRAW_DIM in logs.dims and logs.sizes[DRAW_DIM] > 1:
        per_unit, units = logs.mean("seed"), "data draw"
        unit_dim = DRAW_DIM
    else:
        per_unit = logs.isel({DRAW_DIM: 0}) if DRAW_DIM in logs.dims else logs
        units, unit_dim = "seed", "seed"
    per_unit = per_unit.transpose(unit_dim, KAPPA_DIM, "width")
    width = sel["width"].values
    betas = np.array([beta_hat(kappa, width, cells) for cells in per_unit.values])
    betas = betas[np.isfinite(betas)]
    if betas.size == 0:
        raise ValueError("no unit has enough finite (kappa, m) cells to estimate beta")
    mean, se, df = unit_means(betas)
    method = f"t interval over {betas.size} {units}s' beta_hat"
    interval = TInterval(float(mean), float(se), float(df) if df > 0 else np.nan, method)
    n_draws = int(sel.sizes.get(DRAW_DIM, 1))
    est = Estimate(interval, 0.95, n_draws, int(np.isfinite(rel.values).sum()), 0, betas)
    grid = lazy_grid(sel)
    return LazyBeta(
        est, betas, units, grid, collapse_fits(grid, float(mean)), collapse_fits(grid, BETA_CLAIM)
    )


def applies_lazy(ds: xr.Dataset) -> bool:
    """A model_kappa dim with two or more values and two or more widths."""
    return ds.sizes.get(KAPPA_DIM, 1) >= 2 and ds.sizes.get("width", 1) >= 2


def _r2(f: PolyFit) -> str:
    return f"{round(f.r2, 3) + 0.0:.3f}"  # no "-0.000"


def collapse_detail(fit: Collapse) -> str:
    """One line: R^2 and spreads of the three fits, the cells used, the kappa m^beta range."""

    def one(name: str, f: PolyFit) -> str:
        return f"{name} R^2 {_r2(f)} (rms {f.rms:.3f} log units, x{np.exp(f.rms):.2f})"

    skipped = []
    if fit.n_zero:
        skipped.append(f"{fit.n_zero} at 0")
    if fit.n_missing:
        skipped.append(f"{fit.n_missing} with no converged run")
    left_out = f"; left out: {', '.join(skipped)}" if skipped else ""
    return (
        f"{one(f'log(kappa m^{fit.beta:.3g})', fit.collapse)}; {one('log m alone', fit.width_only)}"
        f"; {one('log kappa alone', fit.kappa_only)}; degree {COLLAPSE_DEGREE} polynomials over "
        f"{fit.n_cells} (kappa, m) cells (means over runs){left_out}; kappa m^beta "
        f"{fit.x_range[0]:.3g}-{fit.x_range[1]:.3g}"
    )


def beta_lines(b: LazyBeta) -> list[str]:
    """Plain-text lines of the beta estimate (figure summary and check detail)."""
    units = ", ".join(f"{v:.3f}" for v in b.unit_betas)
    return [
        f"beta {interval_text(b.estimate)}; per {b.units}: {units}",
        f"collapse at beta_hat: {collapse_detail(b.collapse)}",
        f"collapse at beta = 1/2: R^2 {_r2(b.at_half.collapse)}",
    ]


_BETA_REGION = around(BETA_CLAIM, BETA_MARGIN)


def _beta_check(ds: xr.Dataset) -> list[Outcome]:
    outs = []
    for label, sel in slices(ds, exclude=(KAPPA_DIM,)):
        try:
            b = lazy_beta(sel)
        except (KeyError, ValueError) as exc:
            outs.append(not_applicable(f"cannot fit: {exc}", label))
            continue
        draws = int(sel.sizes.get(DRAW_DIM, 1))
        basis = (
            f"kappa {', '.join(f'{k:g}' for k in b.grid.kappa)} x widths "
            f"{int(b.grid.width.min())}-{int(b.grid.width.max())}, "
            f"{'1 data draw' if draws == 1 else f'{draws} data draws'} x "
            f"{sel.sizes.get('seed', 1)} seeds, {run_length(sel)}"
        )
        outs.append(
            estimate_outcome(
                b.estimate,
                _BETA_REGION,
                setting=label,
                basis=basis,
                detail="; ".join(beta_lines(b)),
            )
        )
    return outs


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "lazy_beta",
        CLAIM,
        "the relative distance to W* is one function of kappa m^beta with beta = 1/2 (beta)",
        f"beta minimising the residual SD of a degree-{COLLAPSE_DEGREE} fit of the cells' log "
        "||W(T)-W*|| / ||W*-W0|| in log(kappa m^beta), mean over data draws (or seeds)",
        criterion_text(_BETA_REGION, "beta"),
        "experiments sweeping model.kappa (two or more values) at two or more widths: one row "
        "per combination of the other swept values; final step, diverged runs excluded",
        applies_lazy,
        _beta_check,
    ),
)
