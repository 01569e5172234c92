"""Snakemake adapter: collect an experiment's run files into results/{exp}/{exp}.nc (its inputs
are the training jobs' stamps; the run files are the plan's, below the job's prefix)."""

from minnorm.workflow.job_files import collect_inputs
from minnorm.workflow.pipeline import log_job_clock, log_job_to, make_collected_file

log_job_to(snakemake.log[0])
runs = collect_inputs(snakemake.config, snakemake.wildcards.exp, snakemake.output)
make_collected_file(runs, snakemake.output[0])
log_job_clock()
