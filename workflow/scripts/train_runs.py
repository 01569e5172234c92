"""Snakemake adapter: train all runs of one width (results/{exp}/runs/m{width}/*.nc)."""

import logging
import sys

import torch

from minnorm.pipeline import make_run_files

# Left open so that a traceback, warnings and library logging all end up in the job's log.
sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")
logging.basicConfig(
    stream=sys.stderr,
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)
torch.set_num_threads(snakemake.threads)
runs = snakemake.params.runs
assert sorted(job["out"] for job in runs) == sorted(snakemake.output), "params/outputs differ"
make_run_files(runs)
