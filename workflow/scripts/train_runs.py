"""Snakemake adapter: train all runs of one width (results/{exp}/runs/m{width}/*.nc).

Prints one line to the terminal: "train_<exp> m=<width>: reused k, trained n". Reused runs are
restored before torch is imported, so a fully reused job takes well under a second of imports.
"""

from minnorm.workflow import plan
from minnorm.workflow.pipeline import log_job_to, make_run_files

log_job_to(snakemake.log[0])
exp, width = snakemake.params.exp, snakemake.wildcards.width
# The work list comes from the config, not from params (which hold only short digests).
runs = plan.train_jobs(snakemake.config, exp, width)
assert sorted(job.out for job in runs) == sorted(snakemake.output), "plan/outputs differ"
make_run_files(runs, threads=snakemake.threads, label=f"train_{exp} m={width}")
