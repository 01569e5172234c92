"""Synthetic run files in the exact run-file format of ARCHITECTURE.md, with closed-form values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

# Reference width at which the power laws below equal their prefactors.
M_REF = 1000.0
# Relaxation time (in steps) of every trajectory; the default 1000 steps are 10 time constants.
TAU = 100.0


@dataclass(frozen=True)
class Truth:
    """Closed-form knobs of the synthetic runs; change one to violate one claim.

    Final values (before the per-run lognormal factor `exp(noise_sigma * z)`):
    `||W(T) - W*|| = dist_prefactor * (m / M_REF)^dist_exponent`,
    `||W(T) - W0|| = init_fraction * sqrt(yHy) * (m / M_REF)^init_exponent`,
    `gap_linearized = gap_prefactor * (m / M_REF)^gap_exponent`,
    `activation_flip_fraction = flip_prefactor * (m / M_REF)^flip_exponent`,
    `test_error = error_intercept + error_slope * p`, `arora_bound = bound_intercept + bound_slope *
    p`,
    `train_loss(T) / train_loss(0) ~= loss_ratio`.
    """

    dist_prefactor: float = 2.0
    dist_exponent: float = -0.25
    init_fraction: float = 0.8
    init_exponent: float = 0.0
    gap_prefactor: float = 0.2
    gap_exponent: float = -0.5
    flip_prefactor: float = 0.05
    flip_exponent: float = -0.5
    error_intercept: float = 0.05
    error_slope: float = 0.4
    bound_intercept: float = 0.3
    bound_slope: float = 0.5
    loss_ratio: float = 1e-4
    noise_sigma: float = 0.05


def _lognormal_factor(truth: Truth, width: int, seed: int, label_noise: float, which: int) -> float:
    """A reproducible per-run factor exp(sigma z), z ~ N(0, 1) seeded by the run's keys."""
    rng = np.random.default_rng([width, seed, round(label_noise * 1000), which])
    return float(np.exp(truth.noise_sigma * rng.standard_normal()))


def run_config(
    experiment: str, width: int, seed: int, label_noise: float, lr: float, n_train: int, steps: int
) -> dict:
    """The resolved per-run config (shape of `minnorm.workflow.plan.run_settings`)."""
    return {
        "experiment": experiment,
        "data": {
            "name": "sphere_quadratic",
            "n_train": n_train,
            "n_test": 2 * n_train,
            "dim": 5,
            "seed": 0,
        },
        "model": {"bias": True, "kappa": 1.0},
        "training": {"lr": lr, "loss": "half_sum", "steps": steps, "dtype": "float64"},
        "width": width,
        "seed": seed,
        "label_noise": label_noise,
        "lr": lr,
    }


