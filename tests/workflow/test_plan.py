"""Unit tests of the run plan (minnorm.workflow.plan): sweeps, file names, jobs, identities,
resources.

Each test works on the validated config dicts alone and runs in milliseconds (no Snakemake).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest
import yaml

from helpers import REPO
from minnorm.config import validate_config
from minnorm.io import fingerprint
from minnorm.workflow import plan, resource_requests


def _load(name: str) -> dict:
    with open(REPO / "config" / name, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def tiny() -> dict:
    return validate_config(_load("tests.yaml"))


@pytest.fixture(scope="module")
def default() -> dict:
    return validate_config(_load("config.yaml"))


# --- sweeps and settings (moved here from test_config.py) -----------------------------------------


def test_experiment_runs_is_the_sweep_product(tiny: dict) -> None:
    runs = plan.experiment_runs(tiny, "tiny_digits")
    assert runs == [plan.RunPoint(64, s, p, 0.05) for s in (0, 1) for p in (0.0, 1.0)]
    assert len(plan.experiment_runs(tiny, "tiny_sphere")) == 3 * 2
    assert [r.width for r in plan.experiment_runs(tiny, "tiny_sphere", "128")] == [128, 128]
    with pytest.raises(plan.PlanError, match="experiments.nope: no such experiment"):
        plan.experiment_runs(tiny, "nope")


def test_sweep_lists_are_sorted_so_their_order_changes_nothing(tiny: dict) -> None:
    shuffled = copy.deepcopy(tiny)
    sweep = shuffled["experiments"]["tiny_sphere"]["sweep"]
    sweep["width"] = [256, 64, 128]
    sweep["seed"] = [1, 0]
    digits = shuffled["experiments"]["tiny_digits"]["sweep"]
    digits["label_noise"] = [1.0, 0.0]
    assert plan.sweep(shuffled, "tiny_sphere").width == (64, 128, 256)
    for exp, width in (("tiny_sphere", 128), ("tiny_digits", 64)):
        for function in (plan.train_jobs, plan.target_jobs, plan.train_job_param):
            assert repr(function(shuffled, exp, width)) == repr(function(tiny, exp, width)), (
                function
            )
        assert plan.data_jobs(shuffled, exp) == plan.data_jobs(tiny, exp)
        assert repr(plan.target_jobs(shuffled, exp)) == repr(plan.target_jobs(tiny, exp))
        assert plan.data_job_param(shuffled, exp) == plan.data_job_param(tiny, exp)
        assert plan.run_files(shuffled, exp) == plan.run_files(tiny, exp)


def test_run_config_resolves_one_run(tiny: dict) -> None:
    run = plan.run_config(tiny, "tiny_digits", 64, 1, 1.0, 0.2)
    settings = run.to_mapping()
    assert set(settings) == {
        "experiment",
        "data",
        "model",
        "training",
        "width",
        "seed",
        "label_noise",
        "lr",
    }
    assert run.training.lr == run.lr == 0.2
    assert run.data.classes == (0, 1) and run.training.dtype == "float32"
    assert settings["data"]["classes"] == [0, 1]
    # Frozen: nothing can edit it, and editing its mapping leaves the config as it was.
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.training.steps = 1  # type: ignore[misc]
    settings["training"]["steps"] = 1
    assert run.training.steps == tiny["experiments"]["tiny_digits"]["training"]["steps"] == 50


def test_data_and_target_settings_leave_out_what_does_not_change_them(tiny: dict) -> None:
    data = plan.data_config(tiny, "tiny_sphere", 1, 0.0).to_mapping()
    assert set(data) == {"experiment", "data", "seed", "label_noise"}
    target = plan.target_config(tiny, "tiny_sphere", 128, 1, 0.0)
    assert set(target.to_mapping()) == {
        "experiment",
        "data",
        "model",
        "seed",
        "label_noise",
        "width",
    }
    assert target.width == 128 and target.model.bias is True


def test_sweep_value_maps_wildcards_back_to_config_values(default: dict) -> None:
    assert plan.sweep_value(default, "arora_fig2", "label_noise", "0.2") == 0.2
    assert plan.sweep_value(default, "arora_fig2", "label_noise", "0") == 0.0
    assert plan.sweep_value(default, "ss_fig1", "width", "5000") == 5000
    assert plan.sweep_value(default, "ss_fig1", "lr", "0.01") == 0.01
    with pytest.raises(plan.PlanError, match=r"experiments.ss_fig1.sweep.width: '3' is not one of"):
        plan.sweep_value(default, "ss_fig1", "width", "3")


def test_settings_do_not_depend_on_key_order_in_the_yaml() -> None:
    raw = _load("tests.yaml")
    reordered = copy.deepcopy(raw)
    data = reordered["experiments"]["tiny_sphere"]["data"]
    reordered["experiments"]["tiny_sphere"]["data"] = dict(reversed(list(data.items())))
    a, b = validate_config(raw), validate_config(reordered)
    assert plan.run_config(a, "tiny_sphere", 64, 0, 0.0, 0.01).to_json() == (
        plan.run_config(b, "tiny_sphere", 64, 0, 0.0, 0.01).to_json()
    )
    assert plan.target_config(a, "tiny_sphere", 64, 0, 0.0).to_json() == (
        plan.target_config(b, "tiny_sphere", 64, 0, 0.0).to_json()
    )
    assert plan.train_job_param(a, "tiny_sphere", 64) == plan.train_job_param(b, "tiny_sphere", 64)


# --- file names
# ------------------------------------------------------------------------------------


def test_file_names_follow_the_contract(tiny: dict) -> None:
    # ARCHITECTURE.md's names, spelled out here independently of the templates.
    assert plan.data_files(tiny, "tiny_digits") == [
        "results/tiny_digits/data/s0_p0.nc",
        "results/tiny_digits/data/s0_p1.nc",
        "results/tiny_digits/data/s1_p0.nc",
        "results/tiny_digits/data/s1_p1.nc",
    ]
    assert plan.target_files(tiny, "tiny_sphere", 128) == [
        "results/tiny_sphere/target/m128_s0_p0.nc",
        "results/tiny_sphere/target/m128_s1_p0.nc",
    ]
    assert plan.width_run_files(tiny, "tiny_sphere", "64") == [
        "results/tiny_sphere/runs/m64/s0_p0_lr0.01.nc",
        "results/tiny_sphere/runs/m64/s1_p0_lr0.01.nc",
    ]
    assert len(plan.run_files(tiny, "tiny_sphere")) == 6
    assert plan.collected_file("tiny_sphere") == "results/tiny_sphere/tiny_sphere.nc"
    assert plan.figure_files(tiny, "tiny_digits") == [
        "results/tiny_digits/figures/arora_fig2.png",
        "results/tiny_digits/figures/arora_fig2.pdf",
        "results/tiny_digits/figures/arora_fig1.png",
        "results/tiny_digits/figures/arora_fig1.pdf",
    ]
    paths = plan.run_paths("e", plan.RunPoint(width=10, seed=2, label_noise=0.25, lr=1e-5))
    assert dataclasses.asdict(paths) == {
        "data": "results/e/data/s2_p0.25.nc",
        "target": "results/e/target/m10_s2_p0.25.nc",
        "out": "results/e/runs/m10/s2_p0.25_lr1e-05.nc",
        "checkpoint": "results/e/checkpoints/m10/s2_p0.25_lr1e-05.ckpt",
        "done": "results/e/checkpoints/m10/s2_p0.25_lr1e-05.done.nc",
    }


# --- jobs
# ------------------------------------------------------------------------------------------


def test_jobs_list_every_output_once(tiny: dict) -> None:
    data = plan.data_jobs(tiny, "tiny_digits")
    assert [job.out for job in data] == plan.data_files(tiny, "tiny_digits")
    assert data[1].config == plan.data_config(tiny, "tiny_digits", 0, 1.0)
    targets = plan.target_jobs(tiny, "tiny_digits", 64)
    assert [job.out for job in targets] == plan.target_files(tiny, "tiny_digits", 64)
    assert [job.data for job in targets] == plan.data_files(tiny, "tiny_digits")
    # The data job writes its data files, then the targets of every width in width order: exactly
    # the input-stage files, each once.
    every = plan.target_jobs(tiny, "tiny_sphere")
    assert [job.out for job in every] == [
        f for w in (64, 128, 256) for f in plan.target_files(tiny, "tiny_sphere", w)
    ]
    assert every == [
        job for w in (64, 128, 256) for job in plan.target_jobs(tiny, "tiny_sphere", w)
    ]
    assert [
        job.out for job in (*plan.data_jobs(tiny, "tiny_sphere"), *every)
    ] == plan.input_stage_files(tiny, "tiny_sphere")
    train = plan.train_jobs(tiny, "tiny_sphere", 256)
    assert [job.out for job in train] == plan.width_run_files(tiny, "tiny_sphere", 256)
    job = train[1]
    assert job.config == plan.run_config(tiny, "tiny_sphere", 256, 1, 0.0, 0.01)
    assert job.identity == plan.run_identity_digest(job.config)
    assert job.checkpoint == "results/tiny_sphere/checkpoints/m256/s1_p0_lr0.01.ckpt"
    with pytest.raises(plan.PlanError, match="sweep.width: '65' is not one of"):
        plan.train_jobs(tiny, "tiny_sphere", 65)


def _with(config: dict, exp: str, section: str, **values: object) -> dict:
    """The tiny config with `values` set in `exp`'s `section`, validated again."""
    del config  # always the tiny config, from the file: validation fills sweep.lr from training.lr
    changed = _load("tests.yaml")
    changed["experiments"][exp].setdefault(section, {}).update(values)
    return validate_config(changed)


