"""Snakemake adapter: write the target files of one width (results/{exp}/target/m{width}_*.nc)."""

import torch

from minnorm import plan
from minnorm.pipeline import log_job_to, make_target_files

log_job_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
# The work list comes from the config, not from params (which hold only a short digest).
jobs = plan.target_jobs(snakemake.config, snakemake.params.exp, snakemake.wildcards.width)
assert sorted(job["out"] for job in jobs) == sorted(snakemake.output), "plan/outputs differ"
make_target_files(jobs)
