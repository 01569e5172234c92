"""Entry points of the workflow rules: each reads its inputs, calls the library and writes one
output atomically."""

from __future__ import annotations

import atexit
import gc
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import xarray as xr

from minnorm import __version__
from minnorm.config.run_config import DataConfig, RunConfig, TargetConfig
from minnorm.io.files import atomic_copy, atomic_write_netcdf, write_text_atomic
from minnorm.io.fingerprint import numerics_fingerprint
from minnorm.io.job_clock import CLOCK
from minnorm.workflow.plan import (
    IDENTITY_ATTR,
    DataJob,
    TargetJob,
    TrainJob,
    run_identity_digest,
)

PathLike = str | os.PathLike[str]

logger = logging.getLogger(__name__)
# The job clock's part for importing torch, pytorch_lightning and minnorm's training modules.
IMPORT_PART = "imports (torch, Lightning, training modules)"

# Library modules are imported inside each entry point: every job is a fresh interpreter, and a
# collect or figure job should not pay for importing torch and pytorch_lightning it never uses.


def _project_line_or_warning(record: logging.LogRecord) -> bool:
    """Keep minnorm's own records (INFO and up) and every library's warnings and errors."""
    return record.levelno >= logging.WARNING or record.name.split(".")[0] in ("minnorm", "__main__")


# Young-generation threshold of the cyclic garbage collector in a job process (CPython's default
# is 700): see ``lighten_garbage_collection``.
JOB_GC_THRESHOLD = 50_000


def lighten_garbage_collection() -> None:
    """Make CPython's cyclic garbage collector cheap in this short-lived job process.

    A training job imports torch, pytorch_lightning and sympy: millions of objects that live until
    the process exits. By default the collector starts a young-generation pass every 700 net
    allocations, and every so often a full pass over all of those objects; at exit the
    interpreter makes one more full pass. On the 2-core reference machine that was ~1 s of the
    imports and ~1.3 s of the exit of every training job (``benchmarks/bench_job_start.py``,
    BENCHMARKS.md). Here passes start only every ``JOB_GC_THRESHOLD`` allocations, and at exit
    the live objects are frozen (``gc.freeze``) so that the final pass skips them. The collector
    stays on: reference cycles made during a long training run are still freed.
    """
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, JOB_GC_THRESHOLD), gen1, gen2)
    atexit.register(gc.freeze)


def log_job_to(path: PathLike) -> None:
    """Send this process's stderr, warnings and log records to the job log; the first call of
    every job's script, which also makes garbage collection cheap for the rest of the job
    (``lighten_garbage_collection``).

    The log holds minnorm's own lines (INFO and up) and every library's warnings and errors,
    not third-party INFO chatter (fontTools.subset, matplotlib.mathtext, ...): the filter sits
    on the handler, so a library that sets its own logger to INFO is kept out as well.
    The file is left open on purpose: a traceback at exit must still reach it.
    """
    CLOCK.lap("interpreter and the script's imports")
    lighten_garbage_collection()
    sys.stderr = open(path, "w", encoding="utf-8")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(_project_line_or_warning)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)


def log_job_clock() -> None:
    """The last call of every job's script, once its work is done: charge the time since the
    previous lap to "the job's work" and log where the job's time went (`minnorm.io.job_clock`).
    A failed job does not get here: its log still ends with the error."""
    CLOCK.lap("the job's work")
    logger.info("%s", CLOCK.summary())


def _read_netcdf(path: PathLike) -> xr.Dataset:
    """Load a whole netCDF file into memory and close it (so it can be replaced later)."""
    with xr.open_dataset(path, engine="netcdf4") as opened:
        return opened.load()


def make_data_file(config: DataConfig, out: PathLike) -> None:
    """Build the data set of `config` (data settings, run seed, label noise) and write it to
    `out`."""
    from minnorm.data.datasets import make_dataset, save_dataset

    dataset = make_dataset(config.data, label_noise=config.label_noise, seed=config.seed)
    logger.info(
        "data %s: %d train, %d test points, label noise %s",
        config.data.name,
        dataset.X_train.shape[0],
        dataset.X_test.shape[0],
        config.label_noise,
    )
    save_dataset(dataset, out)


