"""Snakemake adapter: collect an experiment's run files into results/{exp}/{exp}.nc."""

import logging
import sys

from minnorm.pipeline import make_collected_file

# Left open so that a traceback, warnings and library logging all end up in the job's log.
sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")
logging.basicConfig(
    stream=sys.stderr,
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)
make_collected_file(list(snakemake.input.runs), snakemake.output[0])
