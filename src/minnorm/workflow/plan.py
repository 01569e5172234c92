"""The run plan: which files and jobs a validated config asks for, and what identifies each run.

Plain functions over a config returned by `minnorm.config.validate.validate_config` (defaults filled
in);
no Snakemake, torch or Lightning import, so the plan is testable in milliseconds and
`workflow/rules/*.smk` only call these functions. File names follow ARCHITECTURE.md's contract.

Sweep lists are canonical: every function here sees them sorted, so reordering the values of a
sweep in the YAML changes no file name, job list or job parameter.

A run's *identity* is what can change its numbers: the resolved run config less the settings in
`NON_NUMERIC_TRAINING_KEYS`, plus `minnorm.io.fingerprint.numerics_fingerprint()`. A finished run is
reused exactly when its stored identity equals the planned one, and the jobs' Snakemake params
are short digests of these identities, so that a changed numerical setting or numerical code
reruns exactly the affected jobs while a log interval or a plotting change reruns nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from minnorm.config.experiment import ExperimentConfig
from minnorm.config.run_config import DataConfig, RunConfig, TargetConfig
from minnorm.config.sweep import SweepLists, setting_tag
from minnorm.data.registry import DATASETS
from minnorm.data.settings import FrozenMapping
from minnorm.io.files import format_float
from minnorm.io.fingerprint import numerics_fingerprint

# --- file templates (ARCHITECTURE.md, "Files"); wildcards exp, width, seed, noise, lr, figure, ext.
# {tag} holds the run's swept settings (`sweep: {model.kappa: [...]}`), "" when there are none:
# "_model_kappa=0.1" and so on, sorted by key; data files name only the data settings, target
# files the data and model settings (see `setting_tag`).
DATA_FILE = "results/{exp}/data/s{seed}_p{noise}{tag}.nc"
TARGET_FILE = "results/{exp}/target/m{width}_s{seed}_p{noise}{tag}.nc"
RUN_FILE = "results/{exp}/runs/m{width}/s{seed}_p{noise}_lr{lr}{tag}.nc"
# Resumable state of a running training run; not an output, so a killed job keeps it.
CHECKPOINT_FILE = "results/{exp}/checkpoints/m{width}/s{seed}_p{noise}_lr{lr}{tag}.ckpt"
# A hard link to each finished run file: a rerun of a width's job restores the runs whose
# identity is unchanged instead of training them again.
DONE_FILE = "results/{exp}/checkpoints/m{width}/s{seed}_p{noise}_lr{lr}{tag}.done.nc"
COLLECTED_FILE = "results/{exp}/{exp}.nc"
FIGURE_FILE = "results/{exp}/figures/{figure}.{ext}"
FIGURE_FORMATS = ("png", "pdf")
# Stamps: a small file each data and training job writes after its other outputs, listing them.
# The jobs downstream (training, collect) take the stamps as inputs instead of every data,
# target or run file: Snakemake looks up the producer of an input by trying each output of the
# candidate rule in turn, so listing thousands of files that each rule makes by the thousand
# cost time quadratic in the sweep (BENCHMARKS.md, "Planning cost of large sweeps"). The files
# stay outputs of the job that writes them: a missing or removed one reruns that job, whose new
# stamp reruns what reads it.
DATA_STAMP_FILE = "results/{exp}/stamps/data.json"
TRAIN_STAMP_FILE = "results/{exp}/stamps/m{width}.json"
# Passed as `width` to the file-list functions, it stays a wildcard (Snakemake output patterns).
WIDTH_WILDCARD = "{width}"

# The run-file attribute that holds the run's identity digest (see `run_identity_digest`).
IDENTITY_ATTR = "run_identity"
# Hex digits of the digests used as Snakemake params (64 bits: short in dry-run reasons, and a
# chance collision between two settings of one job is not a practical concern).
PARAM_DIGEST_HEX = 16


class PlanError(KeyError):
    """A name the plan does not know (experiment, width, sweep value); the message names the key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


# --- sweeps and runs ------------------------------------------------------------------------------


