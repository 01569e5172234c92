"""Tests for minnorm.analysis.beyond.lazy and the lazy_phase figure: beta of a known collapse onto
kappa m^beta is recovered with an interval over the units (data draws, else seeds), and the claim
beta = 1/2 follows it."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import xarray as xr

from minnorm.analysis.beyond import lazy
from minnorm.analysis.checks import CHECKS
from minnorm.figures import FIGURES

KAPPAS = (0.01, 0.03, 0.1, 0.3, 1.0)
WIDTHS = tuple(2**k for k in range(8, 15))
TARGET_NORM = 10.0
STEPS = np.array([0, 2500, 5000])
# Exact collapse: log g = A + B x + C x^2 with x = log(kappa sqrt m), decreasing on the grid, so
# a degree-2 fit recovers it exactly; it crosses 0.1 at x = (-B - sqrt(B^2 - 4 C (A - log 0.1))) /
# 2C.
A, B, C = -0.3, -0.5, -0.05


def collapse_truth(kappa: float, width: int, beta: float = 0.5) -> float:
    x = np.log(kappa * width**beta)
    return float(np.exp(A + B * x + C * x * x))


def kappa_only_truth(kappa: float, width: int) -> float:
    return 0.5 * kappa**-0.3


def width_only_truth(kappa: float, width: int) -> float:
    return 3.0 * width**-0.25


def lazy_dataset(
    rel: Callable[[float, int], float],
    kappas=KAPPAS,
    widths=WIDTHS,
    seeds=(0, 1),
    seed_sigma: float = 0.02,
    extra_settings: dict | None = None,
    cell_sigma: float = 0.0,
) -> xr.Dataset:
    """A collected Dataset with the contract dims: final ||W-W*|| = TARGET_NORM * rel *
    exp(+-seed_sigma) (seed 0 up, seed 1 down) * exp(cell_sigma z) (z independent per run),
    flips = 0.2 * rel; other setting dims repeat the same values."""
    settings = {"model_kappa": list(kappas), **(extra_settings or {})}
    names = sorted(settings)
    run_dims = ("width", "seed", "label_noise", "lr", *names)
    shape = (len(widths), len(seeds), 1, 1, *(len(settings[n]) for n in names))
    kidx = names.index("model_kappa")
    final = np.empty(shape)
    noise = np.exp(cell_sigma * np.random.default_rng(11).standard_normal(shape))
    for idx in np.ndindex(shape):
        k, w, s = kappas[idx[4 + kidx]], widths[idx[0]], idx[1]
        final[idx] = rel(k, w) * np.exp(seed_sigma * (1 if s % 2 == 0 else -1)) * noise[idx]
    decay = np.array([1.0, 0.3, 0.0])
    dist = TARGET_NORM * (final[..., None] + (1 - final[..., None]) * decay)
    flips = 0.2 * final[..., None] * (1 - decay)
    coords = {
        "width": np.array(widths, dtype=np.int64),
        "seed": np.array(seeds, dtype=np.int64),
        "label_noise": [0.0],
        "lr": [0.02],
        "step": STEPS,
    }
    for n in names:
        coords[n] = xr.DataArray(
            np.array(settings[n]), dims=n, attrs={"sweep_key": n.replace("_", ".", 1)}
        )
    traj = run_dims + ("step",)
    ds = xr.Dataset(
        {
            "dist_to_target": (traj, dist),
            "activation_flip_fraction": (traj, flips),
            "train_loss": (traj, dist**2 / 100),
            "target_norm": (run_dims, np.full(shape, TARGET_NORM)),
            "diverged": (run_dims, np.zeros(shape)),
            "diverged_step": (run_dims, np.full(shape, -1.0)),
        },
        coords=coords,
    )
    ds.attrs.update(
        experiment="lazy_synth", config=json.dumps({"model": {"kappa": 1.0, "bias": True}})
    )
    return ds


def _evaluate(ds: xr.Dataset, setting: str = ""):
    return {o.setting: o for o in CHECKS["lazy_beta"].evaluate(ds)}[setting]


@pytest.mark.parametrize("beta", [0.5, 0.3, 0.8])
def test_beta_of_a_known_collapse_is_recovered(beta):
    ds = lazy_dataset(lambda k, w: collapse_truth(k, w, beta))
    b = lazy.lazy_beta(ds.isel(lr=0, label_noise=0))
    assert b.estimate.estimate == pytest.approx(beta, abs=1e-3)
    assert b.units == "seed" and b.unit_betas.size == 2 and b.estimate.conditional
    assert b.collapse.collapse.r2 == pytest.approx(1.0, abs=1e-6)
    out = _evaluate(ds)
    assert out.verdict == ("supported" if beta == 0.5 else "contradicted")
    assert "per seed: " in out.detail and "1 data draw x 2 seeds" in out.detail


def test_noisy_cells_over_data_draws_give_a_t_interval_over_the_draws():
    draws = {"data_seed": [0, 1, 2, 3]}
    ds = lazy_dataset(collapse_truth, cell_sigma=0.1, extra_settings=draws)
    b = lazy.lazy_beta(ds.isel(lr=0, label_noise=0))
    assert b.units == "data draw" and b.unit_betas.size == 4 and not b.estimate.conditional
    mean, sd = b.unit_betas.mean(), b.unit_betas.std(ddof=1)
    half = 3.182446305284263 * sd / 2  # t_{0.975, 3} sd / sqrt(4)
    assert (b.estimate.ci_low, b.estimate.ci_high) == pytest.approx((mean - half, mean + half))
    assert b.estimate.ci_low < 0.5 < b.estimate.ci_high
    assert "4 data draws x 2 seeds" in _evaluate(ds).detail


@pytest.mark.parametrize(
    ("truth", "low", "high"), [(kappa_only_truth, -0.5, 0.05), (width_only_truth, 1.5, 2.0)]
)
def test_a_single_variable_truth_contradicts_beta_one_half(truth, low, high):
    ds = lazy_dataset(truth, cell_sigma=0.01)
    out = _evaluate(ds)
    assert low <= out.measured <= high and out.verdict == "contradicted"


def test_grid_means_over_seeds_and_matches_truth():
    grid = lazy.lazy_grid(lazy_dataset(collapse_truth, seed_sigma=0.1).isel(lr=0, label_noise=0))
    expected = np.array([[collapse_truth(k, w) for w in WIDTHS] for k in KAPPAS]) * np.cosh(0.1)
    np.testing.assert_allclose(grid.rel_dist, expected, rtol=1e-12)
    np.testing.assert_allclose(grid.flips, 0.2 * expected, rtol=1e-12)
    assert (grid.n_seeds == 2).all()
    np.testing.assert_allclose(grid.kappa_sqrt_m[2, 0], 0.1 * 16)


def test_crossing_of_the_lazy_level():
    ds = lazy_dataset(collapse_truth, seed_sigma=0.0).isel(lr=0, label_noise=0)
    fit = lazy.collapse_fits(lazy.lazy_grid(ds))
    root = (-B - np.sqrt(B * B - 4 * C * (A - np.log(lazy.LAZY_REL_DIST)))) / (2 * C)
    assert lazy.lazy_crossing(fit) == pytest.approx(np.exp(root), rel=0.02)
    assert lazy.lazy_crossing(fit, level=1e-6) is None


def test_zero_and_diverged_cells_are_left_out():
    ds = lazy_dataset(collapse_truth)
    # one cell's runs end exactly at W*; another cell has only diverged runs, with garbage values
    ds["dist_to_target"].loc[dict(width=256, model_kappa=0.01, step=5000)] = 0.0
    bad = dict(width=1024, model_kappa=0.3)
    ds["diverged"].loc[bad] = 1.0
    ds["dist_to_target"].loc[bad] = 1e6
    fit = lazy.collapse_fits(lazy.lazy_grid(ds.isel(lr=0, label_noise=0)))
    assert (fit.n_zero, fit.n_missing, fit.n_cells) == (1, 1, len(KAPPAS) * len(WIDTHS) - 2)
    out = _evaluate(ds)
    assert out.verdict == "supported" and "left out: 1 at 0, 1 with no converged run" in out.detail


def test_one_diverged_seed_does_not_move_the_cell():
    ds = lazy_dataset(collapse_truth, seed_sigma=0.0)
    clean = lazy.lazy_grid(ds.isel(lr=0, label_noise=0)).rel_dist.copy()
    ds["diverged"].loc[dict(width=512, model_kappa=0.1, seed=1)] = 1.0
    ds["dist_to_target"].loc[dict(width=512, model_kappa=0.1, seed=1)] = np.inf
    np.testing.assert_allclose(lazy.lazy_grid(ds.isel(lr=0, label_noise=0)).rel_dist, clean)


def test_other_settings_get_a_row_each():
    ds = lazy_dataset(collapse_truth, extra_settings={"model_bias": [False, True]})
    ds["dist_to_target"].loc[dict(model_bias=True)] *= 2.0  # a level shift: same beta
    outs = CHECKS["lazy_beta"].evaluate(ds)
    assert [o.setting for o in outs] == ["model_bias=false", "model_bias=true"]
    assert outs[0].measured == pytest.approx(outs[1].measured, abs=1e-6)


def test_applies_needs_two_kappas_and_two_widths():
    ds = lazy_dataset(collapse_truth)
    assert lazy.applies_lazy(ds)
    assert not lazy.applies_lazy(ds.isel(model_kappa=[0]))
    assert not lazy.applies_lazy(ds.isel(width=[0]))
    assert not lazy.applies_lazy(ds.isel(model_kappa=0).drop_vars("model_kappa"))


def test_too_few_cells_is_na():
    out = _evaluate(lazy_dataset(collapse_truth, kappas=(0.1, 1.0), widths=(256,)))
    assert out.verdict == "n/a" and "enough finite (kappa, m) cells" in out.detail


def test_poly_fit_r2_and_constant_values():
    x = np.linspace(0, 1, 6)
    fit = lazy.poly_fit(x, 1 + 2 * x)
    assert fit.r2 == pytest.approx(1.0) and fit.rms == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(lazy.poly_fit(x, np.ones(6)).r2)
    # degree capped by the number of distinct x: two values -> a line through the group means
    two = lazy.poly_fit(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 2.0, 1.0, 3.0]))
    assert two.r2 == pytest.approx(1 - 4 / 5)  # residuals +-1 around the means 1, 2; SST 5


def _png_ok(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_figure_writes_files_and_summarises_the_fit(tmp_path):
    ds = lazy_dataset(collapse_truth)
    lines = FIGURES["lazy_phase"](ds, tmp_path / "l.png", tmp_path / "l.pdf")
    assert _png_ok(tmp_path / "l.png") and (tmp_path / "l.pdf").stat().st_size > 5_000
    b = lazy.lazy_beta(ds.isel(lr=0, label_noise=0))
    text = "\n".join(lines)
    assert f"beta {b.estimate.estimate:.3f}, 90% CI" in text
    assert f"kappa m^beta_hat ~ {lazy.lazy_crossing(b.collapse):.3g}" in text
    assert f"over {len(KAPPAS) * len(WIDTHS)} (kappa, m) cells" in text


def test_figure_with_one_seed_and_one_kappa_from_the_config(tmp_path):
    ds = lazy_dataset(width_only_truth, seeds=(0,)).isel(model_kappa=0).drop_vars("model_kappa")
    FIGURES["lazy_phase"](ds, tmp_path / "l.png", tmp_path / "l.pdf")
    assert _png_ok(tmp_path / "l.png")
    ds.attrs.pop("config")
    with pytest.raises(ValueError, match="figure 'lazy_phase'.*model.kappa"):
        FIGURES["lazy_phase"](ds, tmp_path / "x.png", tmp_path / "x.pdf")


def test_figure_raises_when_every_run_diverged(tmp_path):
    ds = lazy_dataset(collapse_truth)
    ds["diverged"][:] = 1.0
    with pytest.raises(ValueError, match="figure 'lazy_phase'.*every run diverged"):
        FIGURES["lazy_phase"](ds, tmp_path / "x.png", tmp_path / "x.pdf")
    assert list(tmp_path.iterdir()) == []