def test_identity_ignores_log_and_checkpoint_intervals(tiny: dict) -> None:
    quiet = _with(tiny, "tiny_sphere", "training", progress_every=0, checkpoint_every=7)
    assert plan.train_job_param(quiet, "tiny_sphere", 64) == plan.train_job_param(
        tiny, "tiny_sphere", 64
    )
    assert [j.identity for j in plan.train_jobs(quiet, "tiny_sphere", 64)] == [
        j.identity for j in plan.train_jobs(tiny, "tiny_sphere", 64)
    ]
    # ... while the resolved config handed to training keeps them.
    assert plan.train_jobs(quiet, "tiny_sphere", 64)[0].config.training.progress_every == 0


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("training", "lr", 0.02),
        ("training", "steps", 51),
        ("training", "dtype", "float32"),
        ("training", "step_impl", "eager"),
        ("training", "record", {"every": 5, "log_points": 5}),
        ("training", "accelerator", "cpu"),
        ("training", "loss", "mean"),
        ("model", "kappa", 2.0),
        ("data", "n_train", 21),
        ("data", "seed", 3),
    ],
)
def test_identity_follows_every_numeric_setting(
    tiny: dict, section: str, key: str, value: object
) -> None:
    changed = _with(tiny, "tiny_sphere", section, **{key: value})
    before = plan.train_jobs(tiny, "tiny_sphere", 64)
    after = plan.train_jobs(changed, "tiny_sphere", 64)
    assert all(a.identity != b.identity for a, b in zip(after, before, strict=True))
    assert plan.train_job_param(changed, "tiny_sphere", 64) != plan.train_job_param(
        tiny, "tiny_sphere", 64
    )
    # Other experiments are untouched.
    assert plan.train_job_param(changed, "tiny_digits", 64) == plan.train_job_param(
        tiny, "tiny_digits", 64
    )


