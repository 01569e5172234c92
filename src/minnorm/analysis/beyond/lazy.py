"""Where the lazy regime ends: the init scale kappa against the width m (study `lazy_phase`).

With ReLU the Jacobian, and so G and the min-norm target's direction, does not depend on the
scale of W0: scaling the init by kappa moves every activation boundary by ~kappa, while the
weights move by ~m^-1/2 per neuron. Linearization should therefore hold when kappa * sqrt(m) is
large, and the relative distance to the target ||W(T) - W*|| / ||W* - W0|| should be a function
of x = log(kappa sqrt(m)) alone. This module measures how well that collapse explains the
(kappa, m) grid, against log m alone and log kappa alone.

Selection: first lr, smallest label noise, first value of every swept setting other than
`model_kappa`; diverged runs excluded; seed means per (kappa, m) cell. Without a `model_kappa`
dim the single kappa is read from the experiment's config (attrs["config"]).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xarray as xr

from minnorm.analysis.check_spec import CheckSpec, Outcome
from minnorm.analysis.collect import converged, final_values, first_values
from minnorm.config.sweep import setting_value

KAPPA_DIM = "model_kappa"
# Degree of the polynomial in one log variable fitted to log(relative distance). Two allows the
# bend between the lazy (decaying) and feature-learning (flat) ends of the range without letting
# a single variable with 5-7 distinct values fit its group means exactly.
COLLAPSE_DEGREE = 2
# The collapse onto x = log(kappa sqrt(m)) must explain at least 90% of the variance of
# log(relative distance) over the cells: the rest is seed noise and the finite-m corrections.
COLLAPSE_MIN_R2 = 0.9
# ... and leave at most half the unexplained variance of the better single-variable fit (log m
# alone or log kappa alone): a variable that is genuinely the right one should at least halve
# what is left; a difference within seed noise does not.
COLLAPSE_MAX_RESIDUAL_RATIO = 0.5
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
    """Fits of log(rel dist) on x = log(kappa sqrt m), on log m and on log kappa.

    n_cells: cells with a positive finite rel dist; n_zero: cells at exactly 0, n_missing: cells
    with no finite value (both left out of the fits).
    """

    collapse: PolyFit
    width_only: PolyFit
    kappa_only: PolyFit
    n_cells: int
    n_zero: int
    n_missing: int
    x_range: tuple[float, float]

    @property
    def residual_ratio(self) -> float:
        """(1 - R^2 of the collapse) / (1 - R^2 of the better single variable)."""
        best_single = max(self.width_only.r2, self.kappa_only.r2)
        left = 1.0 - best_single
        return float((1.0 - self.collapse.r2) / left) if left > 0 else float("inf")

    def passes(self) -> bool:
        """COLLAPSE_MIN_R2 reached and at most COLLAPSE_MAX_RESIDUAL_RATIO of the unexplained
        variance of the better single-variable fit left."""
        return bool(
            self.collapse.r2 >= COLLAPSE_MIN_R2
            and self.residual_ratio <= COLLAPSE_MAX_RESIDUAL_RATIO
        )


def config_kappa(ds: xr.Dataset) -> float | None:
    """model.kappa from the experiment's shared config (attrs["config"]); None when absent."""
    try:
        return float(setting_value(json.loads(ds.attrs["config"]), "model.kappa"))
    except (KeyError, TypeError, ValueError):
        return None


def kappa_slice(ds: xr.Dataset) -> xr.Dataset:
    """First lr, smallest label noise, first value of every setting dim but model_kappa."""
    return first_values(ds, keep=(KAPPA_DIM,))


def _cell_mean(da: xr.DataArray, kappa_dim: bool) -> tuple[np.ndarray, np.ndarray]:
    """Seed means (NaN where no seed is finite) and finite-seed counts of `da` (dims width,
    seed [, model_kappa]): both (k, w)."""
    if not kappa_dim:
        da = da.expand_dims({KAPPA_DIM: 1})
    return (
        da.mean("seed").transpose(KAPPA_DIM, "width").values,
        da.count("seed").transpose(KAPPA_DIM, "width").values,
    )


def lazy_grid(ds: xr.Dataset) -> LazyGrid:
    """The seed-mean (kappa, width) grid of the relative distance and the flipped fraction.

    Raises ValueError when the Dataset has neither a model_kappa dim nor model.kappa in its
    config, or lacks a width dim.
    """
    sel = kappa_slice(ds)
    has_dim = KAPPA_DIM in sel.dims
    if has_dim:
        kappa = sel[KAPPA_DIM].values.astype(np.float64)
    else:
        single = config_kappa(ds)
        if single is None:
            raise ValueError("no model_kappa dim and no model.kappa in the config attrs")
        kappa = np.array([single])
    if "width" not in sel.dims:
        raise ValueError("no width dim")
    rel = final_values(converged(sel["dist_to_target"], sel)) / converged(sel["target_norm"], sel)
    flips = final_values(converged(sel["activation_flip_fraction"], sel))
    rel_mean, count = _cell_mean(rel, has_dim)
    flip_mean, _ = _cell_mean(flips, has_dim)
    return LazyGrid(kappa, sel["width"].values.astype(np.int64), rel_mean, flip_mean, count)


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


