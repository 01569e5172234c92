"""Snakemake adapter: theorem checks of one experiment (results/{exp}/checks.{csv,md,html}) and
the estimates they rest on (results/{exp}/estimates.csv)."""

import logging

from minnorm.analysis.check_tables import write_checks
from minnorm.analysis.checks import experiment_checks
from minnorm.workflow.pipeline import log_job_clock, log_job_to

log_job_to(snakemake.log[0])
table, estimates = experiment_checks(snakemake.wildcards.exp, snakemake.input[0])
logging.getLogger("minnorm.analysis.checks").info(
    "%d checks, verdicts: %s", len(table), table["verdict"].value_counts().to_dict()
)
out = snakemake.output
write_checks(table, out.csv, out.md, out.html, estimates, out.estimates)
log_job_clock()
