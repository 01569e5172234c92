"""The study over networks (minnorm.analysis.beyond.families) on collected data with planted
power laws: each family's exponent, its exponent against relu on the same runs, the figures."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from minnorm.analysis.beyond.families import CHECKS, family_curves, has_families
from minnorm.config.sweep import SETTING_ATTR

ACTIVATIONS = ["erf", "relu", "tanh"]
# Planted exponents of ||theta(T) - theta*|| in m per (activation, train_output).
EXPONENTS = {
    ("erf", False): -0.10,
    ("erf", True): -0.15,
    ("relu", False): -0.25,
    ("relu", True): -0.30,
    ("tanh", False): -0.05,
    ("tanh", True): 0.0,
}


def collected(noise: float = 0.05) -> xr.Dataset:
    """dims (width, seed, data_seed, model_activation, model_train_output, step); each draw a
    level shared by every family (so the pairing against relu removes it) and per-run noise."""
    rng = np.random.default_rng(3)
    widths = np.array([64, 128, 256, 512, 1024, 2048])
    draws, seeds, steps = np.arange(4), np.arange(1), np.array([0, 100])
    shape = (widths.size, seeds.size, draws.size, len(ACTIVATIONS), 2, steps.size)
    dist = np.empty(shape)
    level = np.exp(rng.normal(0, 0.3, draws.size))
    jitter = np.exp(rng.normal(0, noise, shape[:3]))  # per run, shared by the families
    for a, name in enumerate(ACTIVATIONS):
        for t, trained in enumerate((False, True)):
            final = (
                level[None, None, :] * (widths / 64.0)[:, None, None] ** EXPONENTS[name, trained]
            )
            final = final * jitter * np.exp(rng.normal(0, noise / 10, shape[:3]))
            dist[:, :, :, a, t, 1] = final
            dist[:, :, :, a, t, 0] = 10 * final  # the initial distance: not what is fitted
    dims = ("width", "seed", "data_seed", "model_activation", "model_train_output", "step")
    return xr.Dataset(
        {
            "dist_to_target": (dims, dist),
            "gap_linearized": (dims, dist / 100),
            "diverged": (dims[:-1], np.zeros(shape[:-1])),
        },
        coords={
            "width": widths,
            "seed": seeds,
            "data_seed": ("data_seed", draws, {SETTING_ATTR: "data.seed"}),
            "model_activation": (
                "model_activation",
                np.array(ACTIVATIONS),
                {SETTING_ATTR: "model.activation"},
            ),
            "model_train_output": (
                "model_train_output",
                np.array([False, True]),
                {SETTING_ATTR: "model.train_output"},
            ),
            "step": steps,
            "lr": 0.01,
        },
    )


def test_each_family_gets_its_planted_final_exponent() -> None:
    curves = {c.label: c for c in family_curves(collected(), "dist_to_target")}
    assert len(curves) == 6
    for (name, trained), exponent in EXPONENTS.items():
        curve = curves[f"{name}, a {'trained' if trained else 'fixed'}"]
        assert curve.fit is not None
        assert curve.fit.exponent == pytest.approx(exponent, abs=0.02)
        assert curve.fit.ci_low < exponent < curve.fit.ci_high
        assert curve.widths.tolist() == [64, 128, 256, 512, 1024, 2048]


def test_the_exponent_against_relu_pairs_out_the_shared_runs() -> None:
    ds = collected()
    assert has_families(ds)
    outs = {o.setting: o for o in CHECKS[0].outcomes(ds)}
    assert "relu, a fixed" not in outs and len(outs) == 5
    for (name, trained), exponent in EXPONENTS.items():
        if (name, trained) == ("relu", False):
            continue
        out = outs[f"{name}, a {'trained' if trained else 'fixed'}"]
        difference = exponent - EXPONENTS["relu", False]
        # Paired: the shared draw levels and run jitter cancel, the interval is narrow.
        assert out.measured == pytest.approx(difference, abs=0.01)
        assert out.ci_low < difference < out.ci_high and out.ci_high - out.ci_low < 0.05


def test_no_family_rows_without_relu_or_a_family_sweep() -> None:
    ds = collected()
    assert not has_families(ds.isel(model_activation=[0, 2]))
    assert not has_families(ds.isel(model_activation=1, model_train_output=0))


def test_the_figures_draw_a_line_per_family_and_return_the_exponents(tmp_path) -> None:
    from minnorm.figures.families import plot_families_distance, plot_families_gap

    for plot in (plot_families_distance, plot_families_gap):
        png, pdf = tmp_path / f"{plot.__name__}.png", tmp_path / f"{plot.__name__}.pdf"
        lines = plot(collected(), png, pdf)
        assert png.stat().st_size > 0 and pdf.stat().st_size > 0
        assert len(lines) == 6 and lines[0].startswith("erf, a fixed: exponent of")
        assert float(lines[0].split(" exponent of ")[1].split()[1].rstrip(",")) == pytest.approx(
            -0.10, abs=0.02
        )