def test_data_job_param_follows_data_and_target_settings_not_training(tiny: dict) -> None:
    # The data job writes the data files and the targets of every width: its param follows the
    # data and model settings and the width list, and no training setting.
    changed = _with(tiny, "tiny_sphere", "training", lr=0.5, steps=7, dtype="float32")
    assert plan.data_job_param(changed, "tiny_sphere") == plan.data_job_param(tiny, "tiny_sphere")
    for section, values in (
        ("model", {"kappa": 3.0}),
        ("model", {"bias": False}),
        ("data", {"n_train": 21}),
    ):
        other = _with(tiny, "tiny_sphere", section, **values)
        assert plan.data_job_param(other, "tiny_sphere") != plan.data_job_param(
            tiny, "tiny_sphere"
        ), values
        assert plan.data_job_param(other, "tiny_digits") == plan.data_job_param(tiny, "tiny_digits")
    widths = _with(tiny, "tiny_sphere", "sweep", width=[64, 128, 256, 512])
    assert plan.data_job_param(widths, "tiny_sphere") != plan.data_job_param(tiny, "tiny_sphere")
    # ... while the data files themselves keep their settings.
    assert plan.data_jobs(widths, "tiny_sphere") == plan.data_jobs(tiny, "tiny_sphere")


def test_identity_follows_the_numerics_fingerprint(
    tiny: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fingerprint.numerics_fingerprint()
    before = (
        plan.data_job_param(tiny, "tiny_sphere"),
        plan.train_job_param(tiny, "tiny_sphere", 64),
        plan.train_jobs(tiny, "tiny_sphere", 64)[0].identity,
    )
    assert f"numerics {real[: plan.PARAM_DIGEST_HEX]}" in before[1]
    monkeypatch.setattr(plan, "numerics_fingerprint", lambda: "f" * 64)
    after = (
        plan.data_job_param(tiny, "tiny_sphere"),
        plan.train_job_param(tiny, "tiny_sphere", 64),
        plan.train_jobs(tiny, "tiny_sphere", 64)[0].identity,
    )
    assert all(a != b for a, b in zip(after, before, strict=True))


def test_identity_digest_is_sha256_of_numeric_settings_and_code(tiny: dict) -> None:
    # An independent spelling of the definition: JSON with sorted keys, SHA-256.
    import hashlib

    settings = plan.run_config(tiny, "tiny_sphere", 64, 0, 0.0, 0.01)
    numeric = settings.to_mapping()
    del numeric["training"]["progress_every"], numeric["training"]["checkpoint_every"]
    text = json.dumps(
        {"numerics": fingerprint.numerics_fingerprint(), "settings": numeric},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert plan.run_identity_digest(settings) == hashlib.sha256(text.encode()).hexdigest()


def test_train_jobs_identities_equal_the_per_run_digest() -> None:
    # train_jobs builds the numeric settings once per (lr, swept settings) and writes each run's
    # width, seed and label noise in; the reference is the definition, run by run. The beyond
    # study sweeps data.seed, lr and model.kappa; the tests config label noise.
    checked = 0
    for config in (validate_config(_load("beyond.yaml")), validate_config(_load("tests.yaml"))):
        for exp in config["experiments"]:
            width = plan.sweep(config, exp).width[0]
            jobs = plan.train_jobs(config, exp, width)
            expected = [plan.run_identity_digest(job.config) for job in jobs]
            assert [job.identity for job in jobs] == expected
            assert len(set(expected)) == len(expected)
            checked += len(jobs)
    assert checked > 100


def test_per_width_values_follow_the_experiment_settings(tiny: dict) -> None:
    # Remembered per width, but never across a change of the experiment's settings.
    changed = copy.deepcopy(tiny)
    changed["experiments"]["tiny_sphere"]["model"]["kappa"] = 3.0
    for config in (tiny, changed, tiny):
        fresh = plan._job_param(
            [job.config.numeric_settings() for job in plan.train_jobs(config, "tiny_sphere", 64)]
        )
        assert plan.train_job_param(config, "tiny_sphere", 64) == fresh
    assert plan.train_job_param(changed, "tiny_sphere", 64) != plan.train_job_param(
        tiny, "tiny_sphere", 64
    )
    memory = resource_requests.width_mem_mb(tiny, "tiny_sphere", 256)
    bigger = copy.deepcopy(tiny)
    bigger["experiments"]["tiny_sphere"]["data"]["n_train"] *= 8
    assert resource_requests.width_mem_mb(bigger, "tiny_sphere", 256) > memory


def test_job_params_are_short(default: dict) -> None:
    # A dry run's "Params have changed" reason prints the changed params before and after.
    for exp in default["experiments"]:
        width = plan.sweep(default, exp).width[-1]
        for param in (plan.data_job_param(default, exp), plan.train_job_param(default, exp, width)):
            assert len(repr(param)) < 60, param


# --- local data files
# -------------------------------------------------------------------------------


def _data_at(tiny: dict, name: str, path: Path | None) -> dict:
    """The tiny config with tiny_digits' data read from `path` as the data set `name`."""
    changed = copy.deepcopy(tiny)
    data = changed["experiments"]["tiny_digits"]["data"]
    data.update(name=name, path=None if path is None else str(path))
    return changed


def test_local_data_files_are_the_originals(tiny: dict, tmp_path: Path) -> None:
    assert plan.local_data_files(tiny, "tiny_digits") == []
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"x")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"x")
    assert plan.local_data_files(_data_at(tiny, "mnist", tmp_path), "tiny_digits") == [
        str(tmp_path / "train-images-idx3-ubyte.gz"),
        str(tmp_path / "train-labels-idx1-ubyte"),
        str(tmp_path / "t10k-images-idx3-ubyte"),
        str(tmp_path / "t10k-labels-idx1-ubyte"),
    ]
    inner = tmp_path / "cifar-10-batches-bin"
    inner.mkdir()
    assert plan.local_data_files(_data_at(tiny, "cifar10", tmp_path), "tiny_digits") == [
        str(inner / f"data_batch_{i}.bin") for i in range(1, 6)
    ] + [str(inner / "test_batch.bin")]


