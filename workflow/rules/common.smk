# Config validation, wildcard constraints and the functions that name files and settings.
# All logic lives in minnorm.config; this file only connects it to Snakemake.

from pathlib import Path

from minnorm.config import (
    ConfigError,
    data_settings,
    run_mem_mb,
    run_runtime_min,
    run_settings,
    sweep_value,
    target_settings,
    validate_config,
)
from minnorm.files import format_float
from snakemake.exceptions import WorkflowError

# Validate at parse time, before any job exists: a mistake stops the workflow with a message
# naming the key. The validated copy (defaults filled in) replaces the raw config in place.
try:
    config.update(
        validate_config(
            config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
        )
    )
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


def run_files(exp):
    """Every run file of experiment `exp`: the product of its sweep lists."""
    sweep = config["experiments"][exp]["sweep"]
    return expand(
        RUN_FILE,
        exp=exp,
        width=sweep["width"],
        seed=sweep["seed"],
        noise=[format_float(p) for p in sweep["label_noise"]],
        lr=[format_float(lr) for lr in sweep["lr"]],
    )


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


def _values(wildcards, *keys):
    """Configured sweep values named by a job's wildcards (wildcard name -> sweep key)."""
    names = {"width": "width", "seed": "seed", "noise": "label_noise", "lr": "lr"}
    return [
        sweep_value(config, wildcards.exp, names[key], wildcards[key]) for key in keys
    ]


def data_params(wildcards):
    """Settings of a data job (its params: a change rebuilds exactly the affected files)."""
    return data_settings(config, wildcards.exp, *_values(wildcards, "seed", "noise"))


def target_params(wildcards):
    """Settings of a target job."""
    return target_settings(
        config, wildcards.exp, *_values(wildcards, "width", "seed", "noise")
    )


def run_params(wildcards):
    """Resolved run config of a training job."""
    return run_settings(
        config, wildcards.exp, *_values(wildcards, "width", "seed", "noise", "lr")
    )


def first_run_params(wildcards):
    """Run config of the first lr, for the resources of jobs shared by all learning rates."""
    width, seed, noise = _values(wildcards, "width", "seed", "noise")
    lr = config["experiments"][wildcards.exp]["sweep"]["lr"][0]
    return run_settings(config, wildcards.exp, width, seed, noise, lr)


def run_mem(wildcards):
    """Memory request (MB) of a target or training job."""
    return run_mem_mb(first_run_params(wildcards))


def run_runtime(wildcards):
    """Wall-time request (minutes) of a training job."""
    return run_runtime_min(run_params(wildcards))


def run_gpus(wildcards):
    """1 when the experiment asks for a GPU, else 0."""
    training = config["experiments"][wildcards.exp]["training"]
    return int(training["accelerator"] == "gpu")
