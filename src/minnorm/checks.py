"""Theorem checks: the papers' claims measured on collected experiments, with computed verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import rankdata

from minnorm.collect import converged, diverged_runs, final_values, first_lr, initial_values

# Satpathi & Srikant: ||W - W*_L|| leaves a residual O(m^-1/4) under gradient flow and O(m^-1/8)
# under discrete GD; a pass needs at least the weaker, discrete-time rate.
DIST_TO_TARGET_MAX_EXPONENT = -1.0 / 8.0
# The flow rate, quoted in the detail for comparison (not part of the verdict).
DIST_TO_TARGET_EXPECTED_EXPONENT = -1.0 / 4.0
# ||W(T) - W0|| tends to ||W*_L - W0||, whose expectation does not depend on m; 0.1 allows a
# change of 26% per decade of m (10^0.1), above the seed-to-seed spread of f0 at kappa = 1, and
# still below the slowest decay the theorems allow for the residual (1/8).
DIST_FROM_INIT_MAX_ABS_EXPONENT = 0.1
# Both theorems give geometric decay of the training loss to zero; after the configured steps a
# run must end at least two orders of magnitude below where it started.
TRAIN_LOSS_MAX_RATIO = 1e-2
# Arora et al. Fig. 2: test error rises monotonically with the noise fraction; a Spearman rank
# correlation of 0.8 still allows a couple of adjacent swaps among ~10 noise levels.
ERROR_NOISE_MIN_SPEARMAN = 0.8
# Arora et al. Thm 5.1: test 0-1 error <= sqrt(2 y^T H^-1 y / n) + O(n^-1/2); we require the
# leading term alone to bound the mean error (ratio below 1).
ERROR_BOUND_MAX_RATIO = 1.0
# Arora et al. Thm 4.1: ||W(T) - W0||_F <= sqrt(y^T H^-1 y) + small terms; 10% allows for the
# O(kappa) and finite-m terms.
DIST_FROM_INIT_BOUND_SLACK = 1.1
# Bootstrap size and confidence level for the fitted exponents.
N_BOOT = 2000
CI_LEVEL = 0.95

COLUMNS = ["experiment", "claim", "measured", "threshold", "verdict", "detail"]


@dataclass(frozen=True)
class PowerLawFit:
    """values ~ prefactor * m^exponent, with a bootstrap CI on the exponent."""

    exponent: float
    prefactor: float
    ci_low: float
    ci_high: float
    ci: float = CI_LEVEL
    boot_exponents: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False,
                                       compare=False)
    boot_log_prefactors: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False,
                                            compare=False)

    def predict(self, m: np.ndarray) -> np.ndarray:
        """The fitted curve at widths `m: (k,)`."""
        return self.prefactor * np.asarray(m, dtype=np.float64) ** self.exponent

    def band(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise CI of the fitted curve at `m: (k,)` from the bootstrap fits: (low, high)."""
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
        raise ValueError(f"fit_power_law: values of shape {values.shape} match neither (k, s) nor "
                         f"long form for m of shape {m.shape}")
    out = []
    for w, v in pairs:
        v = v[np.isfinite(v)]
        if np.any(v <= 0) or w <= 0:
            raise ValueError("fit_power_law: widths and values must be positive for a log-log fit")
        if v.size:
            out.append((float(w), v))
    return out


def fit_power_law(m: np.ndarray, values: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0,
                  ci: float = CI_LEVEL) -> PowerLawFit:
    """Least-squares fit of log(values) = log(prefactor) + exponent * log(m).

    `m: (k,)` widths with `values: (k, s)` (one column per seed; NaN = missing), or long form
    `m: (N,)`, `values: (N,)`. The CI resamples, with replacement, the values within each width
    (seeds), refits, and takes percentiles; with one value per width it collapses to a point.
    Raises ValueError when fewer than two widths have a finite value.
    """
    groups = _groups(m, values)
    if len(groups) < 2:
        raise ValueError(f"fit_power_law: need finite values at two or more widths, got {len(groups)}")
    x = np.concatenate([np.full(v.size, np.log(w)) for w, v in groups])
    y = np.concatenate([np.log(v) for _, v in groups])
    xc = x - x.mean()
    sxx = float(xc @ xc)
    exponent = float(xc @ (y - y.mean()) / sxx)
    log_prefactor = float(y.mean() - exponent * x.mean())

    rng = np.random.default_rng(seed)
    boot_y = np.concatenate([np.log(v)[rng.integers(0, v.size, size=(n_boot, v.size))]
                             for _, v in groups], axis=1)  # (n_boot, N)
    boot_exp = (boot_y - boot_y.mean(axis=1, keepdims=True)) @ xc / sxx
    boot_logc = boot_y.mean(axis=1) - boot_exp * x.mean()
    alpha = 100 * (1 - ci) / 2
    low, high = np.percentile(boot_exp, [alpha, 100 - alpha])
    return PowerLawFit(exponent, float(np.exp(log_prefactor)), float(low), float(high), ci,
                       boot_exp, boot_logc)