def experiment(config: dict[str, Any], exp: str) -> ExperimentConfig:
    """The experiment `exp` of a validated config, typed; a clear error if it is not there."""
    experiments = config["experiments"]
    if exp not in experiments:
        raise PlanError(f"experiments.{exp}: no such experiment; defined: {', '.join(experiments)}")
    return ExperimentConfig.from_mapping(exp, experiments[exp])


def sweep(config: dict[str, Any], exp: str) -> SweepLists:
    """The sweep of `exp`, each list sorted ascending (`SweepLists`: width, seed, label_noise,
    lr, and the swept settings by key)."""
    return experiment(config, exp).sweep


@dataclasses.dataclass(frozen=True)
class RunPoint:
    """One point of an experiment's sweep: the run's values and its swept settings
    (`{"model.kappa": 0.1}`, empty when none). `width` is `WIDTH_WILDCARD` in file patterns."""

    width: int | str
    seed: int
    label_noise: float
    lr: float
    settings: FrozenMapping = dataclasses.field(default_factory=FrozenMapping)


def experiment_runs(
    config: dict[str, Any], exp: str, width: int | str | None = None
) -> list[RunPoint]:
    """The runs of `exp` (of one width if given), as `RunPoint`s.

    The sweep's product in canonical order: width, then seed, label noise, lr and the swept
    settings by key, each ascending.
    `width` may be a wildcard spelling ("64") of a configured width; `WIDTH_WILDCARD` keeps it a
    wildcard (for file patterns only).
    """
    s = sweep(config, exp)
    if width is None:
        widths: list[int | str] = list(s.width)
    elif width == WIDTH_WILDCARD:
        widths = [WIDTH_WILDCARD]
    else:
        widths = [int(sweep_value(config, exp, "width", str(width)))]
    keys = list(s.settings)
    return [
        RunPoint(w, seed, noise, lr, FrozenMapping(dict(zip(keys, values, strict=True))))
        for w, seed, noise, lr, *values in itertools.product(
            widths, s.seed, s.label_noise, s.lr, *(s.settings[key] for key in keys)
        )
    ]


def sweep_value(config: dict[str, Any], exp: str, key: str, text: str) -> Any:
    """The configured value of `sweep.<key>` whose wildcard spelling is `text`.

    Wildcards hold `str(width)`, `str(seed)` and `format_float(value)` for label noise and lr;
    looking the value up (instead of parsing the text) guarantees the run uses exactly the number
    in the config, and a path that names no configured value fails clearly.
    """
    values = list(sweep(config, exp).values(key))
    spell = format_float if key in ("label_noise", "lr") else str
    for value in values:
        if spell(value) == text:
            return value
    raise PlanError(
        f"experiments.{exp}.sweep.{key}: {text!r} is not one of the configured values {values}"
    )


def run_config(
    config: dict[str, Any],
    exp: str,
    width: int,
    seed: int,
    label_noise: float,
    lr: float,
    settings: dict[str, Any] | None = None,
) -> RunConfig:
    """The resolved config of one run (`ExperimentConfig.run`): `training.lr` = `lr`, each swept
    setting (`settings`, `{"model.kappa": 0.1}`) written at its key and listed under `sweep`, and
    with `training.horizon` the steps round(horizon / lr)."""
    return experiment(config, exp).run(width, seed, label_noise, lr, settings)


def data_config(
    config: dict[str, Any],
    exp: str,
    seed: int,
    label_noise: float,
    settings: dict[str, Any] | None = None,
) -> DataConfig:
    """What determines one data file (`ExperimentConfig.data_config`): the data settings, the
    run seed and the label noise, never a width or a training value."""
    return experiment(config, exp).data_config(seed, label_noise, settings)


def target_config(
    config: dict[str, Any],
    exp: str,
    width: int,
    seed: int,
    label_noise: float,
    settings: dict[str, Any] | None = None,
) -> TargetConfig:
    """What determines one target file: `data_config` plus the model and the width."""
    return experiment(config, exp).target_config(width, seed, label_noise, settings)


