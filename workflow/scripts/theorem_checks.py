"""Snakemake adapter: theorem checks of one experiment (results/{exp}/checks.csv and .md)."""

import logging

from minnorm.analysis.checks import experiment_checks, write_checks
from minnorm.workflow.pipeline import log_job_to

log_job_to(snakemake.log[0])
table = experiment_checks(snakemake.wildcards.exp, snakemake.input[0])
logging.getLogger("minnorm.analysis.checks").info(
    "%d checks, verdicts: %s", len(table), table["verdict"].value_counts().to_dict()
)
write_checks(table, snakemake.output.csv, snakemake.output.md, snakemake.output.html)
