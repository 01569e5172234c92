# One xarray dataset per experiment, its theorem checks, and a summary of all experiments' checks.


rule collect:
    input:
        # The stamps of the experiment's training jobs; the script reads the run files they
        # wrote (minnorm.workflow.job_files.collect_inputs).
        stamps=lambda w: known_stamps(w.exp),
    output:
        "results/{exp}/{exp}.nc",
    log:
        "results/{exp}/logs/collect.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/collect_runs.py"


# Theorem checks (minnorm.analysis.checks.CHECKS) of one experiment, and the estimates they rest
# on (estimates.csv, per data draw too). The report shows the HTML table (and its caption
# includes the table too), so the verdicts are on the page.
rule checks:
    input:
        "results/{exp}/{exp}.nc",
    output:
        csv="results/{exp}/checks.csv",
        md="results/{exp}/checks.md",
        html=report(
            "results/{exp}/checks.html",
            caption="../report/checks.rst",
            category="Theorem checks",
            subcategory="{exp}",
        ),
        estimates="results/{exp}/estimates.csv",
    log:
        "results/{exp}/logs/checks.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/theorem_checks.py"


# Every experiment's checks and estimates found under results/ (this config's first): running
# another config in the same folder keeps the earlier experiments' rows. The forest plot of
# every width exponent opens the report (report/workflow.rst embeds it).
rule checks_summary:
    input:
        expand("results/{exp}/checks.csv", exp=EXPERIMENTS),
        expand("results/{exp}/estimates.csv", exp=EXPERIMENTS),
    output:
        csv="results/checks.csv",
        md="results/checks.md",
        html=report(
            "results/checks.html",
            caption="../report/checks_summary.rst",
            category="Theorem checks",
            subcategory="summary",
        ),
        estimates="results/estimates.csv",
        forest=report(
            "results/forest.png",
            caption="../report/forest.rst",
            category="Theorem checks",
            subcategory="forest plot",
        ),
        forest_pdf="results/forest.pdf",
        forest_html="results/forest.html",
    log:
        "results/logs/checks.log",
    conda:
        CONDA_ENV
    params:
        experiments=EXPERIMENTS,
    script:
        "../scripts/checks_summary.py"


# As another workflow's module (whose onstart Snakemake skips), the resolved config is recorded
# by this rule instead, as part of `all`: `minnorm status` and `minnorm archive` read it. It is
# rewritten whenever the config changes (its digest is the param).
if AS_MODULE:

    rule run_config:
        output:
            str(LAST_RUN_CONFIG),
        localrule: True
        params:
            config=config_digest(config),
        run:
            write_last_run_config(config, output[0])
