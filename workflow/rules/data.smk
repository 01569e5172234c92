# Data sets: one file per (seed, label noise); the points are fixed per experiment, the label
# noise depends on the run seed. One job per experiment writes all of them (each job is a fresh
# interpreter, and its imports cost more than drawing a small data set).

for exp in EXPERIMENTS:

    rule:
        name:
            f"data_{exp}"
        output:
            data_files(exp),
        log:
            f"results/{exp}/logs/data.log",
        conda:
            CONDA_ENV
        threads: 1
        params:
            jobs=data_jobs(exp),
        script:
            "../scripts/make_data.py"