def make_target_file(
    config: TargetConfig,
    data_file: PathLike,
    out: PathLike,
    kernels: dict[tuple[Any, ...], Any] | None = None,
) -> None:
    """Initialise (width, seed), compute the min-norm target and kernels, write the target file.

    `config` (model, width, seed, ...) is stored as the `config` attr. `kernels`: a cache of the
    limit kernels (H, H_test) by inputs and model settings, shared by the target files of one
    data job: they do not depend on the width or the seed, and for softplus and tanh each takes
    seconds of quadrature.
    """
    import torch

    from minnorm.data.datasets import load_dataset
    from minnorm.data.target_file import build_target_dataset, limit_kernels
    from minnorm.training.resources import check_fits

    data = load_dataset(data_file)
    model = config.model
    # The target needs the (n, m) activation patterns in float64 like a run does: refuse a
    # width that cannot fit before allocating them, naming the sizes.
    n, d = data.X_train.shape
    check_fits(
        n, config.width, d + int(model.bias), "float64", data.X_test.shape[0], torch.device("cpu")
    )
    # H depends on the inputs (not the labels) and the model settings but not on the width or
    # the seed: the data files of several seeds of one data draw share it.
    key = (
        data.X_train.numpy().tobytes(),
        data.X_test.numpy().tobytes(),
        model.bias,
        model.kappa,
        model.activation,
        model.leak,
        model.train_output,
    )
    cache = {} if kernels is None else kernels
    if key not in cache:
        cache[key] = limit_kernels(
            data, bias=model.bias, kappa=model.kappa, activation=model.activation,
            leak=model.leak, train_output=model.train_output,
        )  # fmt: skip
    ds = build_target_dataset(
        data, width=config.width, seed=config.seed, bias=model.bias, kappa=model.kappa,
        activation=model.activation, leak=model.leak, train_output=model.train_output,
        kernels=cache[key],
    )  # fmt: skip
    if int(ds["used_pinv"]):
        logger.warning(
            "G is singular (lambda_min %.3g): W* uses the pseudo-inverse",
            float(ds["lambda_min_G"]),
        )
    # Not provenance_attrs(): it imports pytorch_lightning (seconds per job) for a version string.
    ds.attrs["minnorm_version"] = __version__
    ds.attrs["config"] = config.to_json()
    title = (
        f"minnorm min-norm target W* and Gram matrices: width {config.width}, seed {config.seed}"
    )
    atomic_write_netcdf(ds, out, title=title)


def _reusable(done: Path, identity: str) -> bool:
    """Whether `done` is a whole run file whose identity (numeric settings and code) is `identity`.

    Reads one attribute through netCDF4 (no torch, no xarray decoding): a fully reused job
    never imports torch or pytorch_lightning.
    """
    import netCDF4

    from minnorm.io.integrity import netcdf_damage

    try:
        damage = netcdf_damage(done)
        if damage is not None:
            logger.warning("ignoring the damaged completed-run copy %s (%s)", done, damage)
            return False
        with netCDF4.Dataset(done) as opened:
            stored = getattr(opened, IDENTITY_ATTR, None)
    except OSError as error:
        logger.warning("ignoring unreadable completed-run copy %s (%s)", done, error)
        return False
    return stored == identity


def _reuse(done: PathLike | None, identity: str, out: Path) -> bool:
    """Restore `out` from the completed-run copy `done` if that has this identity; else drop it."""
    if done is None or not Path(done).exists():
        return False
    if _reusable(Path(done), identity):
        atomic_copy(done, out)
        logger.info(
            "reused the completed run %s (same numeric settings and code) for %s", done, out
        )
        return True
    logger.info("completed run %s has other numeric settings or code: training again", done)
    Path(done).unlink()
    return False


