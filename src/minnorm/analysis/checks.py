"""Theorem checks: the papers' claims measured on collected experiments, with computed verdicts.

Each check is declared once, as a `CheckSpec` in `CHECKS`: its claim, the statistic it
measures, its threshold, which experiments it applies to, and the function computing it. The
per-experiment table (`theorem_checks`), its files (results/<exp>/checks.{csv,md}) and the
summary over all experiments (results/checks.{csv,md}) are derived from that dict.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import rankdata

from minnorm.analysis.beyond import BEYOND_CHECKS
from minnorm.analysis.check_spec import COLUMNS, NOT_ENOUGH_SEEDS, CheckSpec, Outcome
from minnorm.analysis.collect import (
    converged,
    diverged_runs,
    final_by_width,
    final_values,
    first_lr,
    first_values,
    initial_values,
)
from minnorm.analysis.powerlaw import CI_LEVEL, N_BOOT, PowerLawFit, fit_power_law

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

__all__ = [
    "CHECKS",
    "CI_LEVEL",
    "COLUMNS",
    "CheckSpec",
    "N_BOOT",
    "NOT_ENOUGH_SEEDS",
    "Outcome",
    "PowerLawFit",
    "checks_markdown",
    "fit_power_law",
    "theorem_checks",
]


def every_experiment(_ds: xr.Dataset) -> bool:
    return True


def several_widths(ds: xr.Dataset) -> bool:
    """Two or more widths (at the first learning rate)."""
    return first_lr(ds).sizes.get("width", 1) >= 2


def several_noise_levels(ds: xr.Dataset) -> bool:
    """Two or more label-noise levels (at the first learning rate)."""
    return first_lr(ds).sizes.get("label_noise", 1) >= 2


# ---- width claims: fitted exponents of final values in m ----


def _final_by_width(ds: xr.Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Final converged `name` at the first lr and smallest label noise: widths (k,), values (k,
    seeds)."""
    sel = first_values(ds)
    return final_by_width(converged(sel[name], sel))


def _exponent(
    name: str, passes: Callable[[PowerLawFit], bool], uses_ci: bool, expected: str = ""
) -> Callable[[xr.Dataset], Outcome]:
    def evaluate(ds: xr.Dataset) -> Outcome:
        try:
            widths, values = _final_by_width(ds, name)
            fit = fit_power_law(widths, values)
        except (KeyError, ValueError) as exc:
            return Outcome(np.nan, "n/a", f"cannot fit: {exc}")
        if uses_ci and not fit.ci_defined:
            verdict = NOT_ENOUGH_SEEDS
        else:
            verdict = "pass" if passes(fit) else "fail"
        ci = (
            f"{fit.ci_text()} ({N_BOOT} bootstrap resamples of seeds per width)"
            if fit.ci_defined
            else fit.ci_text()
        )
        detail = (
            f"exponent {fit.exponent:.3f}, {ci}; widths {widths.min()}-{widths.max()}, "
            f"{values.shape[1]} seeds, lr {first_lr(ds).lr.item():g}{expected}"
        )
        return Outcome(fit.exponent, verdict, detail)

    return evaluate


# ---- runs: training loss and divergence ----


def _train_loss(ds: xr.Dataset) -> Outcome:
    loss = converged(ds["train_loss"], ds)
    ratio = (final_values(loss) / initial_values(loss)).values.ravel()
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size == 0:
        return Outcome(np.nan, "n/a", "no converged run")
    worst = float(ratio.max())
    return Outcome(
        worst,
        "pass" if worst < TRAIN_LOSS_MAX_RATIO else "fail",
        f"worst of {ratio.size} non-diverged runs; median {np.median(ratio):.3g}",
    )


def _diverged(ds: xr.Dataset) -> Outcome:
    runs = diverged_runs(ds)
    total = int(np.isfinite(ds["diverged"].values).sum())
    listed = "; ".join(", ".join(f"{k}={v:g}" for k, v in r.items()) for r in runs[:5])
    more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
    detail = f"{len(runs)} of {total} runs diverged" + (f": {listed}{more}" if runs else "")
    return Outcome(len(runs), "pass" if not runs else "fail", detail)


# ---- label-noise claims (Arora et al.): largest width, first lr, mean over seeds ----


def _noise_selection(ds: xr.Dataset) -> tuple[xr.Dataset, str]:
    sel = first_lr(ds)
    sel = sel.isel(width=-1) if "width" in sel.dims else sel
    return sel, f"width {sel.width.item()}, lr {sel.lr.item():g}, mean over seeds"


