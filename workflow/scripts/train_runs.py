"""Snakemake adapter: train all runs of one width (results/{exp}/runs/m{width}/*.nc).

Prints one line to the terminal: "train_<exp> m=<width>: reused k, trained n". Reused runs are
restored before torch is imported, so a fully reused job takes well under a second of imports.
"""

from minnorm.workflow import plan
from minnorm.workflow.job_files import jobs_at_outputs
from minnorm.workflow.pipeline import log_job_clock, log_job_to, make_run_files, write_stamp

log_job_to(snakemake.log[0])
exp, width = snakemake.params.exp, snakemake.wildcards.width
# The settings come from the config (params hold only short digests); the files are this job's
# inputs and outputs (checkpoints beside them), below a module's `prefix:` if there is one.
runs = jobs_at_outputs(plan.train_jobs(snakemake.config, exp, width), snakemake.output.runs)
make_run_files(runs, threads=snakemake.threads, label=f"train_{exp} m={width}")
write_stamp(list(snakemake.output.runs), snakemake.output.stamp)
log_job_clock()