def _run_config(e: ExperimentConfig, run: RunPoint) -> RunConfig:
    if not isinstance(run.width, int):
        raise PlanError(f"experiments.{e.name}: a run needs a width, not {run.width!r}")
    return e.run(run.width, run.seed, run.label_noise, run.lr, run.settings)


# --- file names -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """The files of one run: its data file, target file, run file (`out`), checkpoint and
    completed-run link (`done`)."""

    data: str
    target: str
    out: str
    checkpoint: str
    done: str


def run_paths(exp: str, run: RunPoint) -> RunPaths:
    """The files of one run of `exp`."""
    names = dict(
        exp=exp,
        width=run.width,
        seed=run.seed,
        noise=format_float(run.label_noise),
        lr=format_float(run.lr),
    )
    everything = setting_tag(run.settings)
    return RunPaths(
        data=DATA_FILE.format(**names, tag=setting_tag(run.settings, ("data",))),
        target=TARGET_FILE.format(**names, tag=setting_tag(run.settings, ("data", "model"))),
        out=RUN_FILE.format(**names, tag=everything),
        checkpoint=CHECKPOINT_FILE.format(**names, tag=everything),
        done=DONE_FILE.format(**names, tag=everything),
    )


def _unique(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(paths))


def data_files(config: dict[str, Any], exp: str) -> list[str]:
    """Every data file of `exp`: one per (seed, label noise)."""
    return _unique([run_paths(exp, r).data for r in experiment_runs(config, exp)])


def target_files(config: dict[str, Any], exp: str, width: int | str) -> list[str]:
    """The target files of one width of `exp`: one per (seed, label noise)."""
    return _unique([run_paths(exp, r).target for r in experiment_runs(config, exp, width)])


def width_run_files(config: dict[str, Any], exp: str, width: int | str) -> list[str]:
    """The run files of one width of `exp`."""
    return [run_paths(exp, r).out for r in experiment_runs(config, exp, width)]


def run_files(config: dict[str, Any], exp: str) -> list[str]:
    """Every run file of `exp`: the product of its sweep lists."""
    return [run_paths(exp, r).out for r in experiment_runs(config, exp)]


def input_stage_files(config: dict[str, Any], exp: str) -> list[str]:
    """The data files and the target files of every width of `exp` (inputs of the training): the
    outputs of the experiment's data job, in the order it writes them."""
    targets = [f for width in sweep(config, exp).width for f in target_files(config, exp, width)]
    return [*data_files(config, exp), *targets]


def data_stamp_file(exp: str) -> str:
    """The stamp of the data job of `exp` (`DATA_STAMP_FILE`), the training jobs' input."""
    return DATA_STAMP_FILE.format(exp=exp)


def train_stamp_file(exp: str, width: int | str) -> str:
    """The stamp of one width's training job (`TRAIN_STAMP_FILE`; `width` may be
    `WIDTH_WILDCARD`)."""
    return TRAIN_STAMP_FILE.format(exp=exp, width=width)


def train_stamp_files(config: dict[str, Any], exp: str) -> list[str]:
    """The stamps of every width's training job of `exp`: the collect job's inputs."""
    return [train_stamp_file(exp, width) for width in sweep(config, exp).width]


def collected_file(exp: str) -> str:
    """The collected dataset of `exp`."""
    return COLLECTED_FILE.format(exp=exp)


def figure_files(config: dict[str, Any], exp: str) -> list[str]:
    """PNG and PDF of every figure `exp` asks for."""
    return [
        FIGURE_FILE.format(exp=exp, figure=figure, ext=ext)
        for figure in experiment(config, exp).figures
        for ext in FIGURE_FORMATS
    ]


def result_files(config: dict[str, Any]) -> list[str]:
    """The data, target, run and collected files of every experiment (existing or not)."""
    files: list[str] = []
    for exp in config["experiments"]:
        paths = [run_paths(exp, run) for run in experiment_runs(config, exp)]
        for key in ("data", "target", "out", "done"):
            files.extend(_unique([getattr(p, key) for p in paths]))
        files.append(collected_file(exp))
    return files


