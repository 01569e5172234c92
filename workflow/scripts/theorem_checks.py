"""Snakemake adapter: theorem checks over all experiments (results/checks.csv and .md)."""

import logging
import sys

from minnorm.pipeline import make_checks

# Left open so that a traceback, warnings and library logging all end up in the job's log.
sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")
logging.basicConfig(
    stream=sys.stderr,
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)
collected = dict(
    zip(snakemake.params.experiments, snakemake.input.collected, strict=True)
)
make_checks(collected, snakemake.output.csv, snakemake.output.md)