def make_run_file(
    run: RunConfig,
    data_file: PathLike,
    target_file: PathLike,
    out: PathLike,
    checkpoint: PathLike | None = None,
    done: PathLike | None = None,
) -> str:
    """Train one run and write its run file; returns how: "trained", "resumed" or "reused".

    A checkpoint left by a killed job lets `train_run` resume with the same iterates; it is
    removed once the run file is complete. `done`, if given, keeps a hard link to every finished
    run file: when Snakemake reruns a job that trains several runs (because a seed was added,
    say), a run whose identity (`minnorm.workflow.plan.run_identity_digest`: numeric settings and
    numerical code) is unchanged is restored from it instead of retrained.
    """
    identity = run_identity_digest(run)
    job = TrainJob(
        run,
        identity,
        str(data_file),
        str(target_file),
        str(out),
        None if checkpoint is None else str(checkpoint),
        None if done is None else str(done),
    )
    if _reuse(job.done, identity, Path(job.out)):
        return "reused"
    from minnorm.data.datasets import load_dataset

    return _train_batch([job], [load_dataset(data_file)])[0]


def _train_batch(batch: list[TrainJob], datas: list[Any], progress: Any = None) -> list[str]:
    """Train the runs of one batch (jobs and their loaded data sets) side by side and write their
    run files; returns for each "trained" or "resumed"."""
    from minnorm.training.train import train_runs

    CLOCK.lap(IMPORT_PART)
    checkpoints: list[str | None] = [job.checkpoint for job in batch]
    resuming = [c is not None and Path(c).exists() for c in checkpoints]
    targets = [_read_netcdf(job.target) for job in batch]
    CLOCK.lap("reading inputs (data, targets)")
    datasets = train_runs(
        datas,
        targets,
        [job.config for job in batch],
        checkpoints=list(checkpoints),
        logger=logger,
        progress=progress,
    )
    for job, ds in zip(batch, datasets, strict=True):
        ds.attrs["code_sha256"] = numerics_fingerprint()
        ds.attrs[IDENTITY_ATTR] = job.identity
        out = Path(job.out)
        run = job.config
        title = (
            f"minnorm gradient-descent run of experiment {run.experiment}: width {run.width}, "
            f"seed {run.seed}, label noise {run.label_noise}, lr {run.lr}"
        )
        atomic_write_netcdf(ds, out, title=title)
        if job.done is not None:
            atomic_copy(out, job.done, hard_link=True)
        # Only after the run file is safely in place: a crash before this line resumes from the
        # checkpoint, a crash after it finds the run done.
        if job.checkpoint is not None:
            Path(job.checkpoint).unlink(missing_ok=True)
    CLOCK.lap("writing run files")
    return ["resumed" if r else "trained" for r in resuming]


def make_data_files(jobs: list[DataJob], targets: list[TargetJob] | tuple[()] = ()) -> None:
    """The data job of an experiment: `make_data_file` for each data job, then `make_target_file`
    for each target job, in the given order.

    One process for the data files and the target files of every width: each is milliseconds of
    arithmetic, a job's interpreter start and torch import seconds. Every data file is written
    before the first target, which reads its data file back (the file the runs train on).
    """
    for job in jobs:
        make_data_file(job.config, job.out)
    CLOCK.lap("data files")
    written = {str(job.out) for job in jobs}
    kernels: dict[tuple[Any, ...], Any] = {}
    for index, target in enumerate(targets, start=1):
        if str(target.data) not in written:
            raise ValueError(
                f"target {target.out} reads {target.data}, not a data file of this job"
            )
        logger.info("target %d/%d: %s", index, len(targets), target.out)
        make_target_file(target.config, target.data, target.out, kernels)
    CLOCK.lap("target files")


