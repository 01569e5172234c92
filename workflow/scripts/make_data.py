"""Snakemake adapter: write the data files of one experiment (results/{exp}/data/*.nc)."""

import torch

from minnorm import plan
from minnorm.pipeline import log_job_to, make_data_files

log_job_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
# The work list comes from the config, not from params (which hold only a short digest).
jobs = plan.data_jobs(snakemake.config, snakemake.params.exp)
assert sorted(job["out"] for job in jobs) == sorted(snakemake.output), "plan/outputs differ"
make_data_files(jobs)
