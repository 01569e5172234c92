"""Snakemake adapter: write the data files of one experiment (results/{exp}/data/*.nc), then the
target files of every width (results/{exp}/target/m*.nc)."""

import torch

from minnorm.workflow import plan
from minnorm.workflow.pipeline import log_job_to, make_data_files

log_job_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
# The work list comes from the config, not from params (which hold only a short digest).
exp = snakemake.params.exp
data, targets = plan.data_jobs(snakemake.config, exp), plan.target_jobs(snakemake.config, exp)
outputs = [job.out for job in (*data, *targets)]
assert sorted(outputs) == sorted(snakemake.output), "plan/outputs differ"
make_data_files(data, targets)