def _row(experiment: str, claim: str, measured: float, threshold: str, verdict: str,
         detail: str) -> dict:
    return dict(zip(COLUMNS, (experiment, claim, float(measured), threshold, verdict, detail)))


def _final_by_width(ds: xr.Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Final converged `name` at the smallest label noise: widths (k,), values (k, seeds)."""
    sel = ds.isel(label_noise=0) if "label_noise" in ds.dims else ds
    final = final_values(converged(sel[name], sel)).transpose("width", ...)
    return sel["width"].values, final.values.reshape(final.sizes["width"], -1)


def _exponent_row(exp: str, ds: xr.Dataset, name: str, claim: str, threshold: str,
                  passes, expected: str = "") -> dict:
    try:
        widths, values = _final_by_width(ds, name)
        fit = fit_power_law(widths, values)
    except (KeyError, ValueError) as exc:
        return _row(exp, claim, np.nan, threshold, "n/a", f"cannot fit: {exc}")
    verdict = "pass" if passes(fit) else "fail"
    detail = (f"exponent {fit.exponent:.3f}, {fit.ci:.0%} CI [{fit.ci_low:.3f}, {fit.ci_high:.3f}] "
              f"({N_BOOT} bootstrap resamples of seeds per width); widths {widths.min()}-{widths.max()}, "
              f"{values.shape[1]} seeds, lr {ds.lr.item():g}{expected}")
    return _row(exp, claim, fit.exponent, threshold, verdict, detail)


def _width_rows(exp: str, ds: xr.Dataset) -> list[dict]:
    expected = f"; the flow theorem expects {DIST_TO_TARGET_EXPECTED_EXPONENT:.3f}"
    return [
        _exponent_row(exp, ds, "dist_to_target", "||W(T)-W*|| decays in m (exponent of m)",
                      f"<= {DIST_TO_TARGET_MAX_EXPONENT:.3f} and CI high < 0",
                      lambda f: f.exponent <= DIST_TO_TARGET_MAX_EXPONENT and f.ci_high < 0, expected),
        _exponent_row(exp, ds, "dist_from_init", "||W(T)-W0|| roughly constant in m (exponent of m)",
                      f"|exponent| < {DIST_FROM_INIT_MAX_ABS_EXPONENT:g}",
                      lambda f: abs(f.exponent) < DIST_FROM_INIT_MAX_ABS_EXPONENT),
        _exponent_row(exp, ds, "gap_linearized", "network-to-linearized gap shrinks in m (exponent of m)",
                      "< 0 and CI high < 0", lambda f: f.exponent < 0 and f.ci_high < 0),
    ]


def _loss_row(exp: str, ds: xr.Dataset) -> dict:
    loss = converged(ds["train_loss"], ds)
    ratio = (final_values(loss) / initial_values(loss)).values.ravel()
    ratio = ratio[np.isfinite(ratio)]
    claim, threshold = "train loss reaches its floor (final / initial)", f"< {TRAIN_LOSS_MAX_RATIO:g} for every run"
    if ratio.size == 0:
        return _row(exp, claim, np.nan, threshold, "n/a", "no converged run")
    worst = float(ratio.max())
    verdict = "pass" if worst < TRAIN_LOSS_MAX_RATIO else "fail"
    return _row(exp, claim, worst, threshold, verdict,
                f"worst of {ratio.size} non-diverged runs; median {np.median(ratio):.3g}")


def _diverged_row(exp: str, ds: xr.Dataset) -> dict:
    runs = diverged_runs(ds)
    total = int(np.isfinite(ds["diverged"].values).sum())
    listed = "; ".join(", ".join(f"{k}={v:g}" for k, v in r.items()) for r in runs[:5])
    more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
    detail = f"{len(runs)} of {total} runs diverged" + (f": {listed}{more}" if runs else "")
    return _row(exp, "no run diverged (number diverged)", len(runs), "0",
                "pass" if not runs else "fail", detail)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; 0 when either input is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _noise_rows(exp: str, ds: xr.Dataset) -> list[dict]:
    sel = ds.isel(width=-1) if "width" in ds.dims else ds
    where = f"width {sel.width.item()}, lr {sel.lr.item():g}, mean over seeds"

    def mean_final(name: str) -> xr.DataArray:
        da = converged(sel[name], sel)
        da = final_values(da) if "step" in da.dims else da
        return da.mean("seed") if "seed" in da.dims else da

    error, bound = mean_final("test_error"), mean_final("arora_bound")
    noise = sel.label_noise.values
    ok = np.isfinite(error.values)
    claim_rise = "test error rises with label noise (Spearman rho)"
    if ok.sum() < 2:
        rows = [_row(exp, claim_rise, np.nan, f">= {ERROR_NOISE_MIN_SPEARMAN:g}", "n/a",
                     "fewer than two noise levels with a finite test error")]
    else:
        rho = _spearman(noise[ok], error.values[ok])
        rows = [_row(exp, claim_rise, rho, f">= {ERROR_NOISE_MIN_SPEARMAN:g}",
                     "pass" if rho >= ERROR_NOISE_MIN_SPEARMAN else "fail",
                     f"{ok.sum()} noise levels {noise[ok].min():g}-{noise[ok].max():g}; {where}")]

    def ratio_row(claim: str, ratio: xr.DataArray, limit: float, what: str) -> dict:
        r = ratio.values
        if not np.isfinite(r).any():
            return _row(exp, claim, np.nan, f"< {limit:g} at every noise level", "n/a", "no finite values")
        worst = int(np.nanargmax(r))
        verdict = "pass" if np.all(r[np.isfinite(r)] < limit) else "fail"
        return _row(exp, claim, float(r[worst]), f"< {limit:g} at every noise level", verdict,
                    f"largest {what} at label noise {noise[worst]:g}; {where}")

    rows.append(ratio_row("test error below sqrt(2 y^T H^-1 y / n) (error / bound)",
                          error / bound, ERROR_BOUND_MAX_RATIO, "ratio"))
    rows.append(ratio_row("||W(T)-W0|| <= sqrt(y^T H^-1 y) (ratio)",
                          mean_final("dist_from_init") / np.sqrt(mean_final("yHy")),
                          DIST_FROM_INIT_BOUND_SLACK, "ratio"))
    return rows


def theorem_checks(collected: dict[str, xr.Dataset]) -> pd.DataFrame:
    """One row per (experiment, applicable claim); columns `COLUMNS`.

    Every experiment gets the train-loss and divergence rows (all runs). Experiments with two or
    more widths get the width claims (smallest label noise, first lr); experiments with two or
    more label-noise levels get the Arora et al. claims (largest width, first lr).
    """
    rows: list[dict] = []
    for exp, ds in collected.items():
        missing = [v for v in ("train_loss", "diverged") if v not in ds]
        if missing:
            raise ValueError(f"theorem_checks: experiment {exp!r} lacks variables {missing}")
        rows.append(_loss_row(exp, ds))
        rows.append(_diverged_row(exp, ds))
        one_lr = first_lr(ds)
        if one_lr.sizes.get("width", 1) >= 2:
            rows.extend(_width_rows(exp, one_lr))
        if one_lr.sizes.get("label_noise", 1) >= 2:
            rows.extend(_noise_rows(exp, one_lr))
    return pd.DataFrame(rows, columns=COLUMNS)


def _cell(value) -> str:
    if isinstance(value, float):
        text = "n/a" if np.isnan(value) else f"{value:.4g}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def checks_markdown(df: pd.DataFrame) -> str:
    """The checks table as a GitHub-flavoured markdown table (pipes in cells escaped)."""
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"
