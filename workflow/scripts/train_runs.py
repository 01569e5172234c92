"""Snakemake adapter: train all runs of one width (results/{exp}/runs/m{width}/*.nc)."""

import torch

from minnorm.pipeline import log_job_to, make_run_files

log_job_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runs = snakemake.params.runs
assert sorted(job["out"] for job in runs) == sorted(snakemake.output), "params/outputs differ"
make_run_files(runs)
