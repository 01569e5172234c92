# Data sets and linearized min-norm targets. Data: one file per (seed, label noise); the points
# are fixed per experiment, the label noise depends on the run seed. Targets: W0, a, W*, Gram
# matrices and theory numbers of each initialisation, one file per (width, seed, label noise).
# One job per experiment writes all of them, the data files first, then the targets of every
# width from them: each job is a fresh interpreter, and its imports (torch) cost more than
# drawing a small data set or solving for a target. The job's work list is rebuilt in the script
# from the config (minnorm.workflow.plan.data_jobs, minnorm.workflow.plan.target_jobs); its params are short
# digests of the data and target settings (data, model, widths) and the numerical code, so that
# any of these changes reruns it while a training setting does not.

for exp in EXPERIMENTS:

    rule:
        name:
            f"data_{exp}"
        input:
            # The user's original MNIST/CIFAR-10 files: replacing one rebuilds the data files.
            # Read where `data.path` says (from the working directory), never below a module's
            # prefix: local() keeps Snakemake from moving them.
            local=[local(f) for f in plan.local_data_files(config, exp)],
        output:
            # The stamp first (the training jobs' input), then every data and target file.
            stamp=plan.data_stamp_file(exp),
            files=plan.input_stage_files(config, exp),
        log:
            f"results/{exp}/logs/data.log",
        benchmark:
            f"results/{exp}/benchmarks/data.tsv"
        # Before every training job: it gates all of its experiment's training jobs.
        priority: lambda w, exp=exp: resource_requests.data_priority(config, exp)
        conda:
            CONDA_ENV
        threads: 1
        resources:
            # The targets of the largest width dominate (one target at a time). Callables, as in
            # train.smk: evaluated when the job is planned, not when the workflow is parsed.
            mem_mb=lambda w, exp=exp: resource_requests.data_mem_mb(config, exp),
            runtime=lambda w, exp=exp: resource_requests.data_runtime_min(config, exp),
        params:
            exp=exp,
            identity=plan.data_job_param(config, exp),
        script:
            "../scripts/make_data.py"
