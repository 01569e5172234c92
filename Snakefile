# minnorm: gradient descent on wide two-layer ReLU networks versus the linearized min-norm
# target. The stages (data -> target -> train -> collect -> figures, checks) live in
# workflow/rules/; all computation lives in the minnorm package (src/minnorm).

from snakemake.utils import min_version

min_version("9.0")


from minnorm.config import ConfigError
from minnorm.config_yaml import check_config_file
from snakemake.exceptions import WorkflowError

# Snakemake reports a YAML syntax error in a config file only as "not valid JSON or YAML": read
# the default config file first, so that a mistake there names its file, line and column.
try:
    check_config_file("config/config.yaml")
except ConfigError as error:
    raise WorkflowError(str(error)) from None


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
