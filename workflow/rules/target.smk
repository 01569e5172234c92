# Linearized min-norm target of one initialisation: W0, a, W*, Gram matrices, theory numbers.

# The target is an n x n solve plus (m, p) products: minutes at most even for large widths.
TARGET_RUNTIME_MIN = 15


rule target:
    input:
        data="results/{exp}/data/s{seed}_p{noise}.nc",
    output:
        "results/{exp}/target/m{width}_s{seed}_p{noise}.nc",
    log:
        "results/{exp}/logs/target/m{width}_s{seed}_p{noise}.log",
    benchmark:
        "results/{exp}/benchmarks/target/m{width}_s{seed}_p{noise}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=run_mem,
        runtime=TARGET_RUNTIME_MIN,
    params:
        run_config=target_params,
    script:
        "../scripts/make_target.py"
