# One xarray dataset per experiment, then the theorem checks over all experiments.


rule collect:
    input:
        runs=lambda w: run_files(w.exp),
    output:
        "results/{exp}/{exp}.nc",
    log:
        "results/{exp}/logs/collect.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/collect_runs.py"


rule checks:
    input:
        collected=collected_files(),
    output:
        csv=report(
            "results/checks.csv",
            caption="../report/checks.rst",
            category="Theorem checks",
        ),
        md=report(
            "results/checks.md",
            caption="../report/checks.rst",
            category="Theorem checks",
        ),
    log:
        "results/logs/checks.log",
    conda:
        CONDA_ENV
    params:
        experiments=EXPERIMENTS,
    script:
        "../scripts/theorem_checks.py"
