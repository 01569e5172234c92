"""Snakemake adapter: write the data files of one experiment (results/{exp}/data/*.nc)."""

import torch

from minnorm.pipeline import log_job_to, make_data_files

log_job_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
jobs = snakemake.params.jobs
assert sorted(job["out"] for job in jobs) == sorted(snakemake.output), "params/outputs differ"
make_data_files(jobs)
