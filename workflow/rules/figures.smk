# One rule per figure; each reads its experiment's collected file and writes PNG + PDF.
# The PNG goes into the report with the caption workflow/report/<figure>.rst.


# Satpathi & Srikant Figure 1: distances to the target and from init against steps.
rule ss_fig1:
    input:
        "results/{exp}/{exp}.nc",
    output:
        png=report(
            "results/{exp}/figures/ss_fig1.png",
            caption="../report/ss_fig1.rst",
            category="Figures",
            subcategory="{exp}",
        ),
        pdf="results/{exp}/figures/ss_fig1.pdf",
    log:
        "results/{exp}/logs/figures/ss_fig1.log",
    conda:
        CONDA_ENV
    params:
        figure="ss_fig1",
    script:
        "../scripts/plot_figure.py"


# Final distance to the target against width, with the fitted power law.
rule width_scaling:
    input:
        "results/{exp}/{exp}.nc",
    output:
        png=report(
            "results/{exp}/figures/width_scaling.png",
            caption="../report/width_scaling.rst",
            category="Figures",
            subcategory="{exp}",
        ),
        pdf="results/{exp}/figures/width_scaling.pdf",
    log:
        "results/{exp}/logs/figures/width_scaling.log",
    conda:
        CONDA_ENV
    params:
        figure="width_scaling",
    script:
        "../scripts/plot_figure.py"


# Network against its linearization and kernel regression (Lee et al.).
rule function_space:
    input:
        "results/{exp}/{exp}.nc",
    output:
        png=report(
            "results/{exp}/figures/function_space.png",
            caption="../report/function_space.rst",
            category="Figures",
            subcategory="{exp}",
        ),
        pdf="results/{exp}/figures/function_space.pdf",
    log:
        "results/{exp}/logs/figures/function_space.log",
    conda:
        CONDA_ENV
    params:
        figure="function_space",
    script:
        "../scripts/plot_figure.py"


# Arora et al. Figure 2: test loss, test error and the bound against label noise.
rule arora_fig2:
    input:
        "results/{exp}/{exp}.nc",
    output:
        png=report(
            "results/{exp}/figures/arora_fig2.png",
            caption="../report/arora_fig2.rst",
            category="Figures",
            subcategory="{exp}",
        ),
        pdf="results/{exp}/figures/arora_fig2.pdf",
    log:
        "results/{exp}/logs/figures/arora_fig2.log",
    conda:
        CONDA_ENV
    params:
        figure="arora_fig2",
    script:
        "../scripts/plot_figure.py"


# Arora et al. Figure 1: training loss and the spectrum of H with label projections.
rule arora_fig1:
    input:
        "results/{exp}/{exp}.nc",
    output:
        png=report(
            "results/{exp}/figures/arora_fig1.png",
            caption="../report/arora_fig1.rst",
            category="Figures",
            subcategory="{exp}",
        ),
        pdf="results/{exp}/figures/arora_fig1.pdf",
    log:
        "results/{exp}/logs/figures/arora_fig1.log",
    conda:
        CONDA_ENV
    params:
        figure="arora_fig1",
    script:
        "../scripts/plot_figure.py"


# Relative weight change and activation flips against width (lazy training).
rule lazy_regime:
    input:
        "results/{exp}/{exp}.nc",
    output:
        png=report(
            "results/{exp}/figures/lazy_regime.png",
            caption="../report/lazy_regime.rst",
            category="Figures",
            subcategory="{exp}",
        ),
        pdf="results/{exp}/figures/lazy_regime.pdf",
    log:
        "results/{exp}/logs/figures/lazy_regime.log",
    conda:
        CONDA_ENV
    params:
        figure="lazy_regime",
    script:
        "../scripts/plot_figure.py"
