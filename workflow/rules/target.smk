# Linearized min-norm targets: W0, a, W*, Gram matrices and theory numbers of each initialisation.
# One job per (experiment, width) computes the targets of all its seeds and label-noise levels.
# The work list is rebuilt in the script (minnorm.plan.target_jobs); params are short digests.

for exp in EXPERIMENTS:

    rule:
        name:
            f"target_{exp}"
        input:
            data=plan.data_files(config, exp),
        output:
            plan.target_files(config, exp, plan.WIDTH_WILDCARD),
        log:
            f"results/{exp}/logs/target/m{{width}}.log",
        benchmark:
            f"results/{exp}/benchmarks/target/m{{width}}.tsv"
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=lambda w, exp=exp: resource_requests.width_mem_mb(
                config, exp, w.width
            ),
            runtime=resource_requests.TARGET_RUNTIME_MIN,
        params:
            exp=exp,
            identity=lambda w, exp=exp: plan.target_job_param(config, exp, w.width),
        script:
            "../scripts/make_target.py"
