"""Tests for minnorm.analysis.beyond.rates (rate tightness, gd vs flow) and its figures, on
synthetic collected Datasets with closed-form power laws."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from minnorm.analysis.beyond import rates
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


def evaluate(name: str, ds: xr.Dataset, setting: str = "label_noise=0"):
    """The outcome of check `name` for one combination of swept values."""
    outs = {o.setting: o for o in CHECKS[name].evaluate(ds)}
    return outs[setting]


def first(ds: xr.Dataset) -> xr.Dataset:
    """The slice at the first lr and label noise (dims width, seed)."""
    return ds.isel(lr=0, label_noise=0)


# ---- study 1 ----


def test_local_slopes_recover_a_steepening_law_and_equal_two_width_fits():
    r = rates.rate_tightness(first(dataset(slope_at=steepening)))
    mids = np.log2(np.sqrt(WIDTHS[:-1] * WIDTHS[1:]))
    slopes = np.array([f.exponent for f in r.local])
    np.testing.assert_allclose(slopes, steepening(mids), atol=1e-6)
    assert all(f.ci_low < f.exponent < f.ci_high for f in r.local)
    # Exact quadratic in log m: the curvature is the change of the local slope per doubling.
    assert r.curvature.estimate == pytest.approx(-0.25 / 7, abs=1e-6)
    np.testing.assert_array_equal(r.upper.widths, [2048, 4096, 8192, 16384])
    assert r.upper.exponent == pytest.approx(steepening(12.5), abs=1e-3)
    for j, fit in enumerate(r.local):
        pair = r.data.subset(np.isin(r.data.m, WIDTHS[j : j + 2]))
        assert fit.exponent == pytest.approx(fit_power_law(pair.m, pair.values).exponent)


def test_upper_exponent_claims_follow_the_large_m_law():
    quarter = dataset()
    assert evaluate("upper_exponent_quarter", quarter).verdict == "supported"
    assert evaluate("upper_exponent_half", quarter).verdict == "contradicted"
    assert evaluate("upper_exponent_quarter", quarter).measured == pytest.approx(-0.25, abs=1e-6)
    # Steepening to -1/2 by m = 2^10.5, -1/2 beyond: the upper half sees -1/2 only.
    half = dataset(slope_at=lambda log2m: np.maximum(-0.25 - 0.25 * (log2m - 7) / 3.5, -0.5))
    assert evaluate("upper_exponent_quarter", half).verdict == "contradicted"
    assert evaluate("upper_exponent_half", half).verdict == "supported"
    steep = evaluate("local_slope_curvature", dataset(slope_at=steepening))
    assert steep.verdict == "no verdict" and steep.measured == pytest.approx(-0.25 / 7, abs=1e-6)
    assert "upper-half exponent (widths 2048, 4096, 8192, 16384)" in steep.detail
    assert "4 seeds" in steep.detail and "lr 0.02" in steep.detail


def test_study1_rows_come_per_label_noise_and_name_it():
    outs = CHECKS["upper_exponent_quarter"].evaluate(dataset())
    assert [o.setting for o in outs] == ["label_noise=0", "label_noise=1"]
    # The noisier labels are 3x further away at every width: the same exponent.
    assert outs[0].measured == pytest.approx(outs[1].measured, abs=1e-9)


def test_one_seed_still_gives_intervals_from_the_spread_around_the_fit():
    r = rates.rate_tightness(first(dataset(seeds=(0,), slope_at=steepening)))
    assert r.upper.ci_defined and r.curvature.ci_defined
    assert not any(f.ci_defined for f in r.local)  # two widths, one run each: nothing left


def test_study1_applies_from_six_widths_and_drops_fully_diverged_widths():
    assert not CHECKS["upper_exponent_quarter"].applies(dataset(widths=WIDTHS[:5]))
    assert CHECKS["upper_exponent_quarter"].applies(dataset(widths=WIDTHS[:6]))
    ds = dataset(slope_at=steepening)
    ds["diverged"][dict(width=2, lr=0)] = 1.0  # every seed at m = 512, first lr
    ds["diverged"][dict(width=5, seed=1, lr=0)] = 1.0  # one seed at m = 4096
    ds["dist_to_target"][dict(width=5, seed=1, lr=0)] = 1e6  # must not be read
    r = rates.rate_tightness(first(ds))
    assert 512 not in r.widths and len(r.widths) == 7
    assert r.local[1].exponent == pytest.approx(
        (r.log_means[2] - r.log_means[1]) / np.log(1024 / 256)
    )
    assert np.nanmax(r.data.values) < 1e3


def test_study1_needs_six_widths_and_the_variable():
    out = evaluate("upper_exponent_quarter", dataset(widths=WIDTHS[:3]))
    assert out.verdict == "n/a" and "6 or more widths" in out.detail
    assert evaluate("upper_exponent_half", dataset().drop_vars("dist_to_target")).verdict == "n/a"


# ---- study 2 ----

LRS = (0.005, 0.01, 0.02, 0.04)


def test_lr_exponents_and_paired_levels_are_recovered_across_different_step_grids():
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
    s = rates.lr_scaling(ds.isel(label_noise=0))
    for fit in s.fits:
        assert fit.exponent == pytest.approx(-0.25, abs=1e-9)
    for c in s.comparisons:
        assert c.difference.exponent == pytest.approx(0.0, abs=1e-9)
        assert np.exp(c.level.estimate) == pytest.approx((1 + 10 * c.lr) / 1.05)
        assert c.ratio_width == WIDTHS[-1]
    out = evaluate("lr_exponent_difference", ds, "label_noise=0, lr=0.04 vs lr=0.005")
    assert out.verdict == "supported" and out.measured == pytest.approx(0.0, abs=1e-9)
    level = evaluate("lr_level_difference", ds, "label_noise=0, lr=0.04 vs lr=0.005")
    assert level.verdict == "no verdict" and f"ratio {1.4 / 1.05:.4f}" in level.detail


def test_paired_differences_find_an_exponent_that_moves_with_the_step_size():
    ds = dataset(widths=WIDTHS[1:], seeds=(0, 1, 2), lrs=LRS, lr_exponent=lambda lr: -0.2 - 5 * lr)
    outs = CHECKS["lr_exponent_difference"].evaluate(ds)
    first_noise = [o for o in outs if o.setting.startswith("label_noise=0,")]
    assert [o.setting.split(", ")[1] for o in first_noise] == [
        "lr=0.01 vs lr=0.005",
        "lr=0.02 vs lr=0.005",
        "lr=0.04 vs lr=0.005",
    ]
    diffs = [o.measured for o in first_noise]
    assert diffs == pytest.approx([-5 * (lr - 0.005) for lr in LRS[1:]], abs=1e-9)
    assert [o.verdict for o in first_noise] == ["contradicted"] * 3


def test_pairing_removes_the_noise_the_runs_share():
    """Seed noise that is the same at every lr (shared W0 and data) cancels in the paired ratio:
    the difference's interval is far narrower than either exponent's."""
    ds = dataset(widths=WIDTHS[1:], seeds=(0, 1, 2), lrs=LRS[:2], lr_exponent=lambda lr: -0.25)
    rng = np.random.default_rng(0)
    shared = np.exp(0.2 * rng.standard_normal((ds.sizes["width"], ds.sizes["seed"])))
    ds["dist_to_target"] = ds["dist_to_target"] * xr.DataArray(shared, dims=("width", "seed"))
    s = rates.lr_scaling(ds.isel(label_noise=0))
    c = s.comparisons[0]
    assert c.difference.ci_high - c.difference.ci_low < 1e-6
    assert s.fits[0].ci_high - s.fits[0].ci_low > 0.05


def test_lr_check_applies_and_reads_every_setting():
    spec = CHECKS["lr_exponent_difference"]
    assert not spec.applies(dataset(widths=WIDTHS[:4]))  # one lr
    assert not spec.applies(dataset(widths=WIDTHS[:2], lrs=LRS))
    assert spec.applies(dataset(widths=WIDTHS[:3], lrs=LRS[:2]))
    kap = dataset(
        widths=WIDTHS[:4],
        lrs=LRS[:2],
        kappas=(0.1, 1.0),
        lr_exponent=lambda lr: -0.25,
        lr_level=lambda lr: 1 + 10 * lr,
    )
    settings = [o.setting for o in spec.evaluate(kap)]
    assert settings == [
        f"label_noise={p:g}, model_kappa={k:g}, lr=0.01 vs lr=0.005"
        for p in (0.0, 1.0)
        for k in (0.1, 1.0)
    ]


def test_theorem_checks_rows_for_a_lr_sweep():
    ds = dataset(lrs=LRS, slope_at=steepening).isel(label_noise=[0])
    table = theorem_checks({"gd_vs_flow": ds})
    for name in (
        "local_slope_curvature",
        "upper_exponent_quarter",
        "upper_exponent_half",
        "lr_exponent_difference",
        "lr_level_difference",
    ):
        assert (table.check == name).any(), name
    diff = table[table.check == "lr_exponent_difference"]
    assert set(diff.verdict) == {"supported"} and len(diff) == 3
    # study 1 runs once per lr: no first lr picked silently
    assert list(table[table.check == "upper_exponent_quarter"].setting) == [
        f"lr={lr:g}" for lr in LRS
    ]


# ---- figures ----


def _files_ok(tmp_path, name):
    png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000


def test_rate_tightness_figure_returns_the_check_numbers(tmp_path):
    from minnorm.figures.rates import plot_rate_tightness

    ds = dataset(slope_at=steepening).isel(label_noise=[0])
    lines = plot_rate_tightness(ds, tmp_path / "r.png", tmp_path / "r.pdf")
    _files_ok(tmp_path, "r")
    r = rates.rate_tightness(first(ds))
    assert lines == rates.rate_lines(r)
    assert any(line.startswith("local slope m = 128-256: -0.268, ") for line in lines)
    assert f"{r.upper.exponent:.3f}, 90% CI" in lines[-3]
    detail = evaluate("local_slope_curvature", ds, "").detail
    assert "; ".join(lines[:-1]) in detail


def test_rate_tightness_figure_with_one_seed_and_too_few_widths(tmp_path):
    from minnorm.figures.rates import plot_rate_tightness

    lines = plot_rate_tightness(
        dataset(widths=WIDTHS[:3], seeds=(0,)), tmp_path / "r.png", tmp_path / "r.pdf"
    )
    _files_ok(tmp_path, "r")
    assert "no interval" in lines[0]
    with pytest.raises(ValueError, match="figure 'rate_tightness'.*3 or more widths.*has 2"):
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
    ).isel(label_noise=[0])
    ds["diverged"][dict(width=0, seed=0, lr=3)] = 1.0
    lines = plot_gd_vs_flow(ds, tmp_path / "g.png", tmp_path / "g.pdf")
    _files_ok(tmp_path, "g")
    assert lines[0].startswith("lr 0.005: exponent -0.225, 90% CI")
    assert lines[3].startswith("lr 0.04: exponent -0.400, 90% CI")
    assert lines == rates.lr_lines(rates.lr_scaling(ds.isel(label_noise=0)))
    with pytest.raises(ValueError, match="figure 'gd_vs_flow'.*two or more learning rates"):
        plot_gd_vs_flow(dataset(), tmp_path / "x.png", tmp_path / "x.pdf")
    dead = ds.copy()
    dead["diverged"] = dead["diverged"] * 0 + 1
    with pytest.raises(ValueError, match="figure 'gd_vs_flow'.*has 0"):
        plot_gd_vs_flow(dead, tmp_path / "x.png", tmp_path / "x.pdf")
