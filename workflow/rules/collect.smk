# One xarray dataset per experiment, its theorem checks, and a summary of all experiments' checks.


rule collect:
    input:
        runs=lambda w: plan.run_files(config, w.exp),
    output:
        "results/{exp}/{exp}.nc",
    log:
        "results/{exp}/logs/collect.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/collect_runs.py"


# Theorem checks (minnorm.checks.CHECKS) of one experiment; the report shows the table itself.
rule checks:
    input:
        "results/{exp}/{exp}.nc",
    output:
        csv=report(
            "results/{exp}/checks.csv",
            caption="../report/checks.rst",
            category="Theorem checks",
            subcategory="{exp}",
        ),
        md="results/{exp}/checks.md",
        html="results/{exp}/checks.html",
    log:
        "results/{exp}/logs/checks.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/theorem_checks.py"


# Every experiment's checks found under results/ (this config's first): running another config
# in the same folder keeps the earlier experiments' rows.
rule checks_summary:
    input:
        expand("results/{exp}/checks.csv", exp=EXPERIMENTS),
    output:
        csv=report(
            "results/checks.csv",
            caption="../report/checks_summary.rst",
            category="Theorem checks",
            subcategory="summary",
        ),
        md="results/checks.md",
        html="results/checks.html",
    log:
        "results/logs/checks.log",
    conda:
        CONDA_ENV
    params:
        experiments=EXPERIMENTS,
    script:
        "../scripts/checks_summary.py"
