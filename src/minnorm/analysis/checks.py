"""Theorem checks: the papers' claims measured on collected experiments, with computed verdicts.

Each check is declared once, as a `CheckSpec` in `CHECKS`: its kind (deterministic, claim or
finding; minnorm.analysis.check_spec), its claim, the statistic it measures, its criterion,
which experiments it applies to, and the function computing it. The per-experiment table
(`theorem_checks`), the estimates behind it (`estimates_table`), their files
(results/<exp>/checks.{csv,md,html}, estimates.csv) and the summary over all experiments
(results/checks.*, results/estimates.csv) are derived from that dict.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import rankdata

from minnorm.analysis.beyond import BEYOND_CHECKS
from minnorm.analysis.check_spec import (
    CLAIM,
    COLUMNS,
    DETERMINISTIC,
    ESTIMATE_COLUMNS,
    CheckSpec,
    Outcome,
)
from minnorm.analysis.check_tables import checks_markdown
from minnorm.analysis.collect import (
    converged,
    diverged_runs,
    final_values,
    initial_values,
)
from minnorm.analysis.powerlaw import CI_LEVEL, PowerLawFit, fit_power_law
from minnorm.analysis.verdicts import (
    EXPONENT_MARGIN,
    FAIL,
    NOT_APPLICABLE,
    PASS,
    Region,
    around,
    at_most,
    criterion_text,
)
from minnorm.analysis.width_claims import exponent_check, slices

# Satpathi & Srikant: ||W - W*_L|| leaves a residual O(m^-1/4) under gradient flow (O(m^-1/8)
# for discrete GD, a weaker bound the runs need not reach): the claim is the flow rate as an
# upper bound, exponent <= -1/4 + EXPONENT_MARGIN; a steeper decay is consistent with it.
DIST_TO_TARGET_RATE = -1.0 / 4.0
# ||W(T) - W0|| tends to ||W*_L - W0||, whose expectation does not depend on m: the claim is an
# exponent of 0 within 0.1, a change of 26% per decade of m (10^0.1), above the seed-to-seed
# spread of f0 at kappa = 1 and still below the slowest decay the theorems allow the residual
# (1/8); wider than EXPONENT_MARGIN because f0's own width dependence is not the claim.
DIST_FROM_INIT_MARGIN = 0.1
# Lee et al. (2019): the network's distance to its linearization is O(m^-1/2) in function space;
# the claim is that rate as an upper bound.
GAP_LINEARIZED_RATE = -1.0 / 2.0
# Both theorems give geometric decay of the training loss to zero; after the configured steps a
# run must end at least two orders of magnitude below where it started.
TRAIN_LOSS_MAX_RATIO = 1e-2
# Arora et al. Fig. 2: test error rises monotonically with the noise fraction; a Spearman rank
# correlation of 0.8 still allows a couple of adjacent swaps among ~10 noise levels.
ERROR_NOISE_MIN_SPEARMAN = 0.8
# Arora et al. Thm 5.1: test 0-1 error <= sqrt(2 y^T H^-1 y / n) + O(n^-1/2); we require the
# leading term alone to bound the mean error (ratio below 1). A bound of 1 or more says nothing
# about a 0-1 error: such noise levels are counted as vacuous in the detail.
ERROR_BOUND_MAX_RATIO = 1.0
VACUOUS_ERROR_BOUND = 1.0
# Arora et al. Thm 4.1: ||W(T) - W0||_F <= sqrt(y^T H^-1 y) + small terms; 10% allows for the
# O(kappa) and finite-m terms.
DIST_FROM_INIT_BOUND_SLACK = 1.1

__all__ = [
    "CHECKS",
    "CI_LEVEL",
    "COLUMNS",
    "CheckSpec",
    "Outcome",
    "PowerLawFit",
    "checks_markdown",
    "estimates_table",
    "fit_power_law",
    "theorem_checks",
]


def every_experiment(_ds: xr.Dataset) -> bool:
    return True


def several_widths(ds: xr.Dataset) -> bool:
    """Two or more widths."""
    return ds.sizes.get("width", 1) >= 2


def several_noise_levels(ds: xr.Dataset) -> bool:
    """Two or more label-noise levels."""
    return ds.sizes.get("label_noise", 1) >= 2


# ---- runs: training loss and divergence ----


def _train_loss(ds: xr.Dataset) -> Outcome:
    loss = converged(ds["train_loss"], ds)
    ratio = (final_values(loss) / initial_values(loss)).values.ravel()
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size == 0:
        return Outcome(np.nan, NOT_APPLICABLE, "no converged run")
    worst = float(ratio.max())
    return Outcome(
        worst,
        PASS if worst < TRAIN_LOSS_MAX_RATIO else FAIL,
        f"worst of {ratio.size} non-diverged runs; median {np.median(ratio):.3g}",
    )


def _diverged(ds: xr.Dataset) -> Outcome:
    runs = diverged_runs(ds)
    total = int(np.isfinite(ds["diverged"].values).sum())
    listed = "; ".join(", ".join(f"{k}={v:g}" for k, v in r.items()) for r in runs[:5])
    more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
    detail = f"{len(runs)} of {total} runs diverged" + (f": {listed}{more}" if runs else "")
    return Outcome(len(runs), PASS if not runs else FAIL, detail)


def _pseudo_inverse(ds: xr.Dataset) -> Outcome:
    """Runs whose G was singular or ill-conditioned (the target used the pseudo-inverse), each
    named by its swept values with its condition number."""
    flags = ds["used_pinv"].fillna(0) > 0
    stacked = flags.stack(run=flags.dims) if flags.dims else flags.expand_dims(run=[0])
    cond = ds["cond_G"].broadcast_like(flags)
    cond = cond.stack(run=flags.dims) if flags.dims else cond.expand_dims(run=[0])
    runs = [
        ", ".join(f"{d}={stacked[d].values[i].item():g}" for d in flags.dims)
        + f": cond_G={float(cond.values[i]):.3g}"
        for i in np.flatnonzero(stacked.values)
    ]
    total = int(np.isfinite(ds["used_pinv"].values).sum())
    more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
    detail = f"{len(runs)} of {total} runs used the pseudo-inverse" + (
        f": {'; '.join(runs[:5])}{more}" if runs else ""
    )
    return Outcome(len(runs), PASS if not runs else FAIL, detail)


def has_gram_flags(ds: xr.Dataset) -> bool:
    """The runs carry the target's `used_pinv` and `cond_G` (every run file does)."""
    return "used_pinv" in ds and "cond_G" in ds


