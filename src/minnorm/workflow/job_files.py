"""A job's planned files put where Snakemake put its outputs (a `module` with `prefix:`).

The run plan (`minnorm.workflow.plan`) names files relative to the working directory,
`results/<exp>/...`. Used as a Snakemake `module` with `prefix: "p"`, the workflow's rules read
and write `p/results/<exp>/...` instead: Snakemake puts every relative input, output, log and
benchmark below the prefix. A job script therefore takes its files from its own
`snakemake.output` and `snakemake.input`: `output_prefix` finds what Snakemake put before the
planned outputs (and refuses outputs that are not the plan's), and `under_prefix` moves every
file of the job's work list (data, target, run file, checkpoint, completed-run link) below it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from minnorm.workflow.plan import (
    DataJob,
    TargetJob,
    TrainJob,
    collected_file,
    data_stamp_file,
    input_stage_files,
    run_files,
    sweep,
    train_stamp_file,
    width_run_files,
)

# The fields of a job (plan.DataJob, TargetJob, TrainJob) that hold file paths.
PATH_KEYS = ("data", "target", "out", "checkpoint", "done")

Job = TypeVar("Job", DataJob, TargetJob, TrainJob)


class JobFilesError(ValueError):
    """A job's outputs are not its planned files (below one common prefix)."""


def output_prefix(planned: Sequence[str], outputs: Iterable[Any]) -> str:
    """What Snakemake put before each planned output path: "" without a module prefix,
    e.g. "minnorm/" with `prefix: "minnorm"`.

    `planned`: the job's outputs as the plan names them; `outputs`: `snakemake.output`. Raises
    JobFilesError naming the files when the two differ by more than one common prefix.
    """
    given = sorted(str(o) for o in outputs)
    if not planned or not given:
        raise JobFilesError("a job with no planned or no given outputs")
    first = min(planned, key=len)
    candidates = [o for o in given if o == first or o.endswith("/" + first)]
    for out in candidates:
        prefix = out[: len(out) - len(first)]
        if sorted(prefix + p for p in planned) == given:
            return prefix
    missing = sorted(set(planned) - {o for o in given for p in planned if o.endswith(p)})
    raise JobFilesError(
        f"the job's outputs are not its planned files: planned {sorted(planned)[:3]}... "
        f"({len(planned)} files), given {given[:3]}... ({len(given)} files); "
        f"planned but not given: {missing[:5]}"
    )


def under_prefix(prefix: str, jobs: Iterable[Job]) -> list[Job]:
    """Copies of `jobs` with every relative path (`PATH_KEYS`) below `prefix`."""

    def moved(path: str | None) -> str | None:
        if path is None or os.path.isabs(path):
            return path
        return prefix + path

    def changes(job: Job) -> dict[str, Any]:
        return {key: moved(getattr(job, key)) for key in PATH_KEYS if hasattr(job, key)}

    return [dataclasses.replace(job, **changes(job)) for job in jobs]


def jobs_at_outputs(
    jobs: Sequence[Job], outputs: Iterable[Any], inputs: Iterable[Any] = ()
) -> list[Job]:
    """`jobs` (each with `out`) moved below the prefix of `outputs`, the job's
    `snakemake.output`. With `inputs` (`snakemake.input`), every `data`/`target` file of the
    moved jobs must be one of them (JobFilesError otherwise)."""
    prefix = output_prefix([job.out for job in jobs], outputs)
    moved = under_prefix(prefix, jobs)
    declared = {str(i) for i in inputs}
    if declared:
        read = {
            str(getattr(job, key))
            for job in moved
            for key in ("data", "target")
            if hasattr(job, key)
        }
        if not read <= declared:
            raise JobFilesError(f"the job reads undeclared inputs: {sorted(read - declared)[:5]}")
    return moved


def collect_inputs(config: dict[str, Any], exp: str, outputs: Iterable[Any]) -> list[str]:
    """The run files the collect job of `exp` reads (`plan.run_files`), below the prefix of its
    `snakemake.output`: the job's declared inputs are the training jobs' stamps, not the runs."""
    prefix = output_prefix([collected_file(exp)], outputs)
    return [prefix + path for path in run_files(config, exp)]


def missing_outputs(config: dict[str, Any], where: Callable[[str], str] = str) -> list[str]:
    """The data, target and run files of `config` that do not exist although their job's stamp
    does (removed by hand or as damaged, or new to the config: an added seed), as the plan names
    them; `where` maps a planned path to its place on disk (below a module's prefix).

    The default target lists them beside the stamps, so that their jobs run again: Snakemake
    does not rerun a job whose requested output (the stamp) exists for another missing output.
    A job without its stamp runs anyway, so a fresh sweep lists none (its planning stays linear).
    """
    missing = []
    for exp in config["experiments"]:
        jobs = [(data_stamp_file(exp), input_stage_files(config, exp))]
        jobs += [
            (train_stamp_file(exp, width), width_run_files(config, exp, width))
            for width in sweep(config, exp).width
        ]
        for stamp, files in jobs:
            if os.path.exists(where(stamp)):
                missing += [f for f in files if not os.path.exists(where(f))]
    return missing
