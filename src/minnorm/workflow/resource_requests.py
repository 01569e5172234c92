"""Resource requests of the workflow's jobs (memory, wall time, GPUs) from the run plan.

Generous estimates for a cluster scheduler (`resources:` of the data and training rules; the data
job of an experiment also writes the target files of every width); the training module's own check
(`minnorm.training.resources.check_fits`) refuses a run or target that cannot fit before it
allocates anything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from minnorm.config.run_config import RunConfig
from minnorm.data.registry import DATASETS
from minnorm.workflow.plan import (
    experiment,
    experiment_runs,
    per_width,
    shared_key,
    sweep,
    train_jobs,
)

# Fixed memory of a Python process with torch and pytorch_lightning imported.
BASE_PROCESS_MB = 600
# Rough throughput of one CPU core on the GD step (multiply-adds per second), measured order of
# magnitude; the runtime request is generous on purpose because a job over its limit is killed.
CPU_MULTIPLY_ADDS_PER_S = 2e9
# One step does a forward and a backward pass: about three (n, p) x (p, m) products.
PRODUCTS_PER_STEP = 3
RUNTIME_SAFETY_FACTOR = 3.0
RUNTIME_OVERHEAD_MIN = 5
# One width's targets (every seed and label noise) are n x n solves plus (m, p) products: minutes
# at most even for large widths. The data job asks for this much per width.
TARGET_RUNTIME_MIN = 15


def input_dim(run: RunConfig) -> int:
    """Dimension p of a weight vector: the data's input dimension, plus one with a bias."""
    return DATASETS[run.data.name].input_dim(run.data) + int(run.model.bias)


def run_bytes(run: RunConfig) -> int:
    """Estimated peak bytes of one training run
    (`minnorm.training.resources.estimate_run_bytes`)."""
    # Imported here: resources imports torch, which planning file names does not need.
    from minnorm.training.resources import estimate_run_bytes

    return int(
        estimate_run_bytes(
            run.data.n_train, run.width, input_dim(run), run.training.dtype, run.data.n_test
        )
    )


def run_runtime_min(run: RunConfig) -> int:
    """Generous wall-time request (minutes) for one run from its steps, records and size."""
    return RUNTIME_OVERHEAD_MIN + math.ceil(RUNTIME_SAFETY_FACTOR * run_seconds(run) / 60)


