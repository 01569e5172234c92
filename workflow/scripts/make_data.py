"""Snakemake adapter: write the data files of one experiment (results/{exp}/data/*.nc), then the
target files of every width (results/{exp}/target/m*.nc)."""

import torch

from minnorm.workflow import plan
from minnorm.workflow.job_files import jobs_at_outputs
from minnorm.workflow.pipeline import log_job_clock, log_job_to, make_data_files, write_stamp

log_job_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
# The settings come from the config (params hold only a short digest); the files are this job's
# outputs, below a module's `prefix:` if there is one.
exp = snakemake.params.exp
data, targets = plan.data_jobs(snakemake.config, exp), plan.target_jobs(snakemake.config, exp)
jobs = jobs_at_outputs([*data, *targets], snakemake.output.files)
make_data_files(jobs[: len(data)], jobs[len(data) :])
write_stamp(list(snakemake.output.files), snakemake.output.stamp)
log_job_clock()
