# Gradient descent: one job per (experiment, width) trains all its runs (seeds, label-noise
# levels, learning rates) one after the other and writes one file per run. A job per run would
# spend more time importing torch and pytorch_lightning than training (BENCHMARKS.md).

# Small full-batch problems parallelise better across jobs than inside one job, so each job
# takes one core and `--cores N` trains N widths at once.
TRAIN_THREADS = 1

for exp in EXPERIMENTS:

    rule:
        name:
            f"train_{exp}"
        input:
            data=data_files(exp),
            targets=target_files(exp),
        output:
            width_run_files(exp),
        log:
            f"results/{exp}/logs/runs/m{{width}}.log",
        benchmark:
            f"results/{exp}/benchmarks/runs/m{{width}}.tsv"
        group:
            "train"
        conda:
            CONDA_ENV
        threads: TRAIN_THREADS
        resources:
            mem_mb=lambda w, exp=exp: width_mem_mb(exp, w.width),
            runtime=lambda w, exp=exp: width_runtime_min(exp, w.width),
            gpu=gpus(exp),
        params:
            # Resolved run configs and file names; checkpoints and completed-run links are
            # deliberately not outputs (Snakemake would delete them with a failed job's outputs).
            runs=lambda w, exp=exp: train_jobs(exp, w.width),
        script:
            "../scripts/train_runs.py"