def _mean_final(sel: xr.Dataset, name: str) -> xr.DataArray:
    da = converged(sel[name], sel)
    da = final_values(da) if "step" in da.dims else da
    return da.mean("seed") if "seed" in da.dims else da


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; 0 when either input is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _error_rises(ds: xr.Dataset) -> Outcome:
    sel, where = _noise_selection(ds)
    error = _mean_final(sel, "test_error")
    noise = sel.label_noise.values
    ok = np.isfinite(error.values)
    if ok.sum() < 2:
        return Outcome(np.nan, "n/a", "fewer than two noise levels with a finite test error")
    rho = _spearman(noise[ok], error.values[ok])
    return Outcome(
        rho,
        "pass" if rho >= ERROR_NOISE_MIN_SPEARMAN else "fail",
        f"{ok.sum()} noise levels {noise[ok].min():g}-{noise[ok].max():g}; {where}",
    )


def _ratio(
    ratio_of: Callable[[xr.Dataset], xr.DataArray], limit: float
) -> Callable[[xr.Dataset], Outcome]:
    def evaluate(ds: xr.Dataset) -> Outcome:
        sel, where = _noise_selection(ds)
        r = ratio_of(sel).values
        if not np.isfinite(r).any():
            return Outcome(np.nan, "n/a", "no finite values")
        worst = int(np.nanargmax(r))
        verdict = "pass" if np.all(r[np.isfinite(r)] < limit) else "fail"
        return Outcome(
            float(r[worst]),
            verdict,
            f"largest ratio at label noise {sel.label_noise.values[worst]:g}; {where}",
        )

    return evaluate


_WIDTHS = (
    "experiments with two or more widths (first learning rate, first value of each swept "
    "setting, smallest label noise, final step, diverged runs excluded)"
)
_NOISE = (
    "experiments with two or more label-noise levels (largest width, first learning rate, "
    "first value of each swept setting, final step, mean over seeds)"
)

CHECKS: dict[str, CheckSpec] = {
    spec.name: spec
    for spec in (
        CheckSpec(
            "train_loss",
            "train loss reaches its floor (final / initial)",
            "largest final / initial training loss over the non-diverged runs",
            f"< {TRAIN_LOSS_MAX_RATIO:g} for every run",
            "every experiment (all runs)",
            every_experiment,
            _train_loss,
        ),
        CheckSpec(
            "diverged",
            "no run diverged (number diverged)",
            "number of diverged runs",
            "0",
            "every experiment (all runs); diverged runs are excluded from every other row",
            every_experiment,
            _diverged,
        ),
        CheckSpec(
            "dist_to_target",
            "||W(T)-W*|| decays in m (exponent of m)",
            "fitted exponent of the final ||W(T) - W*|| in m",
            f"<= {DIST_TO_TARGET_MAX_EXPONENT:.3f} and CI high < 0",
            _WIDTHS,
            several_widths,
            _exponent(
                "dist_to_target",
                lambda f: f.exponent <= DIST_TO_TARGET_MAX_EXPONENT and f.ci_high < 0,
                uses_ci=True,
                expected=f"; the flow theorem expects {DIST_TO_TARGET_EXPECTED_EXPONENT:.3f}",
            ),
            uses_ci=True,
        ),
        CheckSpec(
            "dist_from_init",
            "||W(T)-W0|| roughly constant in m (exponent of m)",
            "fitted exponent of the final ||W(T) - W0|| in m",
            f"|exponent| < {DIST_FROM_INIT_MAX_ABS_EXPONENT:g}",
            _WIDTHS,
            several_widths,
            _exponent(
                "dist_from_init",
                lambda f: abs(f.exponent) < DIST_FROM_INIT_MAX_ABS_EXPONENT,
                uses_ci=False,
            ),
        ),
        CheckSpec(
            "gap_linearized",
            "network-to-linearized gap shrinks in m (exponent of m)",
            "fitted exponent of the final RMS network-to-linearized gap in m",
            "< 0 and CI high < 0",
            _WIDTHS,
            several_widths,
            _exponent("gap_linearized", lambda f: f.exponent < 0 and f.ci_high < 0, uses_ci=True),
            uses_ci=True,
        ),
        CheckSpec(
            "error_rises",
            "test error rises with label noise (Spearman rho)",
            "Spearman rank correlation of the seed-mean final test error with p",
            f">= {ERROR_NOISE_MIN_SPEARMAN:g}",
            _NOISE,
            several_noise_levels,
            _error_rises,
        ),
        CheckSpec(
            "error_below_bound",
            "test error below sqrt(2 y^T H^-1 y / n) (error / bound)",
            "largest seed-mean test error / bound over the noise levels",
            f"< {ERROR_BOUND_MAX_RATIO:g} at every noise level",
            _NOISE,
            several_noise_levels,
            _ratio(
                lambda s: _mean_final(s, "test_error") / _mean_final(s, "arora_bound"),
                ERROR_BOUND_MAX_RATIO,
            ),
        ),
        CheckSpec(
            "dist_below_bound",
            "||W(T)-W0|| <= sqrt(y^T H^-1 y) (ratio)",
            "largest seed-mean ||W(T) - W0|| / sqrt(y^T H^-1 y) over the noise levels",
            f"< {DIST_FROM_INIT_BOUND_SLACK:g} at every noise level",
            _NOISE,
            several_noise_levels,
            _ratio(
                lambda s: _mean_final(s, "dist_from_init") / np.sqrt(_mean_final(s, "yHy")),
                DIST_FROM_INIT_BOUND_SLACK,
            ),
        ),
        # Beyond the paper: the studies' claims (minnorm.analysis.beyond), after the papers' own.
        *BEYOND_CHECKS,
    )
}