def synthetic_run(
    width: int,
    seed: int,
    label_noise: float = 0.0,
    lr: float = 0.01,
    *,
    experiment: str = "synth",
    truth: Truth = Truth(),
    steps: int = 1000,
    every: int = 100,
    n_train: int = 8,
    diverge_at: int | None = None,
    truncate: bool = False,
) -> xr.Dataset:
    """One run Dataset: dim `step` (steps // every + 1 points), scalar coords, every variable.

    `diverge_at`: the step at which the run is flagged diverged; values after it are NaN, or the
    run stops there when `truncate` is true (fewer steps, as a run that stopped early).
    """
    step = np.arange(0, steps + 1, every, dtype=np.int64)
    if diverge_at is not None and truncate:
        step = step[step <= diverge_at]
    decay = np.exp(-step / TAU)
    rel = width / M_REF
    f = [_lognormal_factor(truth, width, seed, label_noise, k) for k in range(5)]

    bound = truth.bound_intercept + truth.bound_slope * label_noise
    yhy = n_train * bound**2 / 2.0  # so that arora_bound = sqrt(2 yHy / n) exactly
    dist_end = truth.dist_prefactor * rel**truth.dist_exponent * f[0]
    init_end = truth.init_fraction * np.sqrt(yhy) * rel**truth.init_exponent * f[1]
    target_norm = init_end  # the network ends at W*, so ||W* - W0|| = ||W(T) - W0||
    dist = dist_end + (np.sqrt(40.0) - dist_end) * decay
    gap = truth.gap_prefactor * rel**truth.gap_exponent * f[2] + decay
    error = (truth.error_intercept + truth.error_slope * label_noise) * f[3]
    test_error = error + (0.5 - error) * decay
    loss = 1.0 * (truth.loss_ratio + (1.0 - truth.loss_ratio) * decay**2)

    traj = {
        "train_loss": (loss, "mean squared training error", "1"),
        "dist_to_target": (dist, "||W - W*||", "1"),
        "dist_to_target_range": (0.8 * dist, "||P0 (W - W*)||", "1"),
        "dist_to_target_perp": (0.6 * dist, "||P0perp (W - W*)||", "1"),
        "dist_from_init": (init_end * (1.0 - decay), "||W - W0||", "1"),
        "activation_flip_fraction": (
            truth.flip_prefactor * rel**truth.flip_exponent * f[4] * (1.0 - decay),
            "fraction of flipped activations",
            "1",
        ),
        "test_loss": (2.0 * test_error, "mean squared test error", "1"),
        "test_error": (test_error, "test 0-1 error", "1"),
        "test_l1": (2.0 * test_error, "test l1 loss", "1"),
        "gap_linearized": (gap, "RMS of f - f_L(.; W*) on test points", "1"),
        "gap_kernel": (gap + 0.05, "RMS of f - kernel regression on test points", "1"),
    }
    data_vars: dict[str, xr.Variable] = {}
    for name, (values, long_name, units) in traj.items():
        values = np.asarray(values, dtype=np.float64).copy()
        if diverge_at is not None:
            values[step > diverge_at] = np.nan
        data_vars[name] = xr.Variable(("step",), values, {"long_name": long_name, "units": units})
    eigenvalues = np.sort(1.0 / (1.0 + np.arange(n_train)))[::-1]
    projections = np.abs(np.cos(np.arange(n_train) + label_noise * 7.0 + seed))
    scalars = {
        "lambda_min_G": (0.01, "smallest eigenvalue of G"),
        "lambda_min_H": (0.012, "smallest eigenvalue of H"),
        "cond_G": (100.0, "condition number of G"),
        "yGy": (target_norm**2, "(y - f0)^T G^-1 (y - f0)"),
        "yHy": (yhy, "y^T H^-1 y"),
        "arora_bound": (bound, "sqrt(2 y^T H^-1 y / n)"),
        "target_norm": (target_norm, "||W* - W0||"),
        "wall_time_s": (1.5, "wall time"),
    }
    for name, (value, long_name) in scalars.items():
        data_vars[name] = xr.Variable(
            (),
            np.float64(value),
            {"long_name": long_name, "units": "s" if name == "wall_time_s" else "1"},
        )
    ints = {
        "used_pinv": (np.int8(0), "int8"),
        "diverged": (np.int8(diverge_at is not None), "int8"),
        "diverged_step": (np.int64(-1 if diverge_at is None else diverge_at), "int64"),
        "final_step": (np.int64(step[-1]), "int64"),
    }
    for name, (value, _) in ints.items():
        data_vars[name] = xr.Variable(
            (), value, {"long_name": name.replace("_", " "), "units": "1"}
        )
    data_vars["H_eigenvalues"] = xr.Variable(
        ("eig",), eigenvalues, {"long_name": "eigenvalues of H", "units": "1"}
    )
    data_vars["y_projections"] = xr.Variable(
        ("eig",), projections, {"long_name": "|v_i . y|", "units": "1"}
    )
    config = run_config(experiment, width, seed, label_noise, lr, n_train, steps)
    attrs = {
        "experiment": experiment,
        "loss": "half_sum",
        "dtype": "float64",
        "device": "cpu",
        "minnorm_version": "0.1.0",
        "git_commit": "abc123",
        "torch_version": "2.13.0",
        "lightning_version": "2.6.0",
        "config": json.dumps(config, sort_keys=True),
    }
    coords = {
        "step": ("step", step),
        "width": np.int64(width),
        "seed": np.int64(seed),
        "label_noise": np.float64(label_noise),
        "lr": np.float64(lr),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def run_path(root: Path, width: int, seed: int, label_noise: float, lr: float) -> Path:
    """The run-file path of ARCHITECTURE.md under `root` (the experiment folder)."""
    return root / "runs" / f"m{width}" / f"s{seed}_p{label_noise:g}_lr{lr:g}.nc"


def write_runs(
    root: Path,
    widths,
    seeds,
    label_noises=(0.0,),
    lrs=(0.01,),
    *,
    special: dict | None = None,
    **kwargs,
) -> list[Path]:
    """Write one run file per combination; `special[(width, seed, noise, lr)]` overrides kwargs."""
    paths = []
    for width in widths:
        for seed in seeds:
            for noise in label_noises:
                for lr in lrs:
                    extra = dict(kwargs)
                    extra.update((special or {}).get((width, seed, noise, lr), {}))
                    path = run_path(root, width, seed, noise, lr)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    synthetic_run(width, seed, noise, lr, **extra).to_netcdf(path)
                    paths.append(path)
    return paths