# ---- label-noise claims (Arora et al.): per width and every other swept value, seed means ----


def _mean_final(sel: xr.Dataset, name: str) -> xr.DataArray:
    da = converged(sel[name], sel)
    da = final_values(da) if "step" in da.dims else da
    means = [d for d in ("seed", "data_seed") if d in da.dims]
    return da.mean(means) if means else da


def _noise_slices(ds: xr.Dataset) -> list[tuple[str, xr.Dataset]]:
    """One slice per width and combination of other swept values (label noise kept)."""
    out = []
    for label, sel in slices(ds, exclude=("label_noise",)):
        widths = sel["width"].values if "width" in sel.dims else [None]
        for w in widths:
            one = sel.sel(width=w) if w is not None else sel
            name = f"width={int(one['width'].item())}"
            out.append((f"{label}, {name}" if label else name, one))
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; 0 when either input is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _error_rises(ds: xr.Dataset) -> list[Outcome]:
    outs = []
    for label, sel in _noise_slices(ds):
        error = _mean_final(sel, "test_error")
        noise = sel.label_noise.values
        ok = np.isfinite(error.values)
        if ok.sum() < 2:
            outs.append(
                Outcome(np.nan, NOT_APPLICABLE, "fewer than two finite noise levels", setting=label)
            )
            continue
        rho = _spearman(noise[ok], error.values[ok])
        outs.append(
            Outcome(
                rho,
                PASS if rho >= ERROR_NOISE_MIN_SPEARMAN else FAIL,
                f"{ok.sum()} noise levels {noise[ok].min():g}-{noise[ok].max():g}; "
                "mean over seeds of these runs",
                setting=label,
            )
        )
    return outs


