# Gradient descent: one job per (experiment, width) trains all its runs (seeds, label-noise
# levels, learning rates) and writes one file per run. Runs on the same inputs with the same
# training settings train side by side, one compiled step for the batch (minnorm.training.train.
# train_runs). A job per run would spend more time importing torch and pytorch_lightning than
# training (BENCHMARKS.md).
# The runs are rebuilt in the script (minnorm.workflow.plan.train_jobs). The params are short digests of
# the runs' numeric settings and of the numerical code: a changed lr, steps or numerical module
# reruns exactly the affected widths, a changed log interval or plotting module reruns nothing.

# Small full-batch problems parallelise better across jobs than inside one job, so each job
# takes one core and `--cores N` trains N widths at once.
TRAIN_THREADS = 1

for exp in EXPERIMENTS:

    rule:
        name:
            f"train_{exp}"
        input:
            # The stamp of the experiment's data job, which wrote the data and target files
            # (minnorm.workflow.plan.DATA_STAMP_FILE: one input instead of thousands).
            plan.data_stamp_file(exp),
        output:
            # The stamp first (the collect job's input; Snakemake finds it at once), then the
            # run files: a missing one reruns this job.
            stamp=plan.train_stamp_file(exp, plan.WIDTH_WILDCARD),
            runs=plan.width_run_files(config, exp, plan.WIDTH_WILDCARD),
        log:
            f"results/{exp}/logs/runs/m{{width}}.log",
        benchmark:
            f"results/{exp}/benchmarks/runs/m{{width}}.tsv"
        # The longest jobs first: shorter ones fill the other cores around them.
        priority: lambda w, exp=exp: resource_requests.width_priority(config, exp, w.width)
        group:
            "train"
        conda:
            CONDA_ENV
        threads: TRAIN_THREADS
        resources:
            mem_mb=lambda w, exp=exp: resource_requests.width_mem_mb(
                config, exp, w.width
            ),
            runtime=lambda w, exp=exp: resource_requests.width_runtime_min(
                config, exp, w.width
            ),
            gpu=resource_requests.gpus(config, exp),
        params:
            # Checkpoints and completed-run links are deliberately not outputs (Snakemake would
            # delete them with a failed job's outputs).
            exp=exp,
            identity=lambda w, exp=exp: plan.train_job_param(config, exp, w.width),
        script:
            "../scripts/train_runs.py"
