# Linearized min-norm targets: W0, a, W*, Gram matrices and theory numbers of each initialisation.
# One job per (experiment, width) computes the targets of all its seeds and label-noise levels.

# The target is an n x n solve plus (m, p) products: minutes at most even for large widths.
TARGET_RUNTIME_MIN = 15

for exp in EXPERIMENTS:

    rule:
        name:
            f"target_{exp}"
        input:
            data=data_files(exp),
        output:
            target_files(exp),
        log:
            f"results/{exp}/logs/target/m{{width}}.log",
        benchmark:
            f"results/{exp}/benchmarks/target/m{{width}}.tsv"
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=lambda w, exp=exp: width_mem_mb(exp, w.width),
            runtime=TARGET_RUNTIME_MIN,
        params:
            jobs=lambda w, exp=exp: target_jobs(exp, w.width),
        script:
            "../scripts/make_target.py"
