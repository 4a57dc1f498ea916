rule search:
    input:
        PREPARED,
    output:
        f"{RUN}/{SEARCH_FILE}",
    log:
        f"{LOGS}/search/{RUN_ID}.log",
    benchmark:
        f"{TIMINGS}/search/{RUN_ID}.tsv"
    threads: THREADS
    params:
        method=lambda wildcards: TARGETS.method_of(wildcards.run),
        settings=job_settings("search"),
        group=group_of,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn search --method {params.method:q} --dataset {wildcards.dataset:q} "
        "--seed {wildcards.seed:q} --config-json {params.settings:q} --group {params.group:q} --out {output:q} "
        "--no-progress --threads {threads} > {log:q} 2>&1"
