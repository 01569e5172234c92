"""Reliability of the workflow (issue 6): divergence, interruption, extension, determinism, singular
targets and resource limits, on the tiny tests/configs/reliability.yaml in temporary copies."""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from minnorm import pipeline
from minnorm.config import validate_config
from minnorm.plan import data_settings, run_settings, target_settings
from minnorm.data.datasets import load_dataset, save_dataset
from minnorm.files import format_float
from minnorm.core.model import augment_inputs, init_weights
from minnorm.core.seeding import derive_seed
from minnorm.core.target import SingularGramWarning
from minnorm.target_file import load_target

from test_workflow import _copy_workflow, _job_stats, _snakemake

CONFIG_FILE = Path(__file__).resolve().parent / "configs" / "reliability.yaml"
CONFIG_ARGS = ["--configfile", "reliability.yaml", "--replace-workflow-config"]
# The laptop profile's settings, spelled out: the copy runs without a profile.
RUN_ARGS = ["--cores", "2", "--rerun-incomplete", *CONFIG_ARGS]
# Overflows the loss at step 1 (see the config); its run file name spells it 1e+200.
DIVERGING_LR = 1.0e200
# What may differ between two runs of one config: the measured wall time, and the commit of the
# checkout the package is imported from (another commit may land between two runs).
VOLATILE_VARIABLES = frozenset({"wall_time_s"})
VOLATILE_ATTRS = frozenset({"git_commit"})
# A singular G has lambda_min at rounding level: eigvalsh on an n x n Gram matrix with entries
# O(1) is accurate to ~n * eps * lambda_max ~ 1e-14; 1e-10 leaves margin, while the same data
# without the duplicate has lambda_min ~ 1e-2.
SINGULAR_LAMBDA_RTOL = 1e-10
# Seconds to wait for the first checkpoint before concluding the runs are too short to interrupt.
CHECKPOINT_WAIT_S = 300


def _config() -> dict:
    with open(CONFIG_FILE, encoding="utf-8") as handle:
        return validate_config(yaml.safe_load(handle))


def _workflow_copy(root: Path) -> Path:
    _copy_workflow(root)
    shutil.copy(CONFIG_FILE, root / "reliability.yaml")
    return root


def _run_files(root: Path) -> dict[str, Path]:
    """Run files under `root`, keyed by their path relative to `root`."""
    return {str(p.relative_to(root)): p for p in sorted(root.glob("results/*/runs/m*/*.nc"))}


def _leftovers(root: Path) -> list[Path]:
    return sorted(p for p in (root / "results").rglob("*") if ".tmp-" in p.name)


