"""Snakemake adapter: summary of every experiment's checks and estimates under results/
(results/checks.*, results/estimates.csv) and the forest plot of the width exponents."""

import logging
from pathlib import Path

from minnorm.analysis.check_tables import summary_checks, summary_estimates, write_checks
from minnorm.figures.forest import forest_html, plot_forest
from minnorm.io.files import write_text_atomic
from minnorm.workflow.pipeline import log_job_clock, log_job_to

log_job_to(snakemake.log[0])
out = snakemake.output
results = Path(out.csv).parent
table = summary_checks(results, snakemake.params.experiments)
estimates = summary_estimates(results, snakemake.params.experiments)
logging.getLogger("minnorm.analysis.checks").info(
    "%d checks of %d experiments", len(table), table["experiment"].nunique()
)
write_checks(table, out.csv, out.md, out.html, estimates, out.estimates)
plot_forest(estimates, Path(out.forest), Path(out.forest_pdf))
write_text_atomic(forest_html(Path(out.forest)), out.forest_html)
log_job_clock()
