"""A job's planned files follow its outputs below a module's `prefix:` (workflow.job_files)."""

from __future__ import annotations

import dataclasses

import pytest

from minnorm.workflow.job_files import (
    JobFilesError,
    jobs_at_outputs,
    output_prefix,
    under_prefix,
)
from minnorm.workflow.plan import TrainJob

# The settings object is carried along untouched; a plain stand-in is enough here.
JOBS = [
    TrainJob(
        config={"seed": seed},  # type: ignore[arg-type]
        identity="abc",
        data=f"results/e/data/s{seed}_p0.nc",
        target=f"results/e/target/m8_s{seed}_p0.nc",
        out=f"results/e/runs/m8/s{seed}_p0_lr0.01.nc",
        checkpoint=f"results/e/checkpoints/m8/s{seed}_p0_lr0.01.ckpt",
        done=f"results/e/checkpoints/m8/s{seed}_p0_lr0.01.done.nc",
    )
    for seed in (0, 1)
]


def test_prefix_is_what_snakemake_put_before_the_planned_outputs():
    planned = [job.out for job in JOBS]
    assert output_prefix(planned, reversed(planned)) == ""
    assert output_prefix(planned, [f"a/b/{p}" for p in planned]) == "a/b/"
    # A prefix that itself ends like a planned path still gives one common prefix.
    assert output_prefix(planned, [f"results/e/{p}" for p in planned]) == "results/e/"


def test_outputs_that_are_not_the_plan_are_refused_naming_them():
    planned = [job.out for job in JOBS]
    with pytest.raises(JobFilesError, match="planned but not given"):
        output_prefix(planned, [f"p/{planned[0]}", "p/results/e/runs/m8/other.nc"])
    with pytest.raises(JobFilesError):  # two different prefixes
        output_prefix(planned, [f"p/{planned[0]}", f"q/{planned[1]}"])
    with pytest.raises(JobFilesError):
        output_prefix(planned, [f"p/{planned[0]}"])


def test_every_path_of_a_job_moves_and_nothing_else():
    moved = under_prefix("p/", JOBS)
    for before, after in zip(JOBS, moved, strict=True):
        for key in ("data", "target", "out", "checkpoint", "done"):
            assert getattr(after, key) == "p/" + getattr(before, key)
        assert after.config == before.config and after.identity == "abc"
    assert JOBS[0].out.startswith("results/")  # the plan's jobs are left alone
    absolute = [dataclasses.replace(JOBS[0], data="/data/mnist", checkpoint=None)]
    assert under_prefix("p/", absolute)[0].data == "/data/mnist"
    assert under_prefix("p/", absolute)[0].checkpoint is None


def test_jobs_at_outputs_checks_the_inputs_it_will_read():
    outputs = [f"p/{job.out}" for job in JOBS]
    inputs = [f"p/{getattr(job, k)}" for job in JOBS for k in ("data", "target")]
    moved = jobs_at_outputs(JOBS, outputs, inputs)
    assert [job.out for job in moved] == outputs
    with pytest.raises(JobFilesError, match="undeclared inputs"):
        jobs_at_outputs(JOBS, outputs, inputs[1:])


def _tiny_config() -> dict:
    import yaml

    from helpers import REPO
    from minnorm.config import validate_config

    with open(REPO / "config" / "tests.yaml", encoding="utf-8") as handle:
        return validate_config(yaml.safe_load(handle))


def test_collect_reads_the_plans_run_files_below_its_prefix() -> None:
    from minnorm.workflow import plan
    from minnorm.workflow.job_files import collect_inputs

    config = _tiny_config()
    exp = "tiny_sphere"
    outputs = [f"p/{plan.collected_file(exp)}"]
    assert collect_inputs(config, exp, outputs) == [
        f"p/{path}" for path in plan.run_files(config, exp)
    ]
    assert len(collect_inputs(config, exp, outputs)) == 6
    with pytest.raises(JobFilesError):
        collect_inputs(config, exp, ["p/results/other/other.nc"])


def test_missing_outputs_are_those_of_jobs_with_a_stamp(tmp_path) -> None:
    from minnorm.workflow import plan
    from minnorm.workflow.job_files import missing_outputs

    config = _tiny_config()
    exp = "tiny_sphere"

    def where(path: str) -> str:  # below a module's prefix
        return str(tmp_path / "p" / path)

    # A fresh sweep: no stamp, nothing listed (every job runs anyway).
    assert missing_outputs(config, where) == []
    jobs = {plan.data_stamp_file(exp): plan.input_stage_files(config, exp)}
    for width in plan.sweep(config, exp).width:
        jobs[plan.train_stamp_file(exp, width)] = plan.width_run_files(config, exp, width)
    for stamp, outputs in jobs.items():
        for path in [stamp, *outputs]:
            (tmp_path / "p" / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "p" / path).write_text("x")
    others = [e for e in config["experiments"] if e != exp]
    assert missing_outputs({"experiments": {exp: config["experiments"][exp]}}, where) == []
    run = plan.width_run_files(config, exp, 128)[1]
    target = plan.input_stage_files(config, exp)[-1]
    (tmp_path / "p" / run).unlink()
    (tmp_path / "p" / target).unlink()
    assert missing_outputs(config, where) == [target, run]
    # A job whose stamp is gone is not listed: it runs for its stamp.
    (tmp_path / "p" / plan.train_stamp_file(exp, 128)).unlink()
    assert missing_outputs(config, where) == [target]
    assert others  # their jobs have no stamps here: nothing of theirs is listed
