# minnorm: gradient descent on wide two-layer ReLU networks versus the linearized min-norm
# target. The stages (data -> target -> train -> collect -> figures, checks) live in
# workflow/rules/; all computation lives in the minnorm package (src/minnorm).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/target.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        all_targets(),
    localrule: True
