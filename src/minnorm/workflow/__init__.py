"""The workflow's side of the library: the run plan, the rules' entry points, job resources,
how the workflow was invoked, Snakemake's lock and `make status`."""