def _assert_same_content(a: Path, b: Path) -> None:
    """Two netCDF files hold the same data: every variable bit-identical (dtype, shape, bytes,
    attrs) and equal dataset attrs; only VOLATILE_VARIABLES and VOLATILE_ATTRS may differ."""
    with xr.open_dataset(a) as ds_a, xr.open_dataset(b) as ds_b:
        assert sorted(ds_a.variables) == sorted(ds_b.variables), (a, b)
        for name in ds_a.variables:
            va, vb = ds_a[name].variable, ds_b[name].variable
            # identical() compares attrs element-wise (CF flag_values are arrays).
            assert va.dims == vb.dims and xr.Variable((), 0, va.attrs).identical(xr.Variable((), 0, vb.attrs)), name
            if name in VOLATILE_VARIABLES:
                continue
            assert va.dtype == vb.dtype and va.shape == vb.shape, name
            assert va.values.tobytes() == vb.values.tobytes(), f"{name} differs: {a} vs {b}"
        drop = lambda attrs: {k: v for k, v in attrs.items() if k not in VOLATILE_ATTRS}  # noqa: E731
        assert drop(ds_a.attrs) == drop(ds_b.attrs)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reliability config run to completion once, shared by the workflow-level tests."""
    root = _workflow_copy(tmp_path_factory.mktemp("finished"))
    result = _snakemake(root, *RUN_ARGS)
    assert result.returncode == 0, result.stderr[-5000:]
    return root


# --- item 3: divergence -------------------------------------------------------------------------


@pytest.mark.slow
def test_diverged_runs_are_recorded_and_the_sweep_completes(finished: Path) -> None:
    config = _config()
    steps = config["experiments"]["rel"]["training"]["steps"]
    with xr.open_dataset(finished / "results/rel/rel.nc") as collected:
        run = collected.sel(label_noise=0.0, width=64, seed=0)
        assert run["diverged"].sel(lr=[0.01, DIVERGING_LR]).values.tolist() == [0, 1]
        assert int(run["diverged_step"].sel(lr=0.01)) == -1
        at = int(run["diverged_step"].sel(lr=DIVERGING_LR))
    assert 0 < at < steps
    with xr.open_dataset(finished / "results/rel/runs/m64/s0_p0_lr1e+200.nc") as diverged:
        # It stopped at once: only steps before the bad one are stored, and all of them are finite.
        assert int(diverged["diverged"]) == 1 and int(diverged["diverged_step"]) == at
        assert int(diverged["final_step"]) < at and int(diverged["step"].max()) < at
        assert np.isfinite(diverged["train_loss"].values).all()
    with xr.open_dataset(finished / "results/rel/runs/m64/s0_p0_lr0.01.nc") as converged:
        assert int(converged["final_step"]) == steps
    # Downstream steps ran on the whole sweep, and the checks table names the diverged runs.
    for name in ("ss_fig1.png", "ss_fig1.pdf"):
        assert (finished / "results/rel/figures" / name).stat().st_size > 0
    with open(finished / "results/checks.csv", encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["claim"].startswith("no run diverged")]
    by_exp = {r["experiment"]: r for r in rows}
    assert by_exp["rel"]["verdict"] == "fail" and float(by_exp["rel"]["measured"]) == 1
    assert "1 of 2 runs diverged" in by_exp["rel"]["detail"]
    assert "lr=1e+200" in by_exp["rel"]["detail"]
    assert by_exp["rel_b"]["verdict"] == "pass"


# Learning rates from about 1 to 1e100 do not overflow on this ReLU network: after a loss spike
# every unit is switched off for good (f = 0 on every train point) and the loss would stay at
# mean(y^2) with finite weights. The spike itself marks the run as diverged.
DEAD_NETWORK_LR = 10.0


def test_too_large_lr_that_switches_off_every_unit_is_diverged(tmp_path: Path) -> None:
    config = _config()
    config["experiments"]["rel"]["training"].update(steps=50, checkpoint_every=0)
    data_file, target_file = tmp_path / "data.nc", tmp_path / "target.nc"
    pipeline.make_data_file(data_settings(config, "rel", 0, 0.0), data_file)
    pipeline.make_target_file(target_settings(config, "rel", 64, 0, 0.0), data_file, target_file)
    out = tmp_path / "run.nc"
    pipeline.make_run_file(run_settings(config, "rel", 64, 0, 0.0, DEAD_NETWORK_LR), data_file,
                           target_file, out)
    with xr.open_dataset(out) as run:
        assert int(run["diverged"]) == 1 and int(run["diverged_step"]) == 1
        # Only the record before the spike is kept, and it is finite.
        assert run["step"].values.tolist() == [0]
        assert np.isfinite(run["train_loss"].values).all()


# --- item 4: interruption -----------------------------------------------------------------------


def _wait_for_checkpoint(root: Path, process: subprocess.Popen, log: Path) -> Path:
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    while time.monotonic() < deadline:
        found = sorted((root / "results").glob("*/checkpoints/**/*.ckpt"))
        if found:
            return found[0]
        if process.poll() is not None:
            pytest.fail(f"workflow ended before any checkpoint:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    pytest.fail("no checkpoint appeared")


@pytest.mark.slow
def test_killed_workflow_resumes_to_identical_run_files(finished: Path, tmp_path: Path) -> None:
    root = tmp_path / "workflow"
    root.mkdir()
    _workflow_copy(root)
    log = tmp_path / "killed.log"
    # The run that checkpoints, as the only target: collect, checks, figures and the other runs
    # would add jobs but nothing to what is tested here.
    # (One job trains all runs of a width, so both learning rates of width 64.)
    expected = {"results/rel/runs/m64/s0_p0_lr0.01.nc", "results/rel/runs/m64/s0_p0_lr1e+200.nc"}
    command = [sys.executable, "-m", "snakemake", *RUN_ARGS, *sorted(expected)]
    with open(log, "w", encoding="utf-8") as out:
        # Its own session, so that the kill reaches Snakemake and every job it started.
        process = subprocess.Popen(command, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            checkpoint = _wait_for_checkpoint(root, process, log)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # Killed mid-run: a checkpoint, no run file, and no half-written file under a final name.
    assert checkpoint.exists()
    assert _run_files(root) == {}
    for path in (root / "results").rglob("*.nc"):
        xr.open_dataset(path).close()

    again = _snakemake(root, *command[3:])
    if again.returncode != 0 and "LockException" in again.stderr:
        # Snakemake cannot tell a stale lock from a live one; it says how to clear it.
        assert "--unlock" in again.stderr
        unlock = _snakemake(root, "--unlock", *CONFIG_ARGS)
        assert unlock.returncode == 0, unlock.stderr[-3000:]
        again = _snakemake(root, *command[3:])
    assert again.returncode == 0, again.stderr[-5000:]
    after = _run_files(root)
    assert set(after) == expected
    # The interrupted run continued from its checkpoint instead of starting over.
    exp, _, width, _ = checkpoint.relative_to(root / "results").parts
    job_log = root / "results" / exp / "logs" / "runs" / f"{width}.log"
    assert "resuming from checkpoint" in job_log.read_text(encoding="utf-8")
    reference = _run_files(finished)
    for name, path in after.items():
        _assert_same_content(path, reference[name])
    assert not checkpoint.exists()
    assert _leftovers(root) == []


# --- item 5: extension --------------------------------------------------------------------------

_PLANNED_JOB = re.compile(r"rule (\w+):\n(?:\s+input: [^\n]*\n)?\s+output: ([^\n]*)")


def _plan(root: Path, config: dict, *, sort_keys: bool = False) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Dry run of `config` in `root`: jobs per rule, and the outputs each rule would write.

    The keys are written in the config's order (as an edit in place leaves them), or sorted.
    """
    text = yaml.safe_dump(config, sort_keys=sort_keys)
    (root / "changed.yaml").write_text(text, encoding="utf-8")
    result = _snakemake(root, "--dry-run", "--cores", "2", "--configfile", "changed.yaml",
                        "--replace-workflow-config")
    assert result.returncode == 0, result.stderr[-5000:]
    text = result.stdout + result.stderr
    outputs: dict[str, set[str]] = {}
    for rule, listed in _PLANNED_JOB.findall(text):
        outputs.setdefault(rule, set()).update(listed.split(", "))
    if "Nothing to be done" in text:
        return {}, outputs
    stats = _job_stats(text)
    stats.pop("total")
    return stats, outputs


