"""Resource requests of the workflow's jobs (memory, wall time, GPUs) from the run plan.

Generous estimates for a cluster scheduler (`resources:` of the data and training rules; the data
job of an experiment also writes the target files of every width); the training module's own check
(`minnorm.training.resources.check_fits`) refuses a run or target that cannot fit before it
allocates anything.
"""

from __future__ import annotations

import math
from typing import Any

from minnorm.config.run_config import RunConfig
from minnorm.data.registry import DATASETS
from minnorm.workflow.plan import experiment, sweep, train_jobs

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
    return max(1, round(sum(run_seconds(job.config) for job in train_jobs(config, exp, width))))


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
    from minnorm.training.resources import batch_size_limit, estimate_batch_bytes

    jobs = train_jobs(config, exp, width)
    largest = max((job.config for job in jobs), key=run_bytes)
    data, m, p = largest.data, largest.width, input_dim(largest)
    dtype = largest.training.dtype
    runs = min(len(jobs), batch_size_limit(data.n_train, m, p, dtype))
    batch = estimate_batch_bytes(data.n_train, m, p, dtype, data.n_test, runs)
    return BASE_PROCESS_MB + math.ceil(batch / 1e6)


def width_runtime_min(config: dict[str, Any], exp: str, width: int | str) -> int:
    """Wall-time request (minutes) of one width's training job: the sum over its runs."""
    return sum(run_runtime_min(job.config) for job in train_jobs(config, exp, width))


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
