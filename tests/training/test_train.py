"""Tests of minnorm.training.train: iterates against a NumPy GD loop, convergence to W*, files,
divergence, checkpoints."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest
import torch
import xarray as xr

from helpers import reference
from helpers.training import build, numpy_gd, run_config, same_run, sphere_data, train_killed_at
from minnorm.data.datasets import make_dataset
from minnorm.data.settings import DataSettings
from minnorm.io.files import atomic_write_netcdf
from minnorm.training import resources, run_file, run_record
from minnorm.training.resources import RunTooLargeError, check_fits, estimate_run_bytes
from minnorm.training.run_plan import DIVERGENCE_REASONS, recording_steps
from minnorm.training.run_record import TRAJECTORIES, TrainingState
from minnorm.training.train import train_run, train_runs

# Float64 iterates of two implementations of the same GD step differ by rounding only; after
# ~50 steps the accumulated difference stays ~1e-14 relative, so 1e-10 (the bound) is safe.
ITERATE_RTOL = 1e-10
# float32 carries ~7 digits; over a few hundred well-conditioned steps the recorded distances keep
# ~5, so the 1e-3 relative agreement holds with margin.
FLOAT32_RTOL = 1e-3
# Rounding W (entries ~1-3) to float32 leaves ~1e-6 absolute noise in any distance, which matters
# only for distances that are ~0 (the orthogonal part right after init).
FLOAT32_ATOL = 1e-5


def test_recording_steps_every_and_log_spaced():
    assert recording_steps(100, 25, 0) == [0, 25, 50, 75, 100]
    # geomspace(1, 1000, 4) = 1, 10, 100, 1000
    assert recording_steps(1000, 0, 4) == [0, 1, 10, 100, 1000]
    assert recording_steps(1000, 500, 4) == [0, 1, 10, 100, 500, 1000]
    assert recording_steps(7, 0, 0) == [0, 7]
    assert recording_steps(10, 3, 0) == [0, 3, 6, 9, 10]
    with pytest.raises(ValueError, match="steps >= 1"):
        recording_steps(0, 1, 1)


@pytest.mark.parametrize("loss", ["half_sum", "mean"])
@pytest.mark.parametrize("bias", [True, False])
def test_recorded_iterates_equal_a_numpy_gd_loop(loss, bias):
    data_cfg, data = sphere_data()
    cfg = run_config(
        data_cfg, width=64, bias=bias, loss=loss, lr=0.2, steps=30, every=7, log_points=3
    )
    target = build(data_cfg, data, cfg)
    iterates: dict[int, torch.Tensor] = {}
    ds = train_run(data, target, cfg, iterates=iterates)
    reference, diverged = numpy_gd(
        data.X_train.numpy(),
        data.y_train.numpy(),
        target["W0"].values,
        target["a"].values,
        cfg.lr,
        loss,
        cfg.training.steps,
        bias,
    )
    assert diverged is None
    assert sorted(iterates) == list(ds["step"].values) == [0, 1, 5, 7, 14, 21, 28, 30]
    for step, W in iterates.items():
        ref = reference[step]
        assert np.linalg.norm(W.numpy() - ref) <= ITERATE_RTOL * np.linalg.norm(ref)
        W_star = target["W_star"].values
        assert ds["dist_to_target"].sel(step=step) == pytest.approx(
            np.linalg.norm(ref - W_star), rel=1e-10
        )
        assert ds["dist_from_init"].sel(step=step) == pytest.approx(
            np.linalg.norm(ref - target["W0"].values), rel=1e-10, abs=1e-12
        )


def test_records_match_independent_formulas_at_init():
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=128, steps=5)
    target = build(data_cfg, data, cfg)
    ds = train_run(data, target, cfg)
    first = ds.isel(step=0)
    W0, a, W_star = target["W0"].values, target["a"].values, target["W_star"].values
    Xs = reference.augment(data.X_test.numpy(), True)
    f0 = reference.outputs(W0, data.X_train.numpy(), a, True)
    assert float(first["train_loss"]) == pytest.approx(
        np.mean((f0 - data.y_train.numpy()) ** 2), rel=1e-12
    )
    f0_test = reference.outputs(W0, data.X_test.numpy(), a, True)
    # f_L(x; W*) = m^-1/2 sum_r a_r 1{w0_r . x > 0} (w*_r . x)
    fL_test = ((Xs @ W0.T > 0) * (Xs @ W_star.T)) @ a / np.sqrt(128)
    assert float(first["gap_linearized"]) == pytest.approx(
        np.sqrt(np.mean((f0_test - fL_test) ** 2)), rel=1e-10
    )
    assert float(first["dist_to_target"]) == pytest.approx(float(target["target_norm"]), rel=1e-12)
    assert float(first["dist_from_init"]) == 0.0
    assert float(first["activation_flip_fraction"]) == 0.0
    # Pythagoras for the two projections, at every step.
    total = ds["dist_to_target_range"] ** 2 + ds["dist_to_target_perp"] ** 2
    np.testing.assert_allclose(total, ds["dist_to_target"] ** 2, rtol=1e-9)
    # W* - W0 lies in col(J0): the orthogonal part is ~0 at init.
    assert float(first["dist_to_target_perp"]) < 1e-6 * float(first["dist_to_target"])
    assert np.isnan(ds["test_error"]).all() and np.isnan(ds["test_l1"]).all()  # real-valued labels


def test_run_file_has_the_architecture_format():
    data_cfg = DataSettings("digits", n_train=16, n_test=12, seed=0, classes=(0, 1))
    data = make_dataset(data_cfg, label_noise=0.0, seed=1)
    cfg = run_config(data_cfg, width=32, seed=1, bias=False, steps=10, lr=0.1, loss="mean")
    target = build(data_cfg, data, cfg)
    ds = train_run(data, target, cfg)
    for name in (
        list(TRAJECTORIES)
        + list(run_file.TARGET_SCALARS)
        + list(run_file.TARGET_SPECTRA)
        + ["wall_time_s", "diverged", "diverged_step", "diverged_reason", "final_step"]
    ):
        assert name in ds.data_vars, name
        assert ds[name].attrs["long_name"], name
        # CF: units on every quantity, flag attributes (and no units) on the 0/1 flags.
        if name in ("diverged", "used_pinv", "diverged_reason"):
            flags = 4 if name == "diverged_reason" else 2
            assert "units" not in ds[name].attrs and list(ds[name].attrs["flag_values"]) == list(
                range(flags)
            ), name
        else:
            assert ds[name].attrs["units"] in ("1", "s"), name
    for name in TRAJECTORIES:
        assert ds[name].dims == ("step",)
    assert {name: ds[name].item() for name in ("width", "seed", "label_noise", "lr")} == {
        "width": 32,
        "seed": 1,
        "label_noise": 0.0,
        "lr": 0.1,
    }
    for key in (
        "experiment",
        "loss",
        "dtype",
        "device",
        "minnorm_version",
        "git_commit",
        "torch_version",
        "lightning_version",
        "config",
    ):
        assert key in ds.attrs, key
    assert ds.attrs["loss"] == "mean" and ds.attrs["device"] == "cpu"
    assert (
        int(ds["diverged"]) == 0 and int(ds["diverged_step"]) == -1 and int(ds["final_step"]) == 10
    )
    # +-1 labels: the 0-1 error and l1 loss are defined; the error counts sign mismatches.
    err = ds["test_error"].values
    assert np.all((err >= 0) & (err <= 1))
    assert np.all(np.isfinite(ds["test_l1"].values))
    assert float(ds["yGy"]) == float(target["yGy"])


@pytest.mark.slow
def test_wide_network_converges_near_the_min_norm_target(one_thread):
    data_cfg, data = sphere_data(n=20, dim=5)
    ratios = {}
    for width in (256, 4096):
        ratios[width] = []
        for seed in (0, 1, 2):
            # lambda_max(G) ~ 8 here, so lr = 0.2 keeps lr * lambda_max < 2; lambda_min ~ 0.07.
            cfg = run_config(
                data_cfg, width=width, seed=seed, lr=0.2, steps=1000, every=500, log_points=0
            )
            target = build(data_cfg, data, cfg)
            ds = train_run(data, target, cfg).isel(step=-1)
            ratios[width].append(float(ds["dist_to_target"] / target["target_norm"]))
            if width == 4096:
                assert float(ds["train_loss"]) < 1e-6
    # Measured: ~0.95 at m = 256 and ~0.43 at m = 4096, the m^-1/4 decay of the theorems
    # (16^-1/4 = 0.5); the bounds leave room for other BLAS rounding only.
    assert np.mean(ratios[4096]) < 0.55
    assert np.mean(ratios[4096]) < 0.6 * np.mean(ratios[256])


def test_float32_and_float64_agree_on_distances():
    data_cfg, data = sphere_data()
    results = {}
    for dtype in ("float32", "float64"):
        cfg = run_config(data_cfg, width=256, lr=0.2, steps=200, every=50, dtype=dtype)
        results[dtype] = train_run(data, build(data_cfg, data, cfg), cfg)
        assert results[dtype].attrs["dtype"] == dtype
    for name in ("dist_to_target", "dist_to_target_range", "dist_to_target_perp", "dist_from_init"):
        a, b = results["float32"][name].values[1:], results["float64"][name].values[1:]
        np.testing.assert_allclose(a, b, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL, err_msg=name)


def test_same_seed_gives_identical_files(tmp_path):
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=64, steps=30)
    target = build(data_cfg, data, cfg)
    paths = []
    for i in range(2):
        ds = train_run(data, target, cfg)
        ds["wall_time_s"] = ds["wall_time_s"] * 0  # the one value that differs between runs
        paths.append(tmp_path / f"run{i}.nc")
        atomic_write_netcdf(ds, paths[-1])
    same_run(xr.load_dataset(paths[0]), xr.load_dataset(paths[1]))
    assert paths[0].read_bytes() == paths[1].read_bytes()


# A ReLU network rarely overflows: a big step kills most neurons (all pre-activations negative),
# after which the gradient vanishes and W stays finite; the growth is ~lr^3 over two steps. So
# "far above 2 / lambda_max (~0.3 here)" has to be astronomically far to reach inf: 1e100 in
# float64 (the loss overflows at step 2), 1e20 in float32.
# every = 2 records step 2 itself: the chunk ending there is finite, and only the next step finds
# the loss at W_2 non-finite, so that record has to be dropped.
# lr = 10 is the common case: the loss spikes by ~1e4 at step 1, then every unit dies and W stays
# finite; only the loss-ratio test catches it.
@pytest.mark.parametrize(
    ("dtype", "lr", "every"),
    [("float64", 1e100, 50), ("float64", 1e100, 2), ("float32", 1e20, 50), ("float64", 10.0, 50)],
)
def test_too_large_learning_rate_is_recorded_as_diverged(tmp_path, caplog, dtype, lr, every):
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=64, lr=lr, steps=200, every=every, log_points=3, dtype=dtype)
    target = build(data_cfg, data, cfg)
    with caplog.at_level(logging.WARNING, logger="minnorm.training.train"):
        ds = train_run(data, target, cfg)
    assert int(ds["diverged"]) == 1
    assert "diverged at step" in caplog.text
    # lr = 10 leaves W and the loss finite: only the ratio to the loss at W0 flags it.
    reason = DIVERGENCE_REASONS[int(ds["diverged_reason"])]
    assert reason == "loss_above_limit" if lr == 10.0 else reason != "not_diverged"
    if dtype == "float64":
        _, first_bad = numpy_gd(
            data.X_train.numpy(),
            data.y_train.numpy(),
            target["W0"].values,
            target["a"].values,
            lr,
            "half_sum",
            200,
            True,
        )
        assert first_bad == int(ds["diverged_step"]) >= 1
    # The step dim stops at the last recording before the divergence, so every value is finite.
    assert int(ds["final_step"]) == ds["step"].values[-1] < int(ds["diverged_step"])
    assert list(ds["step"].values) == [
        s for s in recording_steps(200, every, 3) if s < int(ds["diverged_step"])
    ]
    for name in TRAJECTORIES:
        if name not in ("test_error", "test_l1"):
            assert np.isfinite(ds[name].values).all(), name
    path = tmp_path / "diverged.nc"
    atomic_write_netcdf(ds, path)
    assert int(xr.load_dataset(path)["diverged"]) == 1


# kappa = 1e200 (float64) or 1e25 (float32): the outputs at W0 overflow, so the loss is infinite
# before any step. Parse time refuses such a kappa (minnorm.config.rules); the library must still
# record the run as diverged at step 0 and finish the other runs of its batch.
@pytest.mark.parametrize(("dtype", "kappa"), [("float64", 1e200), ("float32", 1e25)])
def test_divergence_at_step_zero_is_recorded_and_the_batch_finishes(caplog, dtype, kappa):
    data_cfg, data = sphere_data()
    settings = {"width": 16, "steps": 20, "dtype": dtype, "step_impl": "fused"}
    good = run_config(data_cfg, seed=0, **settings)
    bad = dataclasses.replace(
        run_config(data_cfg, seed=1, **settings),
        model=dataclasses.replace(good.model, kappa=kappa),
    )
    targets = [build(data_cfg, data, good), build(data_cfg, data, bad)]
    # Independent: the network's outputs at W0 in NumPy (the run's dtype) overflow.
    X = np.hstack([data.X_train.numpy(), np.ones((data.X_train.shape[0], 1))]).astype(dtype)
    W0, a = (targets[1][k].values.astype(dtype) for k in ("W0", "a"))
    with np.errstate(over="ignore", invalid="ignore"):
        f0 = np.maximum(X @ W0.T, 0) @ a / np.sqrt(16).astype(dtype)
        assert not np.isfinite(np.sum((f0 - data.y_train.numpy().astype(dtype)) ** 2))
    with caplog.at_level(logging.WARNING):
        batch = train_runs([data, data], targets, [good, bad])
    alone = train_run(data, targets[0], good)
    same_run(batch[0], alone)
    assert int(batch[0]["diverged"]) == 0 and int(batch[0]["final_step"]) == 20
    ds = batch[1]
    assert int(ds["diverged"]) == 1 and int(ds["diverged_step"]) == 0
    assert DIVERGENCE_REASONS[int(ds["diverged_reason"])] == "loss_not_finite"
    assert ds.sizes["step"] == 0 and int(ds["final_step"]) == -1
    assert "diverged at step 0: loss not finite" in caplog.text


def test_learning_rate_near_the_stability_limit_is_not_flagged():
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=64, lr=1.0, steps=50)
    target = build(data_cfg, data, cfg)
    # 0.9 x the stability limit 2 / lambda_max(G) of the half_sum step: oscillating, not diverging.
    lr = 0.9 * 2 / float(np.linalg.eigvalsh(target["G"].values)[-1])
    cfg = run_config(data_cfg, width=64, lr=lr, steps=50)
    ds = train_run(data, target, cfg)
    assert int(ds["diverged"]) == 0 and int(ds["final_step"]) == 50
    assert float(ds["train_loss"][-1]) < float(ds["train_loss"][0])


def test_resume_from_checkpoint_is_bit_identical(tmp_path, monkeypatch):
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=64, steps=60, every=10, checkpoint_every=20, lr=0.3)
    target = build(data_cfg, data, cfg)
    full_iterates: dict[int, torch.Tensor] = {}
    full = train_run(data, target, cfg, iterates=full_iterates)

    checkpoint = tmp_path / "ckpt" / "run.pt"
    train_killed_at(40, monkeypatch, data, target, cfg, checkpoint)
    assert checkpoint.exists() and not list(checkpoint.parent.glob("*.tmp-*"))

    resumed_iterates: dict[int, torch.Tensor] = {}
    resumed = train_run(data, target, cfg, checkpoint=checkpoint, iterates=resumed_iterates)
    same_run(full, resumed)
    assert sorted(resumed_iterates) == [50, 60]  # only the steps trained after the resume
    for step, W in resumed_iterates.items():
        assert torch.equal(W, full_iterates[step])
    assert checkpoint.exists()  # deleting it is the caller's decision


def test_checkpoint_of_another_config_is_ignored_and_corrupt_one_set_aside(tmp_path, caplog):
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=32, steps=20, checkpoint_every=10)
    target = build(data_cfg, data, cfg)
    checkpoint = tmp_path / "run.pt"
    other = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, steps=30))
    train_run(data, target, other, checkpoint=checkpoint)  # leaves a step-20 checkpoint of `other`
    with caplog.at_level(logging.WARNING, logger="minnorm.training.run_record"):
        ds = train_run(data, target, cfg, checkpoint=checkpoint)
    assert "different run config" in caplog.text
    same_run(ds, train_run(data, target, cfg))
    checkpoint.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="minnorm.training.run_record"):
        again = train_run(data, target, cfg, checkpoint=checkpoint)
    same_run(again, ds)  # started over (tests/training/test_checkpoint_settings.py: every kind)
    assert f"checkpoint {checkpoint} cannot be read" in caplog.text
    assert (tmp_path / "run.pt.broken").read_bytes() == b"not a checkpoint"


def test_checkpoint_of_other_numerical_code_is_discarded(tmp_path, monkeypatch, caplog):
    """Kill mid-run, change the numerical code, resume: the result is a clean run of the new
    code."""
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=64, steps=60, every=10, checkpoint_every=20, lr=0.3)
    target = build(data_cfg, data, cfg)
    old_code = train_run(data, target, cfg)
    checkpoint = tmp_path / "run.ckpt"
    train_killed_at(40, monkeypatch, data, target, cfg, checkpoint)
    assert checkpoint.exists()

    # "Edit" the numerical code: another fingerprint, and a loss (hence every step) scaled by 1.5.
    from minnorm.io import fingerprint
    from minnorm.training import gd_step

    real_loss = gd_step.loss_value
    monkeypatch.setattr(fingerprint, "numerics_fingerprint", lambda: "f" * 64)
    monkeypatch.setattr(gd_step, "loss_value", lambda f, y, loss: 1.5 * real_loss(f, y, loss))
    resumed_iterates: dict[int, torch.Tensor] = {}
    with caplog.at_level(logging.WARNING, logger="minnorm.training.run_record"):
        resumed = train_run(data, target, cfg, checkpoint=checkpoint, iterates=resumed_iterates)
    assert "other numerical code" in caplog.text and "discarded" in caplog.text
    assert 0 in resumed_iterates  # started over from W0
    clean_new = train_run(data, target, cfg)
    same_run(resumed, clean_new)  # every variable bit for bit except the wall time
    assert float(resumed["dist_from_init"][-1]) != float(old_code["dist_from_init"][-1])


def test_checkpoint_saving_removes_temps_of_dead_writers(tmp_path):
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    checkpoint = tmp_path / "run.ckpt"
    stale = tmp_path / f"run.ckpt.tmp-{int(child.stdout)}"  # left by a writer killed mid-write
    stale.write_bytes(b"half a checkpoint")
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=16, steps=20, checkpoint_every=10)
    train_run(data, build(data_cfg, data, cfg), cfg, checkpoint=checkpoint)
    assert checkpoint.exists() and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


def test_checkpoints_are_loaded_without_pickle(tmp_path):
    W = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    records = [(0, {k: float(i) for i, k in enumerate(TRAJECTORIES)})]
    path = tmp_path / "c.pt"
    run_record.save_checkpoint(
        path, TrainingState(step=7, W=W, records=records, wall_time_s=1.5), "{}"
    )
    payload = torch.load(path, weights_only=True)  # raises if anything needs unpickling
    assert payload["step"] == 7 and payload["format"] == run_record.CHECKPOINT_FORMAT
    loaded = run_record.load_checkpoint(path, "{}", (3, 2), logging.getLogger("test"))
    assert isinstance(loaded, TrainingState)
    assert torch.equal(loaded.W, W) and loaded.step == 7 and loaded.records == records
    assert loaded.wall_time_s == 1.5


def test_memory_estimate_covers_the_big_arrays():
    n, m, p, n_test = 100, 10_000, 6, 200
    est64 = estimate_run_bytes(n, m, p, "float64", n_test)
    # Irreducible: (n, m) activations in the training dtype and float64 pre-activations on the
    # train or the test points for recording (one at a time).
    assert est64 >= 8 * n * m + 8 * max(n, n_test) * m
    assert estimate_run_bytes(n, m, p, torch.float32, n_test) < est64
    assert estimate_run_bytes(n, 2 * m, p, "float64", n_test) == pytest.approx(2 * est64, rel=0.01)


def test_too_large_run_is_refused_with_its_size(monkeypatch):
    with pytest.raises(RunTooLargeError, match=r"estimated peak \d+\.\d\d GiB.*width=1000000000"):
        check_fits(1000, 10**9, 65, "float64", 1000, torch.device("cpu"))
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=64)
    target = build(data_cfg, data, cfg)
    monkeypatch.setattr(resources, "available_bytes", lambda device: 1000)
    with pytest.raises(RunTooLargeError, match="only 0.00 GiB are available"):
        train_run(data, target, cfg)


def test_available_bytes_reads_the_host_memory():
    free = resources.available_bytes(torch.device("cpu"))
    with open("/proc/meminfo") as handle:
        total_kib = next(int(line.split()[1]) for line in handle if line.startswith("MemTotal:"))
    assert 0 < free <= total_kib * 1024


def test_progress_lines_report_step_loss_distance_and_speed(caplog):
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=32, steps=20, progress_every=10)
    target = build(data_cfg, data, cfg)
    with caplog.at_level(logging.INFO, logger="minnorm.training.train"):
        ds = train_run(data, target, cfg)
    lines = [r.getMessage() for r in caplog.records if "steps/s" in r.getMessage()]
    assert len(lines) == 2 and lines[1].startswith("step 20/20")
    loss = float(lines[1].split("train_loss ")[1].split()[0])
    assert loss == pytest.approx(float(ds["train_loss"].sel(step=20)), rel=1e-3)
    assert not any("GPU available" in r.getMessage() for r in caplog.records)
    assert math.isfinite(float(lines[0].split()[-2]))


@pytest.mark.slow  # compiles the fused step
def test_fused_run_records_the_eager_iterates():
    data_cfg, data = sphere_data()
    runs = {}
    for impl in ("eager", "fused"):
        cfg = run_config(data_cfg, width=128, steps=40, step_impl=impl, loss="mean", lr=0.5)
        iterates: dict[int, torch.Tensor] = {}
        runs[impl] = (train_run(data, build(data_cfg, data, cfg), cfg, iterates=iterates), iterates)
    for step, W in runs["eager"][1].items():
        assert torch.linalg.vector_norm(
            runs["fused"][1][step] - W
        ) <= ITERATE_RTOL * torch.linalg.vector_norm(W)
    np.testing.assert_allclose(
        runs["fused"][0]["dist_to_target"], runs["eager"][0]["dist_to_target"], rtol=1e-10
    )


def test_checkpoint_of_an_older_format_is_discarded(tmp_path, caplog):
    W = torch.zeros(3, 2, dtype=torch.float64)
    path = tmp_path / "c.ckpt"
    # Format 1 (before the numerics fingerprint): same fields, no "numerics".
    torch.save(
        {
            "format": 1,
            "config": "{}",
            "step": 5,
            "W": W,
            "record_steps": torch.zeros(0, dtype=torch.int64),
            "records": torch.zeros(0, len(TRAJECTORIES)),
            "record_names": list(TRAJECTORIES),
            "wall_time_s": 1.0,
        },
        path,
    )
    with caplog.at_level(logging.WARNING):
        assert run_record.load_checkpoint(path, "{}", (3, 2), logging.getLogger("test")) is None
    assert "checkpoint format 1" in caplog.text and not path.exists()