def _raw_config() -> dict:
    with open(CONFIG_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.mark.slow
def test_added_width_and_seed_train_only_the_new_runs(finished: Path, tmp_path: Path) -> None:
    extended = _raw_config()
    extended["experiments"]["rel"]["sweep"]["width"].append(128)
    extended["experiments"]["rel"]["sweep"]["seed"].append(1)
    stats, outputs = _plan(finished, extended)
    # Data, target and training jobs are batched (per experiment, per width), so the data job and
    # width 64's jobs rerun because their output lists grew; then rel's collected file, its
    # figure and the checks table. Nothing of rel_b.
    assert stats == {"data_rel": 1, "target_rel": 2, "train_rel": 2, "collect": 1, "checks": 1,
                     "ss_fig1": 1, "all": 1}
    assert outputs["train_rel"] == {f"results/rel/runs/m{w}/s{s}_p0_lr{lr}.nc"
                                    for w in (64, 128) for s in (0, 1) for lr in ("0.01", "1e+200")}
    assert outputs["collect"] == {"results/rel/rel.nc"}
    # Running it trains only the new runs: width 64, seed 0 is restored from its completed-run
    # link, bit for bit, without training.
    # (A copy of the whole finished folder: Snakemake's metadata in .snakemake/ comes along.)
    root = tmp_path / "extended"
    shutil.copytree(finished, root, symlinks=True)
    before = {name: path.read_bytes() for name, path in _run_files(root).items()}
    (root / "extended.yaml").write_text(yaml.safe_dump(extended), encoding="utf-8")
    result = _snakemake(root, "--cores", "2", "--configfile", "extended.yaml",
                        "--replace-workflow-config")
    assert result.returncode == 0, result.stderr[-5000:]
    log = (root / "results/rel/logs/runs/m64.log").read_text(encoding="utf-8")
    assert log.count(" reused\n") == 2 and log.count(" trained\n") == 2, log[-3000:]
    after = _run_files(root)
    assert len(after) == 9  # rel: 2 widths x 2 seeds x 2 lrs; rel_b: 1
    for name, content in before.items():
        assert after[name].read_bytes() == content, name


@pytest.mark.slow
def test_reordered_config_keys_plan_nothing(finished: Path) -> None:
    # Same settings, every mapping's keys in another order: no job may rerun.
    assert _plan(finished, _raw_config(), sort_keys=True) == ({}, {})


@pytest.mark.slow
def test_changed_training_value_plans_exactly_the_affected_runs(finished: Path) -> None:
    longer = _raw_config()
    longer["experiments"]["rel_b"]["training"]["steps"] += 1
    stats, outputs = _plan(finished, longer)
    # rel_b draws no figures: its runs, its collected file and the checks table, nothing of rel.
    assert stats == {"train_rel_b": 1, "collect": 1, "checks": 1, "all": 1}
    assert outputs["train_rel_b"] == {"results/rel_b/runs/m64/s0_p0_lr0.01.nc"}
    assert outputs["collect"] == {"results/rel_b/rel_b.nc"}


# --- item 6: determinism ------------------------------------------------------------------------


@pytest.mark.slow
def test_same_config_gives_bit_identical_run_files(finished: Path, tmp_path: Path) -> None:
    # A second run of every run of `rel`, here through the entry points the rules call, in another
    # folder and process: the files must match the workflow's bit for bit.
    config = _config()
    sweep = config["experiments"]["rel"]["sweep"]
    data_file, target_file = tmp_path / "data.nc", tmp_path / "target.nc"
    pipeline.make_data_file(data_settings(config, "rel", 0, 0.0), data_file)
    pipeline.make_target_file(target_settings(config, "rel", 64, 0, 0.0), data_file, target_file)
    _assert_same_content(data_file, finished / "results/rel/data/s0_p0.nc")
    _assert_same_content(target_file, finished / "results/rel/target/m64_s0_p0.nc")
    for lr in sweep["lr"]:
        settings = run_settings(config, "rel", 64, 0, 0.0, lr)
        out = tmp_path / f"run_lr{lr}.nc"
        pipeline.make_run_file(settings, data_file, target_file, out, checkpoint=tmp_path / "run.ckpt")
        _assert_same_content(out, finished / f"results/rel/runs/m64/s0_p0_lr{format_float(lr)}.nc")


def _init_and_data(config: dict, seed: int) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seed of the init stream, W0, a and the train inputs, as a run of `rel` with `seed` gets them."""
    from minnorm.data.datasets import make_dataset

    data = make_dataset(config["experiments"]["rel"]["data"], label_noise=0.0, seed=seed)
    W0, a = init_weights(64, 4, 1.0, seed=seed)
    return derive_seed("init", seed, 64), W0, a, data.X_train


def test_seeds_depend_on_config_values_only(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config()
    torch.manual_seed(0)
    np.random.seed(0)
    first = _init_and_data(config, seed=1)
    # Different global random state and a different clock: nothing may change.
    torch.manual_seed(12345)
    np.random.seed(12345)
    torch.rand(7)
    monkeypatch.setattr(time, "time", lambda: 2.0e9)
    monkeypatch.setattr(time, "time_ns", lambda: 2 * 10**18)
    state = torch.get_rng_state()
    second = _init_and_data(config, seed=1)
    assert first[0] == second[0]
    for x, y in zip(first[1:], second[1:], strict=True):
        assert torch.equal(x, y)
    # The library never touches the global generator.
    assert torch.equal(torch.get_rng_state(), state)
    other = _init_and_data(config, seed=2)
    assert other[0] != first[0] and not torch.equal(other[1], first[1])
    # The data points depend on data.seed only: the same for every run seed.
    assert torch.equal(other[3], first[3])


def test_seeds_are_the_same_in_a_fresh_interpreter() -> None:
    # Another process with another string-hash seed: str keys go through CRC32, not hash().
    code = "from minnorm.core.seeding import derive_seed; print(derive_seed('init', 1, 64), derive_seed('data', 0))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    assert out.stdout.split() == [str(derive_seed("init", 1, 64)), str(derive_seed("data", 0))]


@pytest.mark.slow
def test_target_files_hold_the_weights_of_their_seed(finished: Path) -> None:
    for exp, seed in (("rel", 0), ("rel_b", 0)):
        W0, a = init_weights(64, 4, 1.0, seed=seed)
        with xr.open_dataset(finished / f"results/{exp}/target/m64_s{seed}_p0.nc") as target:
            assert np.array_equal(target["W0"].values, W0.numpy())
            assert np.array_equal(target["a"].values, a.numpy())


# --- item 7: singular targets -------------------------------------------------------------------


def _data_file(tmp_path: Path, duplicate: bool) -> tuple[Path, dict]:
    """A data file of `rel`; with `duplicate`, train point 1 is a copy of point 0 (label too)."""
    config = _config()
    path = tmp_path / "data.nc"
    pipeline.make_data_file(data_settings(config, "rel", 0, 0.0), path)
    if duplicate:
        data = load_dataset(path)
        X, y = data.X_train.clone(), data.y_train.clone()
        X[1], y[1] = X[0], y[0]
        path = tmp_path / "duplicated.nc"
        save_dataset(dataclasses.replace(data, X_train=X, y_train=y), path)
    return path, target_settings(config, "rel", 64, 0, 0.0)


def test_duplicated_points_give_a_finite_pinv_target_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    regular, settings = _data_file(tmp_path, duplicate=False)
    pipeline.make_target_file(settings, regular, tmp_path / "regular_target.nc")
    with xr.open_dataset(tmp_path / "regular_target.nc") as target:
        assert int(target["used_pinv"]) == 0
        regular_lambda = float(target["lambda_min_G"])
    assert regular_lambda > SINGULAR_LAMBDA_RTOL

    duplicated, settings = _data_file(tmp_path, duplicate=True)
    out = tmp_path / "target.nc"
    with caplog.at_level(logging.WARNING, logger="minnorm"), pytest.warns(SingularGramWarning):
        pipeline.make_target_file(settings, duplicated, out)
    assert any("G is singular" in r.getMessage() for r in caplog.records)
    with xr.open_dataset(out) as target:
        target = target.load()
    assert int(target["used_pinv"]) == 1
    lambda_max = float(np.linalg.eigvalsh(target["G"].values)[-1])
    assert abs(float(target["lambda_min_G"])) <= SINGULAR_LAMBDA_RTOL * lambda_max
    assert float(target["cond_G"]) > 1 / SINGULAR_LAMBDA_RTOL  # inf when lambda_min <= 0
    for name in ("W_star", "yGy", "target_norm"):
        assert np.isfinite(target[name].values).all(), name
    # The duplicated labels agree, so the pseudo-inverse target still interpolates every point.
    data = load_dataset(duplicated)
    with pytest.warns(SingularGramWarning):
        linearized = load_target(target, data)
    Xt = augment_inputs(data.X_train, True)
    W_star = torch.from_numpy(target["W_star"].values)
    assert torch.allclose(linearized.linearized_predict(Xt, W_star), data.y_train, atol=1e-8)


# --- item 8: resource limits --------------------------------------------------------------------

# Wide enough that the estimate is a visible fraction of a GiB, small enough to build in a second.
LARGE_WIDTH = 2**17


def test_run_too_large_for_memory_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import minnorm.training.resources

    config = _config()
    data_file, target_file = tmp_path / "data.nc", tmp_path / "target.nc"
    pipeline.make_data_file(data_settings(config, "rel", 0, 0.0), data_file)
    pipeline.make_target_file(target_settings(config, "rel", LARGE_WIDTH, 0, 0.0), data_file, target_file)
    settings = run_settings(config, "rel", LARGE_WIDTH, 0, 0.0, 0.01)
    needed = minnorm.training.resources.estimate_run_bytes(20, LARGE_WIDTH, 4, "float64", 30)
    # This machine pretends to have a quarter of what the run needs.
    monkeypatch.setattr(minnorm.training.resources, "available_bytes", lambda device: needed // 4)
    out, checkpoint = tmp_path / "run.nc", tmp_path / "run.ckpt"
    with pytest.raises(MemoryError) as refused:
        pipeline.make_run_file(settings, data_file, target_file, out, checkpoint=checkpoint)
    message = str(refused.value)
    assert f"estimated peak {needed / 2**30:.2f} GiB" in message
    assert f"width={LARGE_WIDTH}" in message and f"{needed / 4 / 2**30:.2f} GiB" in message
    assert not out.exists() and not checkpoint.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.nc", "target.nc"]