def collapse_fits(grid: LazyGrid, degree: int = COLLAPSE_DEGREE) -> Collapse:
    """Fit log(rel dist) over the usable cells on log(kappa sqrt m), log m and log kappa."""
    rel = grid.rel_dist
    ok = np.isfinite(rel) & (rel > 0)
    kk, mm = np.meshgrid(np.log(grid.kappa), np.log(grid.width.astype(np.float64)), indexing="ij")
    x = np.log(grid.kappa_sqrt_m)
    y = np.log(np.where(ok, rel, 1.0))[ok]
    fits = [poly_fit(v[ok], y, degree) for v in (x, mm, kk)]
    x_ok = grid.kappa_sqrt_m[ok]
    span = (float(x_ok.min()), float(x_ok.max())) if x_ok.size else (np.nan, np.nan)
    return Collapse(
        *fits,
        n_cells=int(ok.sum()),
        n_zero=int((rel == 0).sum()),
        n_missing=int((~np.isfinite(rel)).sum()),
        x_range=span,
    )


def lazy_crossing(fit: Collapse, level: float = LAZY_REL_DIST) -> float | None:
    """kappa sqrt(m) where the fitted collapse first falls below `level`, within the data range;
    None when it does not cross there."""
    low, high = fit.x_range
    if not (np.isfinite(low) and np.all(np.isfinite(fit.collapse.coef))) or high <= low:
        return None
    grid = np.geomspace(low, high, 400)
    above = fit.collapse.predict(np.log(grid)) >= np.log(level)
    change = np.flatnonzero(above[:-1] & ~above[1:])
    return float(grid[change[0] + 1]) if change.size else None


def applies_lazy(ds: xr.Dataset) -> bool:
    """A model_kappa dim with two or more values and two or more widths."""
    return ds.sizes.get(KAPPA_DIM, 1) >= 2 and ds.sizes.get("width", 1) >= 2


def collapse_detail(fit: Collapse) -> str:
    """One line: R^2 and spreads of the three fits, the cells used, the kappa sqrt(m) range."""

    def one(name: str, f: PolyFit) -> str:
        r2 = round(f.r2, 3) + 0.0  # no "-0.000"
        return f"{name} R^2 {r2:.3f} (rms {f.rms:.3f} log units, x{np.exp(f.rms):.2f})"

    skipped = []
    if fit.n_zero:
        skipped.append(f"{fit.n_zero} at 0")
    if fit.n_missing:
        skipped.append(f"{fit.n_missing} with no converged run")
    left_out = f"; left out: {', '.join(skipped)}" if skipped else ""
    return (
        f"{one('log(kappa sqrt m)', fit.collapse)}; {one('log m alone', fit.width_only)}; "
        f"{one('log kappa alone', fit.kappa_only)}; residual ratio {fit.residual_ratio:.2f}; "
        f"degree {COLLAPSE_DEGREE} polynomials over {fit.n_cells} (kappa, m) cells "
        f"(seed means){left_out}; kappa sqrt(m) {fit.x_range[0]:.3g}-{fit.x_range[1]:.3g}"
    )


def _collapse_check(ds: xr.Dataset) -> Outcome:
    try:
        fit = collapse_fits(lazy_grid(ds))
    except (KeyError, ValueError) as exc:
        return Outcome(np.nan, "n/a", f"cannot fit: {exc}")
    if fit.n_cells < COLLAPSE_DEGREE + 2 or not np.isfinite(fit.collapse.r2):
        return Outcome(
            fit.collapse.r2,
            "n/a",
            f"{fit.n_cells} usable cells (need {COLLAPSE_DEGREE + 2} with a varying "
            "relative distance)",
        )
    return Outcome(fit.collapse.r2, "pass" if fit.passes() else "fail", collapse_detail(fit))


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "kappa_sqrt_m_collapse",
        "relative distance to W* is a function of kappa sqrt(m) (R^2 of the collapse)",
        f"R^2 of a degree-{COLLAPSE_DEGREE} polynomial fit of log(||W(T)-W*|| / ||W*-W0||) "
        "on log(kappa sqrt m) over the seed-mean (kappa, m) cells",
        f">= {COLLAPSE_MIN_R2:g}, and 1 - R^2 at most {COLLAPSE_MAX_RESIDUAL_RATIO:g} x that "
        "of the better fit on log m alone or log kappa alone",
        "experiments sweeping model.kappa (two or more values) at two or more widths "
        "(first lr, smallest label noise, first value of other settings, final step, "
        "diverged runs excluded)",
        applies_lazy,
        _collapse_check,
    ),
)