def local_data_files(config: dict[str, Any], exp: str) -> list[str]:
    """The user's original files the data of `exp` are read from, `DATASETS[name].files(data)`
    (minnorm.data.registry; [] without a `data.path`).

    Declared as inputs of the data job, so that replacing one reruns it. An absent file is
    listed under the name it would be read from, so that Snakemake names it as a missing input.
    """
    data = experiment(config, exp).data
    return [str(path) for path in DATASETS[data.name].files(data)]


# --- identity -------------------------------------------------------------------------------------


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def run_identity_digest(run: RunConfig) -> str:
    """SHA-256 (64 hex digits) of a run's numeric settings and the numerical code's fingerprint.

    Stored as the run file's `run_identity` attr; equal digests mean equal numbers.
    """
    return _digest({"settings": run.numeric_settings(), "numerics": numerics_fingerprint()})


def _job_param(settings: list[dict[str, Any]]) -> str:
    """Short Snakemake param of a job: digests of its settings and of the numerical code.

    Spelled out ("settings <hex>, numerics <hex>") so that a dry run's "Params have changed"
    reason says which of the two changed, in well under 300 characters.
    """
    return (
        f"settings {_digest(settings)[:PARAM_DIGEST_HEX]}, "
        f"numerics {numerics_fingerprint()[:PARAM_DIGEST_HEX]}"
    )


# --- jobs -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataJob:
    """One data file the data job writes: its settings and its path."""

    config: DataConfig
    out: str


@dataclasses.dataclass(frozen=True)
class TargetJob:
    """One target file the data job writes: its settings, the data file it reads, its path."""

    config: TargetConfig
    data: str
    out: str


@dataclasses.dataclass(frozen=True)
class TrainJob:
    """One run of a training job: its config, identity (`run_identity_digest`) and files."""

    config: RunConfig
    identity: str
    data: str
    target: str
    out: str
    checkpoint: str | None = None
    done: str | None = None


def data_jobs(config: dict[str, Any], exp: str) -> list[DataJob]:
    """The data files an experiment's data job writes first: one `DataJob` per data file."""
    e = experiment(config, exp)
    jobs: dict[str, DataJob] = {}
    for run in experiment_runs(config, exp):
        out = run_paths(exp, run).data
        if out not in jobs:
            jobs[out] = DataJob(e.data_config(run.seed, run.label_noise, run.settings), out)
    return list(jobs.values())


def target_jobs(
    config: dict[str, Any], exp: str, width: int | str | None = None
) -> list[TargetJob]:
    """The target files an experiment's data job writes after its data files: one `TargetJob`
    per target file, of one width or (`width=None`) of every width, in canonical order (width,
    then seed, label noise and the swept settings, each ascending)."""
    e = experiment(config, exp)
    jobs: dict[str, TargetJob] = {}
    for run in experiment_runs(config, exp, width):
        files = run_paths(exp, run)
        if files.target not in jobs:
            assert isinstance(run.width, int), "target jobs are for configured widths"
            settings = e.target_config(run.width, run.seed, run.label_noise, run.settings)
            jobs[files.target] = TargetJob(settings, files.data, files.target)
    return list(jobs.values())


def shared_key(run: RunConfig) -> tuple[Any, ...]:
    """What a run's settings depend on besides its width, seed and label noise: its lr and swept
    settings (each value with its type: True and 1 are different settings). The runs of one
    width's job with equal keys share data, model and training settings."""
    return (run.lr, tuple((key, type(value).__name__, value) for key, value in run.sweep.items()))


def train_jobs(config: dict[str, Any], exp: str, width: int | str) -> list[TrainJob]:
    """The work of one width's training job, one `TrainJob` per run.

    The identities are `run_identity_digest` of each run, computed from the numeric settings the
    runs of one lr and swept settings share (built once) with each run's width, seed and label
    noise written in: a sweep's thousands of runs are planned in milliseconds each.
    """
    return _train_work(config, exp, width)[0]


