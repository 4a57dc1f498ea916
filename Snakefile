# lightsnn: from data to the comparison tables.
#   snakemake --cores all                                  (config/config.yaml, local)
#   snakemake evidence --cores all                         (the evidence study, docs/evidence.md)
#   snakemake --workflow-profile workflow/profiles/slurm --configfile config/paper.yaml
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/evidence.smk"


rule all:
    input:
        table_outputs(),
    default_target: True
