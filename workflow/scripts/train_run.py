"""Snakemake adapter: train one run (results/{exp}/runs/m{width}/s{seed}_p{noise}_lr{lr}.nc)."""

import logging
import sys

import torch

from minnorm.pipeline import make_run_file

# Left open so that a traceback, warnings and library logging all end up in the job's log.
sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")
logging.basicConfig(
    stream=sys.stderr,
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)
torch.set_num_threads(snakemake.threads)
make_run_file(
    snakemake.params.run_config,
    snakemake.input.data,
    snakemake.input.target,
    snakemake.output[0],
    checkpoint=snakemake.params.checkpoint,
)
