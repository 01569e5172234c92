# minnorm. The workflow is workflow/Snakefile (the Snakemake workflow catalog's layout); this
# file lets `snakemake` run from the repository root as well.


include: "workflow/Snakefile"


# `include:` keeps the including file's default target (here: none), so name it again.
workflow.default_target = "all"
