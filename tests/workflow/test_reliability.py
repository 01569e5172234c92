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

from helpers import REPO
from helpers.workflow import (
    WORKFLOW_TIMEOUT_S,
    copy_workflow,
    expected_job_counts,
    job_stats,
    snakemake,
)
from minnorm.config import validate_config
from minnorm.config.run_config import TargetConfig
from minnorm.core.model import augment_inputs, init_weights
from minnorm.core.seeding import derive_seed
from minnorm.core.target import SingularGramWarning
from minnorm.data.datasets import load_dataset, save_dataset
from minnorm.data.target_file import load_target
from minnorm.io.files import format_float
from minnorm.workflow import pipeline, plan
from minnorm.workflow.plan import data_config, run_config, target_config

CONFIG_FILE = Path(__file__).resolve().parents[1] / "configs" / "reliability.yaml"
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
    copy_workflow(root)
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
            assert va.dims == vb.dims and xr.Variable((), 0, va.attrs).identical(
                xr.Variable((), 0, vb.attrs)
            ), name
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
    result = snakemake(root, *RUN_ARGS)
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
    pipeline.make_data_file(data_config(config, "rel", 0, 0.0), data_file)
    pipeline.make_target_file(target_config(config, "rel", 64, 0, 0.0), data_file, target_file)
    out = tmp_path / "run.nc"
    pipeline.make_run_file(
        run_config(config, "rel", 64, 0, 0.0, DEAD_NETWORK_LR), data_file, target_file, out
    )
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
        process = subprocess.Popen(
            command, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
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

    again = snakemake(root, *command[3:])
    if again.returncode != 0 and "LockException" in again.stderr:
        # Snakemake cannot tell a stale lock from a live one; it says how to clear it.
        assert "--unlock" in again.stderr
        unlock = snakemake(root, "--unlock", *CONFIG_ARGS)
        assert unlock.returncode == 0, unlock.stderr[-3000:]
        again = snakemake(root, *command[3:])
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


def _parsed_plan(
    result: subprocess.CompletedProcess,
) -> tuple[dict[str, int], dict[str, set[str]], str]:
    """A successful dry run's jobs per rule ({} when nothing is to be done), the outputs each rule
    would write, and the whole text."""
    assert result.returncode == 0, result.stderr[-5000:]
    text = result.stdout + result.stderr
    outputs: dict[str, set[str]] = {}
    for rule, listed in _PLANNED_JOB.findall(text):
        # A job's stamp (plan.DATA_STAMP_FILE, TRAIN_STAMP_FILE) comes with its other outputs.
        files = [f for f in listed.split(", ") if "/stamps/" not in f]
        outputs.setdefault(rule, set()).update(files)
    if "Nothing to be done" in text:
        return {}, outputs, text
    stats = job_stats(text)
    stats.pop("total")
    return stats, outputs, text


def _plan(
    root: Path, config: dict, *, sort_keys: bool = False
) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Dry run of `config` in `root`: jobs per rule, and the outputs each rule would write.

    The keys are written in the config's order (as an edit in place leaves them), or sorted.
    """
    text = yaml.safe_dump(config, sort_keys=sort_keys)
    (root / "changed.yaml").write_text(text, encoding="utf-8")
    result = snakemake(
        root,
        "--dry-run",
        "--cores",
        "2",
        "--configfile",
        "changed.yaml",
        "--replace-workflow-config",
    )
    stats, outputs, _ = _parsed_plan(result)
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
    # Data (with the targets of every width) and training jobs are batched (per experiment, per
    # width), so the data job and width 64's training job rerun because their output lists grew;
    # then rel's collected file, its figure and the checks table. Nothing of rel_b.
    assert stats == {
        "data_rel": 1,
        "train_rel": 2,
        "collect": 1,
        "checks": 1,
        "checks_summary": 1,
        "ss_fig1": 1,
        "all": 1,
    }
    assert outputs["train_rel"] == {
        f"results/rel/runs/m{w}/s{s}_p0_lr{lr}.nc"
        for w in (64, 128)
        for s in (0, 1)
        for lr in ("0.01", "1e+200")
    }
    assert outputs["collect"] == {"results/rel/rel.nc"}
    # Running it trains only the new runs: width 64, seed 0 is restored from its completed-run
    # link, bit for bit, without training.
    # (A copy of the whole finished folder: Snakemake's metadata in .snakemake/ comes along.)
    root = tmp_path / "extended"
    shutil.copytree(finished, root, symlinks=True)
    before = {name: path.read_bytes() for name, path in _run_files(root).items()}
    (root / "extended.yaml").write_text(yaml.safe_dump(extended), encoding="utf-8")
    result = snakemake(
        root, "--cores", "2", "--configfile", "extended.yaml", "--replace-workflow-config"
    )
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
    assert stats == {"train_rel_b": 1, "collect": 1, "checks": 1, "checks_summary": 1, "all": 1}
    assert outputs["train_rel_b"] == {"results/rel_b/runs/m64/s0_p0_lr0.01.nc"}
    assert outputs["collect"] == {"results/rel_b/rel_b.nc"}


# --- item 6: determinism ------------------------------------------------------------------------


@pytest.mark.slow
def test_same_config_gives_bit_identical_run_files(
    finished: Path, tmp_path: Path, one_thread: None
) -> None:
    # A second run of every run of `rel`, here through the entry points the rules call, in another
    # folder and process: the files must match the workflow's bit for bit. One torch thread, as
    # the training jobs run: the GD step's implementation (the run file's `gd_step`) depends on it.
    config = _config()
    sweep = config["experiments"]["rel"]["sweep"]
    data_file, target_file = tmp_path / "data.nc", tmp_path / "target.nc"
    pipeline.make_data_file(data_config(config, "rel", 0, 0.0), data_file)
    pipeline.make_target_file(target_config(config, "rel", 64, 0, 0.0), data_file, target_file)
    _assert_same_content(data_file, finished / "results/rel/data/s0_p0.nc")
    _assert_same_content(target_file, finished / "results/rel/target/m64_s0_p0.nc")
    for lr in sweep["lr"]:
        settings = run_config(config, "rel", 64, 0, 0.0, lr)
        out = tmp_path / f"run_lr{lr}.nc"
        pipeline.make_run_file(
            settings, data_file, target_file, out, checkpoint=tmp_path / "run.ckpt"
        )
        _assert_same_content(out, finished / f"results/rel/runs/m64/s0_p0_lr{format_float(lr)}.nc")


def _init_and_data(config: dict, seed: int) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seed of the init stream, W0, a and the train inputs, as a run of `rel` with `seed` gets
    them."""
    from minnorm.data.datasets import make_dataset
    from minnorm.data.settings import DataSettings

    data = make_dataset(
        DataSettings.from_mapping(config["experiments"]["rel"]["data"]), label_noise=0.0, seed=seed
    )
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
    code = (
        "from minnorm.core.seeding import derive_seed; "
        "print(derive_seed('init', 1, 64), derive_seed('data', 0))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert out.stdout.split() == [str(derive_seed("init", 1, 64)), str(derive_seed("data", 0))]


@pytest.mark.slow
def test_target_files_hold_the_weights_of_their_seed(finished: Path) -> None:
    for exp, seed in (("rel", 0), ("rel_b", 0)):
        W0, a = init_weights(64, 4, 1.0, seed=seed)
        with xr.open_dataset(finished / f"results/{exp}/target/m64_s{seed}_p0.nc") as target:
            assert np.array_equal(target["W0"].values, W0.numpy())
            assert np.array_equal(target["a"].values, a.numpy())


# --- item 7: singular targets -------------------------------------------------------------------


def _data_file(tmp_path: Path, duplicate: bool) -> tuple[Path, TargetConfig]:
    """A data file of `rel`; with `duplicate`, train point 1 is a copy of point 0 (label too)."""
    config = _config()
    path = tmp_path / "data.nc"
    pipeline.make_data_file(data_config(config, "rel", 0, 0.0), path)
    if duplicate:
        data = load_dataset(path)
        X, y = data.X_train.clone(), data.y_train.clone()
        X[1], y[1] = X[0], y[0]
        path = tmp_path / "duplicated.nc"
        save_dataset(dataclasses.replace(data, X_train=X, y_train=y), path)
    return path, target_config(config, "rel", 64, 0, 0.0)


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
    pipeline.make_data_file(data_config(config, "rel", 0, 0.0), data_file)
    pipeline.make_target_file(
        target_config(config, "rel", LARGE_WIDTH, 0, 0.0), data_file, target_file
    )
    settings = run_config(config, "rel", LARGE_WIDTH, 0, 0.0, 0.01)
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


# --- reuse keyed on numerics (issue 11 item 3; issue 12 classes 5, 6, 9; issue 13 item 4) -------
# On config/tests.yaml in a temporary copy of the repository *including the package source*
# (imported from the copy through PYTHONPATH), so that a module can be edited without touching
# the real src/.

TINY_ARGS = ["--cores", "2", "--configfile", "tiny.yaml", "--replace-workflow-config"]
# Each training job prints one such line to the terminal. It is searched anywhere in the output:
# two jobs print to the same terminal, so a line need not start where the previous one ended.
_JOB_LINE = re.compile(r"(train_[A-Za-z0-9_]+) m=(\d+): reused (\d+), trained (\d+)")
# A dry run's reason for a job whose params changed.
_REASON = re.compile(r"^\s*reason: (.*)$", flags=re.MULTILINE)
PLOTTING_MODULE = "src/minnorm/figures/style.py"
NUMERICAL_MODULE = "src/minnorm/core/model.py"


def _tiny_raw() -> dict:
    """config/tests.yaml's paper experiments (tiny_sphere, tiny_digits): the reuse tests count
    their 10 runs; the studies' tiny_beyond has its own workflow test (test_workflow.py)."""
    with open(REPO / "config" / "tests.yaml", encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    raw["experiments"] = {k: v for k, v in raw["experiments"].items() if k != "tiny_beyond"}
    return raw


def _run_in(root: Path, *args: str, config: dict | None = None) -> subprocess.CompletedProcess[str]:
    """Snakemake in `root` with the package imported from `root/src`; `config` -> tiny.yaml."""
    if config is not None:
        (root / "tiny.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKFLOW_TIMEOUT_S,
        check=False,
    )


def _edit(root: Path, module: str) -> None:
    """Append a comment line to `module` of the copy: changes its bytes, not its behaviour."""
    with open(root / module, "a", encoding="utf-8") as handle:
        handle.write("# an edit that changes nothing a program does\n")


def _wall_times(root: Path) -> dict[str, float]:
    times = {}
    for name, path in _run_files(root).items():
        with xr.open_dataset(path) as run:
            times[name] = float(run["wall_time_s"])
    return times


def _job_lines(output: str) -> dict[tuple[str, int], tuple[int, int]]:
    """{(rule, width): (reused, trained)} from the training jobs' terminal lines."""
    return {(r, int(w)): (int(k), int(n)) for r, w, k, n in _JOB_LINE.findall(output)}


def _tiny_run_files() -> list[str]:
    config = validate_config(_tiny_raw())
    return [f for exp in config["experiments"] for f in plan.run_files(config, exp)]


@pytest.fixture(scope="module")
def tiny_finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config/tests.yaml run to completion in a copy of the workflow and the package source."""
    root = copy_workflow(tmp_path_factory.mktemp("tiny_reuse"))
    shutil.copytree(
        REPO / "src" / "minnorm",
        root / "src" / "minnorm",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    result = _run_in(root, *TINY_ARGS, config=_tiny_raw())
    assert result.returncode == 0, result.stderr[-5000:]
    lines = _job_lines(result.stdout)
    assert sum(n for _, n in lines.values()) == len(_tiny_run_files()) == 10, result.stdout
    return root


def _fork(finished_root: Path, tmp_path: Path) -> Path:
    """A copy of a finished folder (results, Snakemake's metadata, source), mtimes kept."""
    root = tmp_path / "fork"
    shutil.copytree(finished_root, root, symlinks=True)
    return root


def _dry_plan(root: Path, config: dict) -> tuple[dict[str, int], dict[str, set[str]], str]:
    result = _run_in(root, "--dry-run", *TINY_ARGS, config=config)
    return _parsed_plan(result)


@pytest.mark.slow
def test_plotting_edit_and_progress_interval_retrain_nothing(
    tiny_finished: Path, tmp_path: Path
) -> None:
    root = _fork(tiny_finished, tmp_path)
    before = _wall_times(root)
    _edit(root, PLOTTING_MODULE)
    changed = _tiny_raw()
    for experiment in changed["experiments"].values():
        experiment["training"]["progress_every"] = 10
        experiment["training"]["checkpoint_every"] = 0
    # No job's params change: nothing to do at all.
    assert _dry_plan(root, changed)[0] == {}
    # Even when the training jobs are forced to run, every run is restored, none trained.
    result = _run_in(
        root,
        *TINY_ARGS,
        "--forcerun",
        "train_tiny_sphere",
        "train_tiny_digits",
        *_tiny_run_files(),
        config=changed,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert _job_lines(result.stdout) == {
        ("train_tiny_sphere", 64): (2, 0),
        ("train_tiny_sphere", 128): (2, 0),
        ("train_tiny_sphere", 256): (2, 0),
        ("train_tiny_digits", 64): (4, 0),
    }
    assert _wall_times(root) == before


@pytest.mark.slow
def test_numerical_code_change_reruns_every_run(tiny_finished: Path, tmp_path: Path) -> None:
    root = _fork(tiny_finished, tmp_path)
    before = _wall_times(root)
    _edit(root, NUMERICAL_MODULE)
    # Planned: every data and training job (all made by numerical code), and what follows.
    stats, outputs, text = _dry_plan(root, _tiny_raw())
    assert stats == expected_job_counts(validate_config(_tiny_raw())), text[-3000:]
    assert outputs["train_tiny_sphere"] | outputs["train_tiny_digits"] == set(_tiny_run_files())
    result = _run_in(root, *TINY_ARGS, *_tiny_run_files(), config=_tiny_raw())
    assert result.returncode == 0, result.stderr[-5000:]
    lines = _job_lines(result.stdout)
    assert lines == {
        ("train_tiny_sphere", 64): (0, 2),
        ("train_tiny_sphere", 128): (0, 2),
        ("train_tiny_sphere", 256): (0, 2),
        ("train_tiny_digits", 64): (0, 4),
    }
    after = _wall_times(root)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)


@pytest.mark.slow
def test_changed_lr_retrains_exactly_its_experiment(tiny_finished: Path, tmp_path: Path) -> None:
    root = _fork(tiny_finished, tmp_path)
    changed = _tiny_raw()
    changed["experiments"]["tiny_digits"]["training"]["lr"] = 0.04
    stats, outputs, _ = _dry_plan(root, changed)
    assert {rule: n for rule, n in stats.items() if rule.split("_")[0] in ("data", "train")} == {
        "train_tiny_digits": 1
    }
    assert outputs["train_tiny_digits"] == set(
        plan.run_files(validate_config(changed), "tiny_digits")
    )
    before = {name: path.read_bytes() for name, path in _run_files(root).items()}
    new_runs = plan.run_files(validate_config(changed), "tiny_digits")
    assert all("_lr0.04.nc" in name for name in new_runs)  # lr is part of the run file's name
    targets = [*plan.run_files(validate_config(changed), "tiny_sphere"), *new_runs]
    result = _run_in(root, *TINY_ARGS, *targets, config=changed)
    assert result.returncode == 0, result.stderr[-5000:]
    assert _job_lines(result.stdout) == {("train_tiny_digits", 64): (0, 4)}
    for name, path in _run_files(root).items():
        if name.startswith("results/tiny_sphere/"):
            assert path.read_bytes() == before[name], name
    for name in new_runs:
        with xr.open_dataset(root / name) as run:
            assert float(run["lr"]) == 0.04 and int(run["final_step"]) == 50


@pytest.mark.slow
def test_changed_steps_give_short_dry_run_reasons(tiny_finished: Path) -> None:
    changed = _tiny_raw()
    changed["experiments"]["tiny_sphere"]["training"]["steps"] += 1
    stats, _, text = _dry_plan(tiny_finished, changed)
    assert stats["train_tiny_sphere"] == 3 and "train_tiny_digits" not in stats
    reasons = _REASON.findall(text)
    params = [r for r in reasons if r.startswith("Params have changed")]
    assert len(params) == 3, text[-3000:]
    assert max(map(len, params)) < 300, params


@pytest.mark.slow
def test_reordered_sweep_lists_plan_nothing(tiny_finished: Path) -> None:
    reordered = _tiny_raw()
    for experiment in reordered["experiments"].values():
        for key, values in experiment["sweep"].items():
            experiment["sweep"][key] = list(reversed(values))
    assert reordered != _tiny_raw()
    assert _dry_plan(tiny_finished, reordered)[0] == {}


@pytest.mark.slow
def test_truncated_target_is_rebuilt_while_runs_are_reused(
    tiny_finished: Path, tmp_path: Path
) -> None:
    root = _fork(tiny_finished, tmp_path)
    name = "results/tiny_sphere/target/m128_s0_p0.nc"
    target = root / name
    os.truncate(target, target.stat().st_size // 2)
    before = {n: p.read_bytes() for n, p in _run_files(root).items()}
    result = _run_in(root, *TINY_ARGS, config=_tiny_raw())
    assert result.returncode == 0, result.stderr[-5000:]
    assert f"{name} was damaged (truncated:" in result.stderr
    _assert_same_content(target, tiny_finished / name)
    # The experiment's data job wrote it again with its data files and the other widths' targets
    # (same content), so every width's training job ran again and restored its runs bit for bit.
    assert _job_lines(result.stdout) == {
        ("train_tiny_sphere", w): (2, 0) for w in (64, 128, 256)
    }, result.stdout[-3000:] + result.stderr[-3000:]
    assert {n: p.read_bytes() for n, p in _run_files(root).items()} == before


@pytest.mark.slow
def test_deleted_run_file_is_rebuilt_by_the_next_run(tiny_finished: Path, tmp_path: Path) -> None:
    root = _fork(tiny_finished, tmp_path)
    name = "results/tiny_sphere/runs/m128/s1_p0_lr0.01.nc"
    (root / name).unlink()
    result = _run_in(root, *TINY_ARGS, config=_tiny_raw())
    assert result.returncode == 0, result.stderr[-5000:]
    # Only its width's job ran; it restored the run from its completed-run link.
    assert _job_lines(result.stdout) == {("train_tiny_sphere", 128): (2, 0)}, result.stdout[-3000:]
    _assert_same_content(root / name, tiny_finished / name)


@pytest.mark.slow
def test_replaced_local_data_file_reruns_the_data_job(tmp_path: Path) -> None:
    from helpers.image_files import random_images, write_mnist

    rng = np.random.default_rng(0)
    labels = [0, 1] * 6
    folder = tmp_path / "mnist"
    paths = write_mnist(
        folder, random_images(rng, labels, (28, 28)), random_images(rng, labels, (28, 28))
    )
    (tmp_path / "wf").mkdir()
    root = copy_workflow(tmp_path / "wf")
    config = {
        "experiments": {
            "digits_local": {
                "data": {
                    "name": "mnist",
                    "n_train": 4,
                    "n_test": 4,
                    "classes": [0, 1],
                    "path": str(folder),
                },
                "training": {"steps": 10},
                "sweep": {"width": [8], "seed": [0]},
            }
        }
    }
    data_file = "results/digits_local/data/s0_p0.nc"
    assert _run_in(root, *TINY_ARGS, data_file, config=config).returncode == 0
    first = (root / data_file).read_bytes()
    assert _dry_plan(root, config)[0].get("data_digits_local") is None
    # Other images under the same name: the data job is planned again and its file changes.
    time.sleep(0.01)
    write_mnist(folder, random_images(rng, labels, (28, 28)), random_images(rng, labels, (28, 28)))
    assert paths["train-images"].is_file()
    stats, _, text = _dry_plan(root, config)
    assert stats.get("data_digits_local") == 1, text[-3000:]
    assert _run_in(root, *TINY_ARGS, data_file, config=config).returncode == 0
    assert (root / data_file).read_bytes() != first