def run_seconds(run: RunConfig) -> float:
    """Order-of-magnitude seconds of arithmetic of one run at CPU_MULTIPLY_ADDS_PER_S.

    A step computes on the training points only (about PRODUCTS_PER_STEP products of n_train x
    m x p); the test points are evaluated at the recorded steps alone.
    """
    data, training = run.data, run.training
    steps, record = training.steps_at(training.lr), training.record
    records = 2 + record.log_points + (steps // record.every if record.every else 0)
    per_product = run.width * input_dim(run)
    multiply_adds = per_product * (
        steps * PRODUCTS_PER_STEP * data.n_train
        + records * PRODUCTS_PER_STEP * (data.n_train + data.n_test)
    )
    return multiply_adds / CPU_MULTIPLY_ADDS_PER_S


def width_priority(config: dict[str, Any], exp: str, width: int | str) -> int:
    """Scheduling priority of one width's training job: its estimated seconds of arithmetic
    (`run_seconds` summed over its runs), so that among ready jobs the longest start first and
    the shorter ones fill the other cores around them (on 2 cores the default run's widest
    Figure 1 job then starts at once instead of after the narrow ones)."""
    return _width_estimates(config, exp, width)[0]


def data_priority(config: dict[str, Any], exp: str) -> int:
    """Scheduling priority of an experiment's data job: one above its longest training job.

    The data job writes the inputs of every training job of the experiment, and Snakemake does not
    pass a job's priority on to the jobs it waits for: at priority 0 the data job of one experiment
    waited behind every training job of the others, and its own longest training job started
    last (on 2 cores the default run's arora_fig2 job then trained alone for 80 s at the end)."""
    return 1 + max(width_priority(config, exp, width) for width in sweep(config, exp).width)


def width_mem_mb(config: dict[str, Any], exp: str, width: int | str) -> int:
    """Memory request (MB) of one width's training job, and of its targets (one at a time): its
    largest run, with the job's runs trained side by side in batches of at most
    `minnorm.training.resources.batch_size_limit` runs."""
    return _width_estimates(config, exp, width)[1]


def width_runtime_min(config: dict[str, Any], exp: str, width: int | str) -> int:
    """Wall-time request (minutes) of one width's training job: the sum over its runs."""
    return _width_estimates(config, exp, width)[2]


def _width_estimates(config: dict[str, Any], exp: str, width: int | str) -> tuple[int, int, int]:
    """(`width_priority`, `width_mem_mb`, `width_runtime_min`) of one width's training job, from
    one pass over its runs, remembered (`plan.per_width`): Snakemake asks for each several
    times, and a large sweep's width has thousands of runs."""

    def compute() -> tuple[int, int, int]:
        from minnorm.training.resources import batch_size_limit, estimate_batch_bytes

        jobs = train_jobs(config, exp, width)
        # Runs that differ only in seed and label noise have the same estimates: one per group.
        groups: dict[tuple[Any, ...], tuple[RunConfig, int]] = {}
        for job in jobs:
            key = shared_key(job.config)
            first, count = groups.get(key, (job.config, 0))
            groups[key] = (first, count + 1)
        seconds = sum(run_seconds(run) * count for run, count in groups.values())
        largest = max((run for run, _ in groups.values()), key=run_bytes)
        data, m, p = largest.data, largest.width, input_dim(largest)
        dtype = largest.training.dtype
        runs = min(len(jobs), batch_size_limit(data.n_train, m, p, dtype))
        batch = estimate_batch_bytes(data.n_train, m, p, dtype, data.n_test, runs)
        memory = BASE_PROCESS_MB + math.ceil(batch / 1e6)
        runtime = sum(run_runtime_min(run) * count for run, count in groups.values())
        return max(1, round(seconds)), memory, runtime

    return per_width("resource_estimates", config, exp, width, compute)


def data_mem_mb(config: dict[str, Any], exp: str) -> int:
    """Memory request (MB) of the data job of `exp`: its largest width's targets (the data sets are
    small beside them; the targets are computed one at a time)."""
    return max(width_mem_mb(config, exp, width) for width in sweep(config, exp).width)


def data_runtime_min(config: dict[str, Any], exp: str) -> int:
    """Wall-time request (minutes) of the data job of `exp`: `TARGET_RUNTIME_MIN` per width."""
    return TARGET_RUNTIME_MIN * len(sweep(config, exp).width)


def gpus(config: dict[str, Any], exp: str) -> int:
    """1 when the experiment asks for a GPU, else 0."""
    return int(experiment(config, exp).training.accelerator == "gpu")


# The memory the parse-time check plans against, in MB (`memory_limit`): a positive number for
# a machine other than this one (a cluster node), 0 to switch the check off.
MEMORY_MB_ENV = "MINNORM_MEMORY_MB"
# A collected dataset is built from the run files read into memory and copied into one grid:
# about this many copies of its values at the peak.
COLLECT_COPIES = 3


def machine_memory_mb() -> int:
    """Physical memory of this machine in MB."""
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 10**6)


def memory_limit(declared_mb: int | None, environ: Mapping[str, str]) -> tuple[int | None, str]:
    """The memory (MB) every job must fit in, and where it comes from: MEMORY_MB_ENV when set (0:
    None, no check), else `declared_mb` (the `mem_mb` of `--resources`, e.g. from a profile),
    else this machine's memory. ValueError naming the variable when it is not a whole number."""
    text = environ.get(MEMORY_MB_ENV, "").strip()
    if text:
        if not text.isdigit():
            raise ValueError(
                f"{MEMORY_MB_ENV}={text!r}: must be a whole number of MB (0: no check)"
            )
        value = int(text)
        return (value or None), f"{MEMORY_MB_ENV}={value}"
    if declared_mb:
        return declared_mb, f"the declared mem_mb={declared_mb} (--resources)"
    return machine_memory_mb(), f"this machine's {machine_memory_mb()} MB"


def data_set_mb(config: dict[str, Any], exp: str) -> int:
    """Memory (MB) of the data stage of `exp` beyond the process: its largest data set (train and
    test inputs in float64, with the raw copy, the scaled copy and the file being written)."""
    data = experiment(config, exp).data
    points = data.n_train + data.n_test
    return math.ceil(3 * 8 * points * (DATASETS[data.name].input_dim(data) + 1) / 1e6)