def _vacuous_note(bound: np.ndarray) -> str:
    """How many noise levels have a bound >= 1, which says nothing about a 0-1 error."""
    finite = bound[np.isfinite(bound)]
    count = int((finite >= VACUOUS_ERROR_BOUND).sum())
    span = f"{finite.min():.3g}-{finite.max():.3g}"
    if count == 0:
        return f"below {VACUOUS_ERROR_BOUND:g} at every noise level ({span})"
    return (
        f"{span}, VACUOUS (>= {VACUOUS_ERROR_BOUND:g}, so it constrains no 0-1 error) at "
        f"{count} of {finite.size} noise levels"
    )


def _ratio(
    ratio_of: Callable[[xr.Dataset], xr.DataArray],
    limit: float,
    note: Callable[[xr.Dataset], str] | None = None,
) -> Callable[[xr.Dataset], list[Outcome]]:
    def evaluate(ds: xr.Dataset) -> list[Outcome]:
        outs = []
        for label, sel in _noise_slices(ds):
            r = ratio_of(sel).values
            if not np.isfinite(r).any():
                outs.append(Outcome(np.nan, NOT_APPLICABLE, "no finite values", setting=label))
                continue
            worst = int(np.nanargmax(r))
            verdict = PASS if np.all(r[np.isfinite(r)] < limit) else FAIL
            extra = f"; bound {note(sel)}" if note is not None else ""
            outs.append(
                Outcome(
                    float(r[worst]),
                    verdict,
                    f"largest ratio at label noise {sel.label_noise.values[worst]:g}; "
                    f"mean over seeds of these runs{extra}",
                    setting=label,
                )
            )
        return outs

    return evaluate


_WIDTHS = (
    "experiments with two or more widths: one row per combination of the other swept values "
    "(lr, label noise, settings); data draws pooled as the interval's units; final step, "
    "diverged runs excluded"
)
_NOISE = (
    "experiments with two or more label-noise levels: one row per width and combination of the "
    "other swept values; final step, mean over seeds"
)


def _claim(region: Region, name: str) -> str:
    return criterion_text(region, name)


_DIST_REGION = at_most(DIST_TO_TARGET_RATE, EXPONENT_MARGIN)
_INIT_REGION = around(0.0, DIST_FROM_INIT_MARGIN)
_GAP_REGION = at_most(GAP_LINEARIZED_RATE, EXPONENT_MARGIN)

