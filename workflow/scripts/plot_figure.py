"""Snakemake adapter: draw one figure of one experiment (results/{exp}/figures/<name>.png/.pdf)."""

import logging
import sys

import matplotlib

matplotlib.use("Agg")  # jobs run without a display

from minnorm.pipeline import make_figure  # noqa: E402 (after choosing the backend)

# Left open so that a traceback, warnings and library logging all end up in the job's log.
sys.stderr = open(snakemake.log[0], "w", encoding="utf-8")
logging.basicConfig(
    stream=sys.stderr,
    level=logging.INFO,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
)
make_figure(
    snakemake.params.figure,
    snakemake.input[0],
    snakemake.output.png,
    snakemake.output.pdf,
)
