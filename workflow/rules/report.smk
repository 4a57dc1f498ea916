rule aggregate:
    input:
        evaluations=evaluations(),
        searches=searches(),
    output:
        report(f"{TABLES}/table2.html", caption="../report/table2.rst", category="Tables", subcategory="Table 2"),
        report(f"{TABLES}/table2.csv", caption="../report/table2.rst", category="Tables", subcategory="Table 2"),
        report(f"{TABLES}/table2.md", caption="../report/table2.rst", category="Tables", subcategory="Table 2"),
        report(f"{TABLES}/table2.tex", caption="../report/table2.rst", category="Tables", subcategory="Table 2"),
        report(f"{TABLES}/{RUNS_TABLE_HTML}", caption="../report/every_run.rst", category="Tables", subcategory="Every run"),
        report(f"{TABLES}/{RUNS_TABLE}", caption="../report/every_run.rst", category="Tables", subcategory="Every run"),
        report(f"{TABLES}/accuracy_vs_sar.png", caption="../report/accuracy_vs_sar.rst", category="Plots"),
        report(f"{TABLES}/search_time.png", caption="../report/search_time.rst", category="Plots"),
        *([report(f"{TABLES}/table1.html", caption="../report/table1.rst", category="Tables", subcategory="Table 1"),
           report(f"{TABLES}/table1.csv", caption="../report/table1.rst", category="Tables", subcategory="Table 1"),
           f"{TABLES}/table1.md", f"{TABLES}/table1.tex"] if WF["table1"] else []),
    log:
        f"{LOGS}/aggregate.log",
    params:
        runs=run_dirs(),
        out_dir=folder_of_first_output,
        table1=table1_flags,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn report --runs {params.runs:q} --out {params.out_dir:q} {params.table1} > {log:q} 2>&1"
