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
from minnorm.config import data_settings, run_settings, target_settings, validate_config
from minnorm.data import load_dataset, save_dataset
from minnorm.model import augment_inputs, init_weights
from minnorm.seeding import derive_seed
from minnorm.target import SingularGramWarning
from minnorm.target_file import load_target

from test_workflow import WORKFLOW_TIMEOUT_S, _copy_workflow, _job_stats, _snakemake

CONFIG_FILE = Path(__file__).resolve().parent / "configs" / "reliability.yaml"
CONFIG_ARGS = ["--configfile", "reliability.yaml", "--replace-workflow-config"]
# The laptop profile's settings, spelled out: the copy runs without a profile.
RUN_ARGS = ["--cores", "2", "--rerun-incomplete", *CONFIG_ARGS]
DIVERGING_LR = 100.0
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


def _assert_same_run(a: Path, b: Path) -> None:
    """Every variable bit-identical (dtype, shape, bytes, attrs) and equal dataset attrs.

    Only VOLATILE_VARIABLES and VOLATILE_ATTRS may differ.
    """
    with xr.open_dataset(a) as ds_a, xr.open_dataset(b) as ds_b:
        assert sorted(ds_a.variables) == sorted(ds_b.variables), (a, b)
        for name in ds_a.variables:
            va, vb = ds_a[name].variable, ds_b[name].variable
            assert va.dims == vb.dims and va.attrs == vb.attrs, name
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
        flags = collected["diverged"].sel(label_noise=0.0, width=64)
        assert flags.sel(lr=DIVERGING_LR).values.tolist() == [1, 1]
        assert flags.sel(lr=0.01).values.tolist() == [0, 0]
        diverged_steps = collected["diverged_step"].sel(label_noise=0.0, width=64)
        assert diverged_steps.sel(lr=0.01).values.tolist() == [-1, -1]
        for seed in (0, 1):
            at = int(diverged_steps.sel(lr=DIVERGING_LR, seed=seed))
            assert 0 < at < steps
            with xr.open_dataset(finished / f"results/rel/runs/m64/s{seed}_p0_lr100.nc") as run:
                # The run stopped early: nothing recorded after the step it diverged at.
                assert int(run["diverged"]) == 1 and int(run["diverged_step"]) == at
                assert int(run["final_step"]) == at
                assert int(run["step"].max()) <= at
    # Downstream steps ran on the whole sweep, and the checks table names the diverged runs.
    for name in ("ss_fig1.png", "ss_fig1.pdf"):
        assert (finished / "results/rel/figures" / name).stat().st_size > 0
    with open(finished / "results/checks.csv", encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["claim"].startswith("no run diverged")]
    by_exp = {r["experiment"]: r for r in rows}
    assert by_exp["rel"]["verdict"] == "fail" and float(by_exp["rel"]["measured"]) == 2
    assert "2 of 4 runs diverged" in by_exp["rel"]["detail"]
    assert "lr=100" in by_exp["rel"]["detail"]
    assert by_exp["rel_b"]["verdict"] == "pass"


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
    root = _workflow_copy(tmp_path / "killed")
    log = tmp_path / "killed.log"
    command = [sys.executable, "-m", "snakemake", *RUN_ARGS]
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
    expected = set(_run_files(finished))
    before = _run_files(root)
    assert set(before) < expected, "the kill came after the last run: nothing was interrupted"
    # A file under its final name is complete: atomic writes never expose half a file.
    for path in before.values():
        with xr.open_dataset(path) as run:
            assert int(run["final_step"]) >= 1
    assert checkpoint.exists()

    again = _snakemake(root, *RUN_ARGS)
    if again.returncode != 0 and "LockException" in again.stderr:
        # Snakemake cannot tell a stale lock from a live one; it says how to clear it.
        assert "--unlock" in again.stderr
        unlock = _snakemake(root, "--unlock", *CONFIG_ARGS)
        assert unlock.returncode == 0, unlock.stderr[-3000:]
        again = _snakemake(root, *RUN_ARGS)
    assert again.returncode == 0, again.stderr[-5000:]
    after = _run_files(root)
    assert set(after) == expected
    reference = _run_files(finished)
    for name, path in after.items():
        _assert_same_run(path, reference[name])
    assert not checkpoint.exists()
    assert _leftovers(root) == []


