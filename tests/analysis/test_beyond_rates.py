"""Tests for minnorm.analysis.beyond.rates (rate tightness, gd vs flow) and its figures, on
synthetic
collected Datasets with closed-form power laws."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from minnorm.analysis.beyond import rates
from minnorm.analysis.check_spec import NOT_ENOUGH_SEEDS
from minnorm.analysis.checks import CHECKS, theorem_checks
from minnorm.analysis.powerlaw import fit_power_law
from minnorm.config.sweep import SETTING_ATTR

WIDTHS = 2 ** np.arange(7, 15)  # 8 widths, median 1536: upper half 2^11..2^14
SIGMA = 0.03  # per-run lognormal spread
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _seed_noise(n_seeds: int, width: int) -> np.ndarray:
    """Zero-mean (within the width) log-noise, so geometric seed means are exact."""
    if n_seeds == 1:
        return np.zeros(1)
    z = np.random.default_rng(int(width)).standard_normal(n_seeds)
    return SIGMA * (z - z.mean()) / z.std()


def _log_dist(widths: np.ndarray, slope_at) -> np.ndarray:
    """log d(m) with local exponent slope_at(log2 m): integral of slope_at d(log m), from m=2^7."""
    l_grid = np.linspace(7, 20, 13001)
    integral = np.concatenate([[0.0], np.cumsum(np.diff(l_grid) * slope_at(l_grid[:-1] + 0.0005))])
    return np.log(2.0) * np.interp(np.log2(widths), l_grid, integral)


def dataset(
    widths=WIDTHS,
    seeds=(0, 1, 2, 3),
    lrs=(0.02,),
    slope_at=lambda log2m: -0.25 + 0 * log2m,
    lr_exponent=None,
    lr_level=lambda lr: 1.0,
    kappas=None,
) -> xr.Dataset:
    """A collected Dataset (contract dims width, seed, label_noise, lr, [model_kappa,] step).

    Final dist_to_target = level(lr) * exp(log_dist(m)) * seed noise; with `lr_exponent(lr)` the
    law is m^lr_exponent(lr) instead. Steps per lr: 100 / lr, 10 points each (grids differ and
    are NaN-padded in the union). The trajectory falls linearly to the final value.
    """
    widths, seeds, lrs = np.asarray(widths), np.asarray(seeds), np.asarray(lrs, float)
    grids = {lr: np.linspace(0, round(100 / lr), 11).astype(np.int64) for lr in lrs}
    steps = np.unique(np.concatenate(list(grids.values())))
    kap = [1.0] if kappas is None else list(kappas)
    shape = (len(widths), len(seeds), 2, len(lrs), len(kap), len(steps))
    dist = np.full(shape, np.nan)
    for i, w in enumerate(widths):
        noise = np.exp(_seed_noise(len(seeds), w))
        for k, lr in enumerate(lrs):
            if lr_exponent is None:
                base = np.exp(_log_dist(np.array([w]), slope_at))[0]
            else:
                base = (w / widths[0]) ** lr_exponent(lr)
            grid = grids[lr]
            where = np.searchsorted(steps, grid)
            for q, _kappa in enumerate(kap):
                final = lr_level(lr) * base * noise * (1.0 if q == 0 else 10.0)  # (seeds,)
                traj = final[:, None] * (1 + (grid[-1] - grid) / grid[-1])[None, :]
                for n in range(2):  # label noise 1.0 is 3x further away: must be ignored
                    dist[i, :, n, k, q][:, where] = traj * (1 + 2 * n)
    dims = ("width", "seed", "label_noise", "lr", "model_kappa", "step")
    run_dims = dims[:-1]
    ds = xr.Dataset(
        {
            "dist_to_target": (dims, dist),
            "train_loss": (dims, dist**2 * 1e-3),
            "diverged": (run_dims, np.zeros(shape[:-1])),
        },
        coords={
            "width": widths.astype(np.int64),
            "seed": seeds.astype(np.int64),
            "label_noise": [0.0, 1.0],
            "lr": lrs,
            "model_kappa": ("model_kappa", kap, {SETTING_ATTR: "model.kappa"}),
            "step": steps,
        },
        attrs={"experiment": "synth"},
    )
    return ds if kappas is not None else ds.isel(model_kappa=0, drop=True)


def steepening(log2m):
    """Local exponent -0.25 at m = 2^7 falling linearly to -0.5 at 2^14 (trend -1/28 per
    doubling)."""
    return -0.25 - 0.25 * (log2m - 7) / 7


def evaluate(name: str, ds: xr.Dataset):
    return CHECKS[name].evaluate(ds)


# ---- study 1 ----


def test_local_slopes_recover_a_steepening_law_and_equal_two_width_fits():
    ds = dataset(slope_at=steepening)
    r = rates.rate_tightness(ds)
    mids = np.log2(np.sqrt(WIDTHS[:-1] * WIDTHS[1:]))
    np.testing.assert_allclose(r.local.slopes, steepening(mids), atol=1e-6)
    assert r.local.trend == pytest.approx(-0.25 / 7, abs=1e-6)
    assert r.local.ci_defined and r.local.trend_ci_low < -0.25 / 7 < r.local.trend_ci_high < 0
    assert np.all(r.local.ci_low < r.local.slopes) and np.all(r.local.slopes < r.local.ci_high)
    # The local slope is fit_power_law on the two widths (mean of logs).
    for j in range(len(WIDTHS) - 1):
        pair = fit_power_law(r.widths[j : j + 2], r.values[j : j + 2])
        assert r.local.slopes[j] == pytest.approx(pair.exponent, abs=1e-12)
    np.testing.assert_array_equal(r.upper_widths, [2048, 4096, 8192, 16384])
    assert r.upper.exponent == pytest.approx(steepening(12.5), abs=1e-3)


def test_trend_check_passes_when_steepening_fails_for_a_pure_quarter_law():
    steep, flat = (
        evaluate("local_slope_trend", dataset(slope_at=steepening)),
        evaluate("local_slope_trend", dataset()),
    )
    assert steep.verdict == "pass" and steep.measured == pytest.approx(-0.25 / 7, abs=1e-6)
    assert flat.verdict == "fail" and flat.measured == pytest.approx(0.0, abs=1e-6)
    assert "trend of the local slope per doubling of m: -0.0357" in steep.detail
    assert "upper-half exponent (widths 2048, 4096, 8192, 16384)" in steep.detail
    assert "4 seeds" in steep.detail and "lr 0.02" in steep.detail


def test_upper_exponent_checks_flip_with_the_large_m_law():
    # -1/4 throughout: -1/4 inside, -1/2 outside.
    quarter = dataset()
    assert evaluate("upper_exponent_quarter", quarter).verdict == "pass"
    assert evaluate("upper_exponent_half", quarter).verdict == "fail"
    assert evaluate("upper_exponent_quarter", quarter).measured == pytest.approx(-0.25, abs=1e-6)
    # Steepening to -1/2 by m = 2^10.5, -1/2 beyond: the upper half sees -1/2 only.
    half = dataset(slope_at=lambda log2m: np.maximum(-0.25 - 0.25 * (log2m - 7) / 3.5, -0.5))
    assert evaluate("upper_exponent_quarter", half).verdict == "fail"
    assert evaluate("upper_exponent_half", half).verdict == "pass"
    assert evaluate("local_slope_trend", half).verdict == "pass"


def test_one_seed_gives_not_enough_seeds_and_undefined_cis():
    ds = dataset(seeds=(0,), slope_at=steepening)
    r = rates.rate_tightness(ds)
    assert not r.local.ci_defined and np.isnan(r.local.ci_low).all()
    assert np.isnan(r.local.trend_ci_high) and not r.upper.ci_defined
    for name in ("local_slope_trend", "upper_exponent_quarter", "upper_exponent_half"):
        out = evaluate(name, ds)
        assert out.verdict == NOT_ENOUGH_SEEDS and np.isfinite(out.measured)
        assert "CIs undefined" in out.detail


def test_study1_applies_from_four_widths_and_drops_fully_diverged_widths():
    assert not CHECKS["local_slope_trend"].applies(dataset(widths=WIDTHS[:3]))
    assert CHECKS["local_slope_trend"].applies(dataset(widths=WIDTHS[:4]))
    ds = dataset(slope_at=steepening)
    ds["diverged"][dict(width=2, lr=0)] = 1.0  # every seed at m = 512, first lr
    ds["diverged"][dict(width=5, seed=1, lr=0)] = 1.0  # one seed at m = 4096
    ds["dist_to_target"][dict(width=5, seed=1, lr=0)] = 1e6  # must not be read
    r = rates.rate_tightness(ds)
    assert 512 not in r.widths and len(r.widths) == 7
    assert r.local.slopes[1] == pytest.approx(
        (r.local.log_means[2] - r.local.log_means[1]) / np.log(1024 / 256)
    )
    assert np.nanmax(r.values) < 1e3


def test_study1_needs_three_widths_and_the_variable():
    out = evaluate("local_slope_trend", dataset(widths=WIDTHS[:2]))
    assert out.verdict == "n/a" and "three or more widths" in out.detail
    assert evaluate("upper_exponent_half", dataset().drop_vars("dist_to_target")).verdict == "n/a"


# ---- study 2 ----

LRS = (0.005, 0.01, 0.02, 0.04)


def test_lr_exponents_and_levels_are_recovered_across_different_step_grids():
    ds = dataset(
        widths=WIDTHS[1:],
        seeds=(0, 1, 2),
        lrs=LRS,
        lr_exponent=lambda lr: -0.25,
        lr_level=lambda lr: 1 + 10 * lr,
    )
    assert np.isnan(
        ds["dist_to_target"].isel(lr=-1, width=0, seed=0, label_noise=0).values[-1]
    )  # the largest lr ends before the union grid does
    s = rates.lr_scaling(ds)
    for fit in s.fits:
        assert fit.exponent == pytest.approx(-0.25, abs=1e-9)
    np.testing.assert_allclose(s.ratios[:, -1], [(1 + 10 * lr) / 1.05 for lr in LRS])
    out = evaluate("lr_exponents_agree", ds)
    assert out.verdict == "pass" and out.measured == pytest.approx(0.0, abs=1e-9)
    assert "lr 0.005: exponent -0.250 [" in out.detail
    assert f"level at m = {WIDTHS[-1]}" in out.detail and "lr 0.04 1.333" in out.detail


def test_lr_exponents_disagree_when_the_step_size_changes_the_exponent():
    ds = dataset(widths=WIDTHS[1:], seeds=(0, 1, 2), lrs=LRS, lr_exponent=lambda lr: -0.2 - 5 * lr)
    out = evaluate("lr_exponents_agree", ds)
    assert out.verdict == "fail" and out.measured == pytest.approx(5 * (0.04 - 0.005), abs=1e-9)
    assert not rates.cis_overlap(list(rates.lr_scaling(ds).fits))


def test_lr_check_applies_needs_seeds_and_ignores_other_settings():
    spec = CHECKS["lr_exponents_agree"]
    assert not spec.applies(dataset(widths=WIDTHS[:4]))  # one lr
    assert not spec.applies(dataset(widths=WIDTHS[:2], lrs=LRS))
    assert spec.applies(dataset(widths=WIDTHS[:3], lrs=LRS[:2]))
    one = evaluate(
        "lr_exponents_agree",
        dataset(widths=WIDTHS[:4], seeds=(0,), lrs=LRS, lr_exponent=lambda lr: -0.2 - 5 * lr),
    )
    assert one.verdict == NOT_ENOUGH_SEEDS and "CI undefined" in one.detail
    # The second kappa (10x further, same exponents) is not read; the first kappa is.
    kap = dataset(
        widths=WIDTHS[:4],
        lrs=LRS[:2],
        kappas=(0.1, 1.0),
        lr_exponent=lambda lr: -0.25,
        lr_level=lambda lr: 1 + 10 * lr,
    )
    s = rates.lr_scaling(kap)
    np.testing.assert_allclose(s.ratios[:, 0], [1.0, 1.1 / 1.05])
    assert np.exp(s.log_means[0, 0]) == pytest.approx(1.05)


def test_theorem_checks_rows_for_a_lr_sweep():
    ds = dataset(lrs=LRS, slope_at=steepening).isel(label_noise=[0])  # no Arora noise rows
    table = theorem_checks({"gd_vs_flow": ds}).set_index("claim")
    names = {
        CHECKS[n].claim: n
        for n in (
            "local_slope_trend",
            "upper_exponent_quarter",
            "upper_exponent_half",
            "lr_exponents_agree",
        )
    }
    for claim, name in names.items():
        assert claim in table.index, name
    assert table.loc[CHECKS["local_slope_trend"].claim, "verdict"] == "pass"
    assert table.loc[CHECKS["lr_exponents_agree"].claim, "verdict"] == "pass"


# ---- figures ----


def _files_ok(tmp_path, name):
    png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000


def test_rate_tightness_figure_returns_the_check_numbers(tmp_path):
    from minnorm.figures.rates import plot_rate_tightness

    ds = dataset(slope_at=steepening)
    lines = plot_rate_tightness(ds, tmp_path / "r.png", tmp_path / "r.pdf")
    _files_ok(tmp_path, "r")
    r = rates.rate_tightness(ds)
    assert lines == rates.rate_lines(r)
    assert any(line.startswith("local slope m = 128-256: -0.268 [") for line in lines)
    assert f"{r.upper.exponent:.3f} [{r.upper.ci_low:.3f}, {r.upper.ci_high:.3f}]" in lines[-3]
    assert evaluate("local_slope_trend", ds).detail == "; ".join(lines)


def test_rate_tightness_figure_with_one_seed_and_too_few_widths(tmp_path):
    from minnorm.figures.rates import plot_rate_tightness

    lines = plot_rate_tightness(
        dataset(widths=WIDTHS[:3], seeds=(0,)), tmp_path / "r.png", tmp_path / "r.pdf"
    )
    _files_ok(tmp_path, "r")
    assert "CI undefined" in lines[0]
    with pytest.raises(ValueError, match="figure 'rate_tightness'.*three or more widths.*has 2"):
        plot_rate_tightness(dataset(widths=WIDTHS[:2]), tmp_path / "x.png", tmp_path / "x.pdf")
    assert not (tmp_path / "x.png").exists()


def test_gd_vs_flow_figure_lines_and_errors(tmp_path):
    from minnorm.figures.rates import plot_gd_vs_flow

    ds = dataset(
        widths=WIDTHS[1:],
        seeds=(0, 1, 2),
        lrs=LRS,
        lr_exponent=lambda lr: -0.2 - 5 * lr,
        lr_level=lambda lr: 1 + 10 * lr,
    )
    ds["diverged"][dict(width=0, seed=0, lr=3)] = 1.0
    lines = plot_gd_vs_flow(ds, tmp_path / "g.png", tmp_path / "g.pdf")
    _files_ok(tmp_path, "g")
    assert lines[0].startswith("lr 0.005: exponent -0.225 [") and lines[3].startswith(
        "lr 0.04: exponent -0.400 ["
    )
    assert lines == rates.lr_lines(rates.lr_scaling(ds))
    with pytest.raises(ValueError, match="figure 'gd_vs_flow'.*two or more learning rates"):
        plot_gd_vs_flow(dataset(), tmp_path / "x.png", tmp_path / "x.pdf")
    dead = ds.copy()
    dead["diverged"] = dead["diverged"] * 0 + 1
    with pytest.raises(ValueError, match="figure 'gd_vs_flow'.*has 0"):
        plot_gd_vs_flow(dead, tmp_path / "x.png", tmp_path / "x.pdf")