# --- resource requests (minnorm.workflow.resource_requests; moved here from test_config.py)
# -------------------------------------------------------


def test_resource_estimates_grow_with_the_run(default: dict) -> None:
    small = plan.run_config(default, "ss_fig1", 1000, 0, 0.0, 0.01)
    large = plan.run_config(default, "ss_fig1", 10000, 0, 0.0, 0.01)
    assert resource_requests.input_dim(small) == 6
    assert (
        resource_requests.input_dim(plan.run_config(default, "arora_fig2", 2000, 0, 0.0, 0.01))
        == 64
    )
    assert resource_requests.run_bytes(large) > resource_requests.run_bytes(small) > 0
    # The memory request covers the training module's own estimate (which refuses runs too large).
    from minnorm.training.resources import estimate_run_bytes

    assert resource_requests.run_bytes(large) == estimate_run_bytes(100, 10000, 6, "float64", 200)
    assert resource_requests.run_runtime_min(large) > resource_requests.run_runtime_min(small) >= 1
    runs = plan.train_jobs(default, "ss_fig1", 10000)
    assert resource_requests.width_runtime_min(default, "ss_fig1", 10000) == sum(
        resource_requests.run_runtime_min(j.config) for j in runs
    )
    # The job trains its runs (5 seeds x 2 label readings) side by side: one run's memory plus the
    # other runs' GD steps, in batches no larger than the training module's limit.
    from minnorm.training.resources import batch_size_limit, estimate_batch_bytes

    assert len(runs) == 10
    side_by_side = min(len(runs), batch_size_limit(100, 10000, 6, "float64"))
    batch = estimate_batch_bytes(100, 10000, 6, "float64", 200, runs=side_by_side)
    assert resource_requests.width_mem_mb(default, "ss_fig1", 10000) == 600 + math.ceil(batch / 1e6)
    assert 1 < batch / estimate_run_bytes(100, 10000, 6, "float64", 200) < side_by_side
    assert resource_requests.gpus(default, "ss_fig1") == 0
    # The data job computes every width's targets, one at a time: the largest width's memory,
    # and a runtime per width.
    widths = list(plan.sweep(default, "ss_fig1").width)
    assert resource_requests.data_mem_mb(default, "ss_fig1") == max(
        resource_requests.width_mem_mb(default, "ss_fig1", w) for w in widths
    )
    assert resource_requests.data_mem_mb(default, "ss_fig1") * 1e6 >= resource_requests.run_bytes(
        plan.run_config(default, "ss_fig1", widths[-1], 0, 0.0, 0.01)
    )
    assert resource_requests.data_runtime_min(default, "ss_fig1") == (
        resource_requests.TARGET_RUNTIME_MIN * len(widths)
    )


