# One gradient-descent run per (width, seed, label noise, lr).

# Small full-batch problems parallelise better across jobs than inside one job, so each run
# takes one core and `--cores N` runs N of them at once.
TRAIN_THREADS = 1


rule train:
    input:
        data="results/{exp}/data/s{seed}_p{noise}.nc",
        target="results/{exp}/target/m{width}_s{seed}_p{noise}.nc",
    output:
        "results/{exp}/runs/m{width}/s{seed}_p{noise}_lr{lr}.nc",
    log:
        "results/{exp}/logs/runs/m{width}/s{seed}_p{noise}_lr{lr}.log",
    benchmark:
        "results/{exp}/benchmarks/runs/m{width}/s{seed}_p{noise}_lr{lr}.tsv"
    group:
        "train"
    conda:
        CONDA_ENV
    threads: TRAIN_THREADS
    resources:
        mem_mb=run_mem,
        runtime=run_runtime,
        gpu=run_gpus,
    params:
        # The resolved run config: changing any training value reruns exactly these runs.
        run_config=run_params,
        # Resumable state, written during training; not an output so a killed job keeps it.
        checkpoint=lambda w: f"results/{w.exp}/checkpoints/m{w.width}/s{w.seed}_p{w.noise}_lr{w.lr}.ckpt",
    script:
        "../scripts/train_run.py"
