"""Snakemake adapter: draw one figure of one experiment (results/{exp}/figures/<name>.png/.pdf)
and write its numeric summary (<name>.summary.html, shown under the report caption)."""

import matplotlib

matplotlib.use("Agg")  # jobs run without a display

from minnorm.workflow.pipeline import log_job_clock, log_job_to, make_figure

log_job_to(snakemake.log[0])
make_figure(
    snakemake.params.figure,
    snakemake.input[0],
    snakemake.output.png,
    snakemake.output.pdf,
    snakemake.output.summary,
)
log_job_clock()
