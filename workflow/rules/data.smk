# Data sets: one file per (seed, label noise); the points are fixed per experiment, the label
# noise depends on the run seed.


rule data:
    output:
        "results/{exp}/data/s{seed}_p{noise}.nc",
    log:
        "results/{exp}/logs/data/s{seed}_p{noise}.log",
    conda:
        CONDA_ENV
    threads: 1
    params:
        run_config=data_params,
    script:
        "../scripts/make_data.py"