def theorem_checks(collected: dict[str, xr.Dataset]) -> pd.DataFrame:
    """One row per (experiment, applicable check), in registry order; columns `COLUMNS`."""
    rows: list[dict] = []
    for exp, ds in collected.items():
        missing = [v for v in ("train_loss", "diverged") if v not in ds]
        if missing:
            raise ValueError(f"theorem_checks: experiment {exp!r} lacks variables {missing}")
        rows.extend(spec.row(exp, ds) for spec in CHECKS.values() if spec.applies(ds))
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


# Background of each verdict's cell in the HTML table (light, readable in print and for the
# colour-blind thanks to the verdict text itself).
VERDICT_COLORS = {
    "pass": "#d5f5dd",
    "fail": "#fbd3d0",
    "n/a": "#eeeeee",
    NOT_ENOUGH_SEEDS: "#fff2c2",
}
# Scoped to the table's class, so including the table in a report caption styles nothing else.
_STYLE = (
    "<style>table.minnorm-checks th, table.minnorm-checks td "
    "{padding: 2px 6px; text-align: left; vertical-align: top}</style>"
)


def checks_html(df: pd.DataFrame) -> str:
    """The checks table as an HTML <table> fragment (numbers as in the markdown, verdicts coloured).

    Included verbatim in the Snakemake report's captions, so the verdicts are on the page.
    """
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for column, value in zip(df.columns, row, strict=True):
            text = html.escape(_cell(value).replace("\\|", "|"))
            style = ""
            if column == "verdict":  # dark text: the report's side panel inverts text colours
                style = (
                    f' style="background:{VERDICT_COLORS.get(value, "#ffffff")};'
                    'color:#111111;font-weight:bold"'
                )
            cells.append(f"<td{style}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        _STYLE + '\n<table class="minnorm-checks" border="1" style="border-collapse:collapse">\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
    )


def checks_text(df: pd.DataFrame) -> tuple[str, str, str]:
    """(CSV, markdown, HTML) of a checks table; all rendered before any is written."""
    return df.to_csv(index=False), checks_markdown(df), checks_html(df)


# ---- files: results/<exp>/checks.{csv,md} per experiment, results/checks.{csv,md} summary ----


def read_checks_csv(path: str | Path) -> pd.DataFrame:
    """A checks CSV written by `write_checks` (strings kept as written: "n/a" stays text).

    Raises ValueError naming the file when its columns are not `COLUMNS`.
    """
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values={"measured": [""]}, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"checks file {str(path)!r} cannot be read: {error}") from error
    if list(df.columns) != COLUMNS:
        raise ValueError(
            f"checks file {str(path)!r} has columns {list(df.columns)}, expected {COLUMNS}"
        )
    df["measured"] = df["measured"].astype(float)
    return df


def write_checks(
    df: pd.DataFrame, out_csv: str | Path, out_md: str | Path, out_html: str | Path
) -> None:
    """Write a checks table as CSV, markdown and HTML, each atomically; render all before
    writing."""
    from minnorm.io.files import write_text_atomic

    for text, out in zip(checks_text(df), (out_csv, out_md, out_html), strict=True):
        write_text_atomic(text, out)


def experiment_checks(exp: str, collected_file: str | Path) -> pd.DataFrame:
    """The checks table of one experiment from its collected file."""
    with xr.open_dataset(collected_file, engine="netcdf4") as opened:
        ds = opened.load()
    return theorem_checks({exp: ds})


def summary_checks(results: str | Path, first: list[str] = ()) -> pd.DataFrame:
    """Every experiment's checks found as `results/<exp>/checks.csv`, one table.

    Experiments named in `first` (the current config's, in config order) come first, then every
    other experiment with a checks file, by name: running one config never drops another's rows.
    """
    files = {path.parent.name: path for path in sorted(Path(results).glob("*/checks.csv"))}
    order = [exp for exp in first if exp in files] + [exp for exp in files if exp not in first]
    frames = [read_checks_csv(files[exp]) for exp in order]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)