def collect_mem_mb(config: dict[str, Any], exp: str) -> int:
    """Memory request (MB) of the collect job of `exp`: every run's trajectories on the union of
    the recorded steps (one value per run and step, for each trajectory) and its spectra,
    COLLECT_COPIES times, plus the process."""
    from minnorm.training.run_plan import recording_steps
    from minnorm.training.run_record import TRAJECTORIES

    e = experiment(config, exp)
    steps: set[int] = set()
    for lr in e.sweep.lr:
        training = e.training.for_lr(lr)
        assert training.steps is not None
        steps.update(
            recording_steps(training.steps, training.record.every, training.record.log_points)
        )
    runs = len(experiment_runs(config, exp))
    per_run = len(steps) * len(TRAJECTORIES) + 2 * e.data.n_train + 32
    return BASE_PROCESS_MB + math.ceil(COLLECT_COPIES * 8 * runs * per_run / 1e6)


def _largest_part(n: int, n_test: int, m: int, p: int) -> str:
    """The key whose arrays dominate a run's memory: `data.n_train` (the n x n kernels),
    `sweep.width` (the n x m activations) or `data.dim` (the m x p weights)."""
    parts = {
        "data.n_train": 4 * n * n + 2 * n_test * n,
        "sweep.width": 6 * (n + n_test) * m,
        "data.dim": 14 * m * p,
    }
    return max(parts, key=lambda key: parts[key])


def memory_problems(config: dict[str, Any], limit_mb: int, source: str) -> list[str]:
    """Jobs of a validated config whose estimated memory exceeds `limit_mb` (from `source`, for
    the message), one line each starting with the key path to change: for training, the smallest
    width that does not fit, named at the key whose arrays dominate (`_largest_part`); then the
    data and collect stages."""
    problems = []
    advice = (
        f"use smaller sizes, or set {MEMORY_MB_ENV} to the memory (MB) of the machine that "
        "will run it (0: no check)"
    )
    for exp in config["experiments"]:
        e = experiment(config, exp)
        data, where = e.data, f"experiments.{exp}"
        p = DATASETS[data.name].input_dim(data) + int(e.model.bias)
        for width in e.sweep.width:
            need = width_mem_mb(config, exp, width)
            if need > limit_mb:
                key = _largest_part(data.n_train, data.n_test, width, p)
                if key == "data.dim" and DATASETS[data.name].dim is not None:
                    key = "sweep.width"
                problems.append(
                    f"{where}.{key}: width {width} needs an estimated {need} MB in its training "
                    f"job (n_train {data.n_train}, n_test {data.n_test}, p {p}, "
                    f"{e.training.dtype}; its largest arrays are set by {key}), more than "
                    f"{source}; {advice}"
                )
                break
        stage = BASE_PROCESS_MB + data_set_mb(config, exp)
        if stage > limit_mb:
            problems.append(
                f"{where}.data: the data job needs an estimated {stage} MB for the data set "
                f"({data.n_train + data.n_test} points of dimension {p}), more than {source}; "
                f"{advice}"
            )
        collect = collect_mem_mb(config, exp)
        if collect > limit_mb:
            problems.append(
                f"{where}.sweep: collecting its runs needs an estimated {collect} MB, more than "
                f"{source}; record fewer steps (training.record), sweep fewer runs, or {advice}"
            )
    return problems


def memory_refusal(
    config: dict[str, Any], declared: object, environ: Mapping[str, str]
) -> str | None:
    """The parse-time refusal of a validated config whose jobs cannot fit (`memory_problems`
    against `memory_limit`), or None. `declared`: Snakemake's global `mem_mb` resource (a number,
    an object with `.value`, or None)."""
    value = getattr(declared, "value", declared)
    declared_mb = value if isinstance(value, int) and not isinstance(value, bool) else None
    try:
        limit, source = memory_limit(declared_mb, environ)
    except ValueError as error:
        return str(error)
    problems = memory_problems(config, limit, source) if limit else []
    return "invalid config:\n" + "\n".join(problems) if problems else None
