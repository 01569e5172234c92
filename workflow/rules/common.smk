# Config validation, wildcard constraints and thin calls into the run plan. All logic lives in
# minnorm.config.validate (validation) and minnorm.workflow.plan (files, jobs, identities, resources).

from pathlib import Path

from minnorm.io import integrity
from minnorm.workflow import plan, resource_requests
from minnorm.config import ConfigError, validate_config
from minnorm.config.yaml_reader import check_config_files
from minnorm.workflow.invocation import warn_if_configfile_merged
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

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
# A --configfile merged into the default experiments (no --replace-workflow-config): say so.
warn_if_configfile_merged(
    workflow.overwrite_configfiles,
    workflow.config_settings.replace_workflow_config,
    EXPERIMENTS,
)

# A damaged result (truncated, or not netCDF; all writes are atomic, so only outside harm makes
# one) is removed before the DAG is built, so that the job that makes it runs again.
if workflow.is_main_process:
    for path, why in integrity.remove_damaged(plan.result_files(config)).items():
        logger.warning(f"{path} was damaged ({why}): removed, to be built again")

# The jobs' conda environment under `--sdm conda`: the run dependencies and minnorm itself,
# installed from the workflow's source (see the file).
CONDA_ENV = "../envs/minnorm.yaml"


def collected_files():
    """The collected dataset of every experiment, in config order."""
    return [plan.collected_file(exp) for exp in EXPERIMENTS]


def all_targets():
    """Everything the default target builds: data and target files (so that a removed one is
    built again even when the runs made from it are up to date), collected files, checks and
    figures."""
    return [
        *[path for exp in EXPERIMENTS for path in plan.input_stage_files(config, exp)],
        *collected_files(),
        "results/checks.csv",
        "results/checks.md",
        *[path for exp in EXPERIMENTS for path in plan.figure_files(config, exp)],
    ]
