rule aggregate:
    input:
        evaluations=TARGETS.evaluations(),
        searches=TARGETS.searches(),
    output:
        *report_outputs(),
    log:
        f"{LOGS}/aggregate.log",
    params:
        runs=TARGETS.run_dirs(),
        out_dir=folder_of_first_output,
        table1=TARGETS.table1_flags(),
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn report --runs {params.runs:q} --out {params.out_dir:q} {params.table1} > {log:q} 2>&1"
