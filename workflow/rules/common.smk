# Config validation, wildcard constraints and thin calls into the run plan. All logic lives in
# minnorm.config.validate (validation) and minnorm.workflow.plan (files, jobs, identities, resources).

import os
from pathlib import Path

from minnorm.io import integrity
from minnorm.workflow import plan, resource_requests
from minnorm.workflow.job_files import missing_outputs
from minnorm.config import ConfigError, validate_config
from minnorm.config.validate import config_warnings
from minnorm.config.yaml_reader import check_config_files
from minnorm.workflow.invocation import (
    LAST_RUN_CONFIG,
    config_digest,
    merged_origin_note,
    results_folder_problem,
    warn_if_configfile_merged,
)
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# Validate at parse time, before any job exists: a mistake stops the workflow with a message
# naming the key. The config files are first read again strictly (Snakemake's YAML reader keeps
# the last of two equal keys silently); the validated copy (defaults filled in) replaces the raw
# config in place. The schema is minnorm's package data (workflow/schemas/ holds the catalog's copy).
try:
    check_config_files(workflow.configfiles)
    config.update(validate_config(config))
except ConfigError as error:
    # Merged into the default config: say which keys in the message come from there.
    merged = (
        workflow.modifier.is_main_snakefile()
        and not workflow.config_settings.replace_workflow_config
    )
    raise WorkflowError(
        merged_origin_note(str(error), workflow.overwrite_configfiles)
        if merged
        else str(error)
    ) from None


wildcard_constraints:
    exp=r"[A-Za-z0-9_]+",
    width=r"\d+",
    seed=r"\d+",
    # format_float spellings: 0, 0.2, 1e-05, 1.5e+20
    noise=r"\d+(?:\.\d+)?(?:e[+-]\d+)?",
    lr=r"\d+(?:\.\d+)?(?:e[+-]\d+)?",


EXPERIMENTS = list(config["experiments"])
# Whether these rules run as another workflow's module (whose onstart Snakemake skips, and whose
# config comes from the `module` statement, not from config/config.yaml).
AS_MODULE = not workflow.modifier.is_main_snakefile()
# A --configfile merged into the default experiments (no --replace-workflow-config): say so.
if not AS_MODULE:
    warn_if_configfile_merged(
        workflow.overwrite_configfiles,
        workflow.config_settings.replace_workflow_config,
        EXPERIMENTS,
    )

# Used as a module with `prefix:`, Snakemake puts every relative input and output of these rules
# below the prefix. Parse-time checks of files that already exist must look there too: the
# modifier in effect while this file is parsed says where (identity outside a module).
_PATH_MODIFIER = getattr(workflow.modifier, "path_modifier", None)


def output_path(path):
    """Where a relative output path of these rules lies (below a module's prefix, if any)."""
    if _PATH_MODIFIER is None:
        return str(path)
    return str(_PATH_MODIFIER.replace_prefix(str(path)))


# A damaged result (truncated, or not netCDF; all writes are atomic, so only outside harm makes
# one) is removed before the DAG is built, so that the job that makes it runs again.
if workflow.is_main_process:
    # A results folder that cannot hold the files (a dangling link, read-only): one line.
    _results_problem = results_folder_problem(
        output_path("results"), write=not workflow.dryrun
    )
    if _results_problem:
        raise WorkflowError(_results_problem)
    # What a valid config does that may surprise (a horizon rounded to whole steps), once.
    for line in config_warnings(config):
        logger.warning(line)
    # Sizes that cannot fit: every job's estimated memory against the declared mem_mb
    # (--resources), else this machine's memory; MINNORM_MEMORY_MB overrides (0: no check).
    _refusal = resource_requests.memory_refusal(
        config, workflow.global_resources.get("mem_mb"), os.environ
    )
    if _refusal:
        raise WorkflowError(_refusal)
    results = [output_path(path) for path in plan.result_files(config)]
    for path, why in integrity.remove_damaged(results).items():
        logger.warning(f"{path} was damaged ({why}): removed, to be built again")

# The jobs' conda environment under `--sdm conda`: the run dependencies and minnorm itself at
# this workflow's release (see the file).
CONDA_ENV = "../envs/minnorm.yaml"


def known_target(exp, figure=None):
    """The collected file of `exp`, which a figure or collect job reads; an explicit target of
    another experiment, or of a figure `exp` does not list, stops Snakemake with one line
    (plan.target_problem) instead of planning it."""
    problem = plan.target_problem(config, exp, figure)
    if problem:
        raise SystemExit(problem)
    return plan.collected_file(exp)


def known_stamps(exp):
    """The stamps of the training jobs of `exp`, a collect job's inputs (one line and a stop for
    an experiment the config does not have: `known_target`)."""
    known_target(exp)
    return plan.train_stamp_files(config, exp)


def collected_files():
    """The collected dataset of every experiment, in config order."""
    return [plan.collected_file(exp) for exp in EXPERIMENTS]


def all_targets():
    """Everything the default target builds: the stamps of the data and training jobs, the
    data, target and run files missing beside an existing stamp (so that a removed one is built
    again even when what was made from it is up to date: job_files.missing_outputs), collected
    files, checks and figures. The data, target and
    run files themselves are not listed: Snakemake's search for a file's producer tries each
    output of the producing rule in turn, which made planning quadratic in the sweep
    (BENCHMARKS.md, "Planning cost of large sweeps")."""
    return [
        *[plan.data_stamp_file(exp) for exp in EXPERIMENTS],
        *[path for exp in EXPERIMENTS for path in plan.train_stamp_files(config, exp)],
        *missing_outputs(config, where=output_path),
        *collected_files(),
        "results/checks.csv",
        "results/checks.md",
        *[path for exp in EXPERIMENTS for path in plan.figure_files(config, exp)],
        # As a module, the rule run_config (collect.smk) records the config instead of onstart.
        *([str(LAST_RUN_CONFIG)] if AS_MODULE else []),
    ]
