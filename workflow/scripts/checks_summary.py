"""Snakemake adapter: summary of every experiment's checks under results/ (results/checks.csv,
.md)."""

import logging
from pathlib import Path

from minnorm.analysis.checks import summary_checks, write_checks
from minnorm.workflow.pipeline import log_job_to

log_job_to(snakemake.log[0])
table = summary_checks(Path(snakemake.output.csv).parent, snakemake.params.experiments)
logging.getLogger("minnorm.analysis.checks").info(
    "%d checks of %d experiments", len(table), table["experiment"].nunique()
)
write_checks(table, snakemake.output.csv, snakemake.output.md, snakemake.output.html)
