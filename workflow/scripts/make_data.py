"""Snakemake adapter: write one data file (results/{exp}/data/s{seed}_p{noise}.nc)."""

import logging
import sys

import torch

from minnorm.pipeline import make_data_file

# Left open so that a traceback, warnings and library logging all end up in the job's log.
sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")
logging.basicConfig(
    stream=sys.stderr,
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)
torch.set_num_threads(snakemake.threads)
make_data_file(snakemake.params.run_config, snakemake.output[0])
