"""Snakemake adapter: collect an experiment's run files into results/{exp}/{exp}.nc."""

from minnorm.workflow.pipeline import log_job_clock, log_job_to, make_collected_file

log_job_to(snakemake.log[0])
make_collected_file(list(snakemake.input.runs), snakemake.output[0])
log_job_clock()