# --- item 5: extension --------------------------------------------------------------------------

_PLANNED_JOB = re.compile(r"rule (\w+):\n(?:\s+input: [^\n]*\n)?\s+output: ([^\n]*)")


def _plan(root: Path, config: dict) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Dry run of `config` in `root`: jobs per rule, and the outputs each rule would write."""
    (root / "changed.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _snakemake(root, "--dry-run", "--cores", "2", "--configfile", "changed.yaml",
                        "--replace-workflow-config")
    assert result.returncode == 0, result.stderr[-5000:]
    text = result.stdout + result.stderr
    outputs: dict[str, set[str]] = {}
    for rule, listed in _PLANNED_JOB.findall(text):
        outputs.setdefault(rule, set()).update(listed.split(", "))
    stats = _job_stats(text)
    stats.pop("total")
    return stats, outputs


def _raw_config() -> dict:
    with open(CONFIG_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.mark.slow
def test_added_width_or_seed_plans_only_the_new_runs(finished: Path) -> None:
    downstream = {"collect": 1, "checks": 1, "ss_fig1": 1, "all": 1}
    wider = _raw_config()
    wider["experiments"]["rel"]["sweep"]["width"].append(128)
    stats, outputs = _plan(finished, wider)
    assert stats == {"target": 2, "train": 4, **downstream}
    assert outputs["train"] == {f"results/rel/runs/m128/s{s}_p0_lr{lr}.nc"
                                for s in (0, 1) for lr in ("0.01", "100")}
    assert outputs["collect"] == {"results/rel/rel.nc"}

    more_seeds = _raw_config()
    more_seeds["experiments"]["rel"]["sweep"]["seed"].append(2)
    stats, outputs = _plan(finished, more_seeds)
    assert stats == {"data": 1, "target": 1, "train": 2, **downstream}
    assert outputs["train"] == {"results/rel/runs/m64/s2_p0_lr0.01.nc",
                                "results/rel/runs/m64/s2_p0_lr100.nc"}


@pytest.mark.slow
def test_changed_training_value_plans_exactly_the_affected_runs(finished: Path) -> None:
    longer = _raw_config()
    longer["experiments"]["rel_b"]["training"]["steps"] += 1
    stats, outputs = _plan(finished, longer)
    # rel_b draws no figures: its runs, its collected file and the checks table, nothing of rel.
    assert stats == {"train": 1, "collect": 1, "checks": 1, "all": 1}
    assert outputs["train"] == {"results/rel_b/runs/m64/s0_p0_lr0.01.nc"}
    assert outputs["collect"] == {"results/rel_b/rel_b.nc"}


# --- item 6: determinism ------------------------------------------------------------------------


@pytest.mark.slow
def test_same_config_gives_bit_identical_run_files(finished: Path, tmp_path: Path) -> None:
    root = _workflow_copy(tmp_path)
    # Only the run files of `rel` (data, target and train jobs): enough to compare, and quick.
    wanted = sorted(name for name in _run_files(finished) if name.startswith("results/rel/"))
    result = _snakemake(root, *RUN_ARGS, *wanted)
    assert result.returncode == 0, result.stderr[-5000:]
    again = _run_files(root)
    assert sorted(again) == wanted
    for name in wanted:
        _assert_same_run(again[name], finished / name)


def _init_and_data(config: dict, seed: int) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seed of the init stream, W0, a and the train inputs, as a run of `rel` with `seed` gets them."""
    from minnorm.data import make_dataset

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
    code = "from minnorm.seeding import derive_seed; print(derive_seed('init', 1, 64), derive_seed('data', 0))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    assert out.stdout.split() == [str(derive_seed("init", 1, 64)), str(derive_seed("data", 0))]


@pytest.mark.slow
def test_target_files_hold_the_weights_of_their_seed(finished: Path) -> None:
    for seed in (0, 1):
        W0, a = init_weights(64, 4, 1.0, seed=seed)
        with xr.open_dataset(finished / f"results/rel/target/m64_s{seed}_p0.nc") as target:
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