CHECKS: dict[str, CheckSpec] = {
    spec.name: spec
    for spec in (
        CheckSpec(
            "train_loss",
            DETERMINISTIC,
            "train loss reaches its floor (final / initial)",
            "largest final / initial training loss over the non-diverged runs",
            f"< {TRAIN_LOSS_MAX_RATIO:g} for every run",
            "every experiment (all runs)",
            every_experiment,
            _train_loss,
        ),
        CheckSpec(
            "diverged",
            DETERMINISTIC,
            "no run diverged (number diverged)",
            "number of diverged runs",
            "0",
            "every experiment (all runs); diverged runs are excluded from every other row",
            every_experiment,
            _diverged,
        ),
        CheckSpec(
            "gram_conditioned",
            DETERMINISTIC,
            "G is well conditioned in every run (the theorems assume lambda_min(G) > 0)",
            "number of runs whose G was singular or ill-conditioned (pseudo-inverse target)",
            "0",
            "every experiment (all runs); each such run is listed with its cond_G",
            has_gram_flags,
            _pseudo_inverse,
        ),
        CheckSpec(
            "dist_to_target",
            CLAIM,
            "||W(T)-W*|| decays at least like the flow theorem's m^-1/4 (exponent of m)",
            "OLS exponent of the final ||W(T) - W*|| in m over all widths",
            _claim(_DIST_REGION, "exponent"),
            _WIDTHS,
            several_widths,
            exponent_check("dist_to_target", _DIST_REGION, curvature=True),
            quantity="exponent of ||W(T)-W*|| in m",
        ),
        CheckSpec(
            "dist_from_init",
            CLAIM,
            "||W(T)-W0|| does not change with m (exponent of m)",
            "OLS exponent of the final ||W(T) - W0|| in m",
            _claim(_INIT_REGION, "exponent"),
            _WIDTHS,
            several_widths,
            exponent_check("dist_from_init", _INIT_REGION),
        ),
        CheckSpec(
            "gap_linearized",
            CLAIM,
            "network-to-linearized gap decays at least like m^-1/2 (Lee et al.; exponent of m)",
            "OLS exponent of the final RMS network-to-linearized gap in m",
            _claim(_GAP_REGION, "exponent"),
            _WIDTHS,
            several_widths,
            exponent_check("gap_linearized", _GAP_REGION),
        ),
        CheckSpec(
            "error_rises",
            DETERMINISTIC,
            "test error rises with label noise in these runs (Spearman rho)",
            "Spearman rank correlation of the seed-mean final test error with p",
            f">= {ERROR_NOISE_MIN_SPEARMAN:g}",
            _NOISE,
            several_noise_levels,
            _error_rises,
        ),
        CheckSpec(
            "error_below_bound",
            DETERMINISTIC,
            "test error below sqrt(2 y^T H^-1 y / n) in these runs (error / bound)",
            "largest seed-mean test error / bound over the noise levels",
            f"< {ERROR_BOUND_MAX_RATIO:g} at every noise level (vacuous where the bound is "
            f">= {VACUOUS_ERROR_BOUND:g})",
            _NOISE,
            several_noise_levels,
            _ratio(
                lambda s: _mean_final(s, "test_error") / _mean_final(s, "arora_bound"),
                ERROR_BOUND_MAX_RATIO,
                lambda s: _vacuous_note(_mean_final(s, "arora_bound").values),
            ),
            needs_paper_network=True,
        ),
        CheckSpec(
            "dist_below_bound",
            DETERMINISTIC,
            "||W(T)-W0|| <= sqrt(y^T H^-1 y) in these runs (ratio)",
            "largest seed-mean ||W(T) - W0|| / sqrt(y^T H^-1 y) over the noise levels",
            f"< {DIST_FROM_INIT_BOUND_SLACK:g} at every noise level",
            _NOISE,
            several_noise_levels,
            _ratio(
                lambda s: _mean_final(s, "dist_from_init") / np.sqrt(_mean_final(s, "yHy")),
                DIST_FROM_INIT_BOUND_SLACK,
            ),
            needs_paper_network=True,
        ),
        # Beyond the paper: the studies' claims (minnorm.analysis.beyond), after the papers' own.
        *BEYOND_CHECKS,
    )
}


def experiment_outcomes(ds: xr.Dataset) -> list[tuple[CheckSpec, Outcome]]:
    """(spec, outcome) of every applicable check on one collected Dataset, in registry order."""
    missing = [v for v in ("train_loss", "diverged") if v not in ds]
    if missing:
        raise ValueError(f"lacks variables {missing}")
    return [
        (spec, out) for spec in CHECKS.values() if spec.applicable(ds) for out in spec.outcomes(ds)
    ]


def theorem_checks(collected: dict[str, xr.Dataset]) -> pd.DataFrame:
    """One row per (experiment, applicable check, combination of other swept values), in
    registry order; columns `COLUMNS`."""
    return experiment_tables(collected)[0]


def estimates_table(collected: dict[str, xr.Dataset]) -> pd.DataFrame:
    """The estimates the checks rest on, overall and per data draw (`ESTIMATE_COLUMNS`)."""
    return experiment_tables(collected)[1]


def experiment_tables(collected: dict[str, xr.Dataset]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(checks table, estimates table) of the collected experiments, each check evaluated once."""
    rows: list[dict] = []
    estimates: list[dict] = []
    for exp, ds in collected.items():
        try:
            outcomes = experiment_outcomes(ds)
        except ValueError as exc:
            raise ValueError(f"theorem_checks: experiment {exp!r} {exc}") from exc
        for spec, out in outcomes:
            rows.append(spec.row(exp, out))
            estimates.extend(spec.estimate_rows(exp, out))
    return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(estimates, columns=ESTIMATE_COLUMNS)


def experiment_checks(exp: str, collected_file: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(checks table, estimates table) of one experiment from its collected file."""
    with xr.open_dataset(collected_file, engine="netcdf4") as opened:
        ds = opened.load()
    return experiment_tables({exp: ds})