def make_run_files(
    jobs: list[TrainJob], *, threads: int | None = None, label: str = "train"
) -> str:
    """Train the runs of one training job (`TrainJob`s: config, identity and files).

    One process trains all runs of one width: every job is a fresh interpreter whose imports
    (torch, pytorch_lightning) cost seconds, more than a small run's arithmetic. Runs that can be
    reused are restored first, before torch is imported (a fully reused job imports neither);
    `threads` then sets torch's thread count for the rest. Returns, prints to stdout (the
    terminal under Snakemake) and logs one line: "<label>: reused k, trained n".
    """
    CLOCK.lap("planning the job's runs")
    left = []
    for index, job in enumerate(jobs, start=1):
        if _reuse(job.done, job.identity, Path(job.out)):
            logger.info("run %d/%d reused", index, len(jobs))
        else:
            left.append((index, job))
    counts = {"reused": len(jobs) - len(left), "trained": 0, "resumed": 0}
    CLOCK.lap("reuse check")
    if left:
        from minnorm.training.compile_cache import remember_isa_probes, use_compile_cache

        # Compiled steps are cached in .cache/torchinductor: later jobs skip inductor.
        use_compile_cache()
        import torch

        remember_isa_probes()

        from minnorm.data.datasets import load_dataset
        from minnorm.training.batching import plan_batches
        from minnorm.training.progress import JobProgress
        from minnorm.training.resources import retain_freed_memory

        progress = JobProgress(len(left))  # terminal lines: run i/N, steps/s, ETA
        if threads is not None:
            torch.set_num_threads(threads)
        if not retain_freed_memory():
            logger.info(
                "not glibc: freed (n, m) buffers may be returned to the OS "
                "and faulted in again each step"
            )
        CLOCK.lap(IMPORT_PART)
        # Runs on the same training inputs with the same settings (seeds, label-noise levels,
        # swept model settings) train side by side, one compiled step for the whole batch.
        datas = [load_dataset(job.data) for _, job in left]
        CLOCK.lap("reading inputs (data, targets)")
        for batch in plan_batches(datas, [job.config for _, job in left]):
            for i in batch:
                logger.info("run %d/%d: %s", left[i][0], len(jobs), left[i][1].out)
            hows = _train_batch([left[i][1] for i in batch], [datas[i] for i in batch], progress)
            for i, how in zip(batch, hows, strict=True):
                counts["trained"] += 1
                counts["resumed"] += how == "resumed"
                logger.info("run %d/%d %s", left[i][0], len(jobs), how)
    line = f"{label}: reused {counts['reused']}, trained {counts['trained']}"
    if counts["resumed"]:
        line += f" ({counts['resumed']} resumed from a checkpoint)"
    logger.info(line)
    print(line, flush=True)
    return line


def write_stamp(files: list[PathLike], path: PathLike) -> None:
    """Write a job's stamp (`minnorm.workflow.plan.DATA_STAMP_FILE`, `TRAIN_STAMP_FILE`) after its
    other outputs: the files it wrote, as JSON. Downstream jobs take the stamp as their input in
    place of those files, so that planning a large sweep stays linear in its runs."""
    text = json.dumps({"files": [str(f) for f in files]}, indent=0)
    write_text_atomic(text + "\n", path)


def make_collected_file(run_files: list[PathLike], out: PathLike) -> None:
    """Combine an experiment's run files into one dataset at `out`."""
    from minnorm.analysis.collect import collect_experiment

    ds = collect_experiment([Path(p) for p in run_files])
    title = f"minnorm: the {len(run_files)} runs of experiment {ds.attrs.get('experiment', '')}"
    atomic_write_netcdf(ds, out, title=title)


def make_figure(
    name: str,
    collected_file: PathLike,
    out_png: PathLike,
    out_pdf: PathLike,
    out_summary: PathLike | None = None,
) -> None:
    """Draw figure `name` from a collected file into PNG and PDF, each replaced atomically.

    With `out_summary`, the figure's numeric summary (the lines its plot function returns) is
    written there as an HTML list, which the figure's report caption includes.
    """
    import html

    from minnorm.figures import FIGURES

    if name not in FIGURES:
        raise KeyError(f"unknown figure {name!r}; known: {', '.join(sorted(FIGURES))}")
    collected = _read_netcdf(collected_file)
    # The figure functions write each file through files.atomic_write (figures.style.save_figure).
    lines = FIGURES[name](collected, Path(out_png), Path(out_pdf))
    for line in lines:
        logger.info("%s: %s", name, line)
    if out_summary is not None:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        write_text_atomic(f"<ul>{items}</ul>\n" if lines else "<p></p>\n", out_summary)
