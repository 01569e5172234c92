"""Snakemake adapter: theorem checks over all experiments (results/checks.csv and .md)."""

from minnorm.pipeline import log_job_to, make_checks

log_job_to(snakemake.log[0])
collected = dict(
    zip(snakemake.params.experiments, snakemake.input.collected, strict=True)
)
make_checks(collected, snakemake.output.csv, snakemake.output.md)
