# Data sets: one file per (seed, label noise); the points are fixed per experiment, the label
# noise depends on the run seed. One job per experiment writes all of them (each job is a fresh
# interpreter, and its imports cost more than drawing a small data set). The job's work list is
# rebuilt in the script from the config (minnorm.plan.data_jobs); its params are short digests
# of the data settings and the numerical code, so that either change reruns it.

for exp in EXPERIMENTS:

    rule:
        name:
            f"data_{exp}"
        input:
            # The user's original MNIST/CIFAR-10 files: replacing one rebuilds the data files.
            local=plan.local_data_files(config["experiments"][exp]["data"]),
        output:
            plan.data_files(config, exp),
        log:
            f"results/{exp}/logs/data.log",
        conda:
            CONDA_ENV
        threads: 1
        params:
            exp=exp,
            identity=plan.data_job_param(config, exp),
        script:
            "../scripts/make_data.py"
