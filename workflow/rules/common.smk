# Config validation, wildcard constraints and the functions that name files and settings.
# All logic lives in minnorm.config; this file only connects it to Snakemake.

from pathlib import Path

from minnorm.config import (
    ConfigError,
    data_settings,
    experiment_runs,
    run_mem_mb,
    run_runtime_min,
    run_settings,
    target_settings,
    validate_config,
)
from minnorm.config_yaml import check_config_files
from minnorm.files import format_float
from snakemake.exceptions import WorkflowError

# Validate at parse time, before any job exists: a mistake stops the workflow with a message
# naming the key. The config files are first read again strictly (Snakemake's YAML reader keeps
# the last of two equal keys silently); the validated copy (defaults filled in) replaces the raw
# config in place. The schema is minnorm's package data (workflow/schemas/ links to it).
try:
    check_config_files(workflow.configfiles)
    config.update(validate_config(config))
except ConfigError as error:
    raise WorkflowError(str(error)) from None


wildcard_constraints:
    exp=r"[A-Za-z0-9_]+",
    width=r"\d+",
    seed=r"\d+",
    # format_float spellings: 0, 0.2, 1e-05, 1.5e+20
    noise=r"\d+(?:\.\d+)?(?:e[+-]\d+)?",
    lr=r"\d+(?:\.\d+)?(?:e[+-]\d+)?",


EXPERIMENTS = list(config["experiments"])
# The software of all jobs (environment.yml at the root links here). Run Snakemake inside this
# environment with minnorm pip-installed; `--sdm conda` would lack the minnorm package itself.
CONDA_ENV = "../envs/minnorm.yaml"
DATA_FILE = "results/{exp}/data/s{seed}_p{noise}.nc"
TARGET_FILE = "results/{exp}/target/m{width}_s{seed}_p{noise}.nc"
RUN_FILE = "results/{exp}/runs/m{width}/s{seed}_p{noise}_lr{lr}.nc"
COLLECTED_FILE = "results/{exp}/{exp}.nc"
FIGURE_FILE = "results/{exp}/figures/{figure}.{ext}"
# Resumable state of a running training run; not an output, so a killed job keeps it.
CHECKPOINT_FILE = "results/{exp}/checkpoints/m{width}/s{seed}_p{noise}_lr{lr}.ckpt"
# A hard link to each finished run file: a rerun of a width's job (after a seed was added, say)
# restores runs whose config and code are unchanged instead of training them again.
DONE_FILE = "results/{exp}/checkpoints/m{width}/s{seed}_p{noise}_lr{lr}.done.nc"


def _sweep(exp):
    """The sweep lists of `exp`, floats spelled as in file names."""
    sweep = config["experiments"][exp]["sweep"]
    return dict(
        width=sweep["width"],
        seed=sweep["seed"],
        noise=[format_float(p) for p in sweep["label_noise"]],
        lr=[format_float(lr) for lr in sweep["lr"]],
    )


def data_files(exp):
    """Every data file of experiment `exp`: one per (seed, label noise)."""
    sweep = _sweep(exp)
    return expand(DATA_FILE, exp=exp, seed=sweep["seed"], noise=sweep["noise"])


def target_files(exp, width="{width}"):
    """The target files of one width of `exp` (by default the `{width}` wildcard pattern)."""
    sweep = _sweep(exp)
    return expand(
        TARGET_FILE, exp=exp, width=width, seed=sweep["seed"], noise=sweep["noise"]
    )


def width_run_files(exp, width="{width}"):
    """The run files of one width of `exp` (by default the `{width}` wildcard pattern)."""
    sweep = _sweep(exp)
    return expand(
        RUN_FILE,
        exp=exp,
        width=width,
        seed=sweep["seed"],
        noise=sweep["noise"],
        lr=sweep["lr"],
    )


def run_files(exp):
    """Every run file of experiment `exp`: the product of its sweep lists."""
    return width_run_files(exp, _sweep(exp)["width"])


def collected_files():
    """The collected dataset of every experiment, in config order."""
    return expand(COLLECTED_FILE, exp=EXPERIMENTS)


def figure_files():
    """PNG and PDF of every figure each experiment asks for."""
    return [
        path
        for exp in EXPERIMENTS
        for path in expand(
            FIGURE_FILE,
            exp=exp,
            figure=config["experiments"][exp]["figures"],
            ext=["png", "pdf"],
        )
    ]


def all_targets():
    """Everything the default target builds: collected files, checks and figures."""
    return [
        *collected_files(),
        "results/checks.csv",
        "results/checks.md",
        *figure_files(),
    ]


def _runs(exp, width=None):
    """The runs of `exp` (of one width if given), each with its file names."""
    runs = experiment_runs(config, exp)
    if width is not None:
        runs = [run for run in runs if str(run["width"]) == str(width)]
    for run in runs:
        names = dict(
            exp=exp,
            width=run["width"],
            seed=run["seed"],
            noise=format_float(run["label_noise"]),
            lr=format_float(run["lr"]),
        )
        run["files"] = {
            key: pattern.format(**names)
            for key, pattern in [
                ("data", DATA_FILE),
                ("target", TARGET_FILE),
                ("out", RUN_FILE),
                ("checkpoint", CHECKPOINT_FILE),
                ("done", DONE_FILE),
            ]
        }
    return runs


def data_jobs(exp):
    """Params of an experiment's data job: one `{config, out}` per data file."""
    jobs = {}
    for run in _runs(exp):
        out = run["files"]["data"]
        jobs[out] = dict(
            config=data_settings(config, exp, run["seed"], run["label_noise"]), out=out
        )
    return list(jobs.values())


def target_jobs(exp, width):
    """Params of one width's target job: one `{config, data, out}` per target file."""
    jobs = {}
    for run in _runs(exp, width):
        files = run["files"]
        jobs[files["target"]] = dict(
            config=target_settings(
                config, exp, run["width"], run["seed"], run["label_noise"]
            ),
            data=files["data"],
            out=files["target"],
        )
    return list(jobs.values())


def train_jobs(exp, width):
    """Params of one width's training job: the resolved config and files of each run.

    The resolved configs are params, so changing any training value reruns these jobs.
    """
    jobs = []
    for run in _runs(exp, width):
        files = run["files"]
        settings = run_settings(
            config, exp, run["width"], run["seed"], run["label_noise"], run["lr"]
        )
        jobs.append(dict(config=settings, **files))
    return jobs


def width_mem_mb(exp, width):
    """Memory request (MB) of one width's target or training job (runs go one at a time)."""
    return max(run_mem_mb(job["config"]) for job in train_jobs(exp, width))


def width_runtime_min(exp, width):
    """Wall-time request (minutes) of one width's training job: the sum over its runs."""
    return sum(run_runtime_min(job["config"]) for job in train_jobs(exp, width))


def gpus(exp):
    """1 when the experiment asks for a GPU, else 0."""
    return int(config["experiments"][exp]["training"]["accelerator"] == "gpu")