def _train_work(
    config: dict[str, Any], exp: str, width: int | str
) -> tuple[list[TrainJob], list[dict[str, Any]]]:
    """`train_jobs` and each run's numeric settings (`RunConfig.numeric_settings`)."""
    e = experiment(config, exp)
    numerics = numerics_fingerprint()
    shared: dict[tuple[Any, ...], dict[str, Any]] = {}
    jobs, settings_list = [], []
    for run in experiment_runs(config, exp, width):
        settings = _run_config(e, run)
        files = run_paths(exp, run)
        key = shared_key(settings)
        if key not in shared:
            shared[key] = settings.numeric_settings()
        numeric = {
            **shared[key],
            "width": settings.width,
            "seed": settings.seed,
            "label_noise": settings.label_noise,
        }
        settings_list.append(numeric)
        jobs.append(
            TrainJob(
                settings,
                _digest({"settings": numeric, "numerics": numerics}),
                files.data,
                files.target,
                files.out,
                files.checkpoint,
                files.done,
            )
        )
    return jobs, settings_list


def data_job_param(config: dict[str, Any], exp: str) -> str:
    """Snakemake param of the data job of `exp` (see `_job_param`): the settings of its data files
    and of the target files of every width, so that a changed data or model setting, width list
    or numerical code reruns it (and a training setting does not)."""
    settings = [job.config.to_mapping() for job in data_jobs(config, exp)]
    settings += [job.config.to_mapping() for job in target_jobs(config, exp)]
    return _job_param(settings)


def train_job_param(config: dict[str, Any], exp: str, width: int | str) -> str:
    """Snakemake param of one width's training job: numeric settings of its runs and the code.

    Log and checkpoint intervals are left out, so changing them reruns no job.
    """
    return per_width(
        "train_job_param",
        config,
        exp,
        width,
        lambda: _job_param(_train_work(config, exp, width)[1]),
    )


# Values computed from one width's runs (`per_width`), by (what, experiment, width, the
# experiment's settings as JSON and the numerical code's fingerprint). Snakemake asks for a
# job's params, priority and resources at several points of planning; each pass over a width's
# runs is done once. A handful of small values per width: cleared past PER_WIDTH_LIMIT entries.
_PER_WIDTH: dict[tuple[str, str, str, str], Any] = {}
PER_WIDTH_LIMIT = 100_000

T = TypeVar("T")


def per_width(
    what: str, config: dict[str, Any], exp: str, width: int | str, compute: Callable[[], T]
) -> T:
    """`compute()`, remembered for the experiment's current settings: a value `what` of one
    width of `exp` (a job param, a resource estimate) that depends on the config only through
    `config["experiments"][exp]`."""
    block = config["experiments"].get(exp)
    if block is None:
        return compute()  # raises the plan's error naming the experiment
    settings = json.dumps(block, sort_keys=True, default=repr)
    key = (what, exp, str(width), settings + numerics_fingerprint())
    if key not in _PER_WIDTH:
        if len(_PER_WIDTH) >= PER_WIDTH_LIMIT:
            _PER_WIDTH.clear()
        _PER_WIDTH[key] = compute()
    value: T = _PER_WIDTH[key]
    return value


def target_problem(config: dict[str, Any], exp: str, figure: str | None = None) -> str | None:
    """Why `results/<exp>/...` (the figure `figure`'s files, when given) is not a target of this
    config, in one line naming the experiment, the figure and the experiments that list it; None
    when it is. For explicit targets on the command line: asking for a figure an experiment does
    not list would draw it from runs that may not fit it."""
    experiments = config["experiments"]
    if exp not in experiments:
        return (
            f"results/{exp}/: the config has no experiment {exp!r} (experiments: "
            f"{', '.join(experiments)})"
        )
    if figure is None or figure in experiments[exp].get("figures", ()):
        return None
    listing = [name for name, e in experiments.items() if figure in e.get("figures", ())]
    which = (
        f"experiments that list it: {', '.join(listing)}" if listing else "no experiment lists it"
    )
    return (
        f"results/{exp}/figures/{figure}: figure {figure} is not in experiments.{exp}.figures "
        f"({which}); add it there to draw it for {exp}"
    )