def test_result_files_name_every_netcdf_the_workflow_keeps(tiny: dict) -> None:
    tiny = copy.deepcopy(tiny)
    tiny["experiments"] = {k: tiny["experiments"][k] for k in ("tiny_sphere", "tiny_digits")}
    files = plan.result_files(tiny)
    assert len(files) == len(set(files))
    # tiny_sphere: 2 data, 6 target, 6 run, 6 done, 1 collected; tiny_digits: 4, 4, 4, 4, 1.
    assert len(files) == (2 + 6 + 6 + 6 + 1) + (4 + 4 + 4 + 4 + 1)
    assert "results/tiny_digits/checkpoints/m64/s1_p1_lr0.05.done.nc" in files
    assert "results/tiny_sphere/tiny_sphere.nc" in files


def test_input_stage_files_are_every_data_and_target_file(tiny: dict) -> None:
    files = plan.input_stage_files(tiny, "tiny_sphere")
    assert files == plan.data_files(tiny, "tiny_sphere") + [
        f"results/tiny_sphere/target/m{w}_s{s}_p0.nc" for w in (64, 128, 256) for s in (0, 1)
    ]


def test_training_priority_starts_the_longest_jobs_first(default: dict) -> None:
    widths = list(plan.sweep(default, "ss_fig1").width)
    priorities = [resource_requests.width_priority(default, "ss_fig1", w) for w in widths]
    assert priorities == sorted(priorities) and len(set(priorities)) == len(widths)
    # Proportional to the job's arithmetic: 10x the width, 10x the priority.
    assert priorities[widths.index(10000)] / priorities[widths.index(1000)] == pytest.approx(
        10, rel=0.01
    )
    # arora_fig2's 18 runs of n = 200, p = 64 outweigh ss_fig1's 5 runs of n = 100, p = 6 at m =
    # 1000.
    assert resource_requests.width_priority(default, "arora_fig2", 1000) > priorities[0]
    # Each experiment's data job goes before every training job of its experiment.
    for exp in default["experiments"]:
        top = max(
            resource_requests.width_priority(default, exp, w)
            for w in plan.sweep(default, exp).width
        )
        assert resource_requests.data_priority(default, exp) == top + 1
