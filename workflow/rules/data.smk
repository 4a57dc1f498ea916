rule prepare:
    input:
        data_files,
    output:
        PREPARED,
    log:
        f"{LOGS}/prepare/{{dataset}}.log",
    benchmark:
        f"{TIMINGS}/prepare/{{dataset}}.tsv"
    threads: THREADS
    params:
        settings=job_settings("prepare"),
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn prepare --dataset {wildcards.dataset:q} --config-json {params.settings:q} "
        "--report {output:q} --no-progress --threads {threads} > {log:q} 2>&1"
