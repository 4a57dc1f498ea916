# A method with workers (the budgeted search's `workers`): that many jobs train trials of one shared study,
# then the run's search job writes the result from the study.
rule search_worker:
    input:
        PREPARED,
    output:
        TARGETS.worker_output("{dataset}", "{run}", "{seed}", "{worker}"),
    log:
        f"{LOGS}/search/{RUN_ID}-worker{{worker}}.log",
    benchmark:
        f"{TIMINGS}/search/{RUN_ID}-worker{{worker}}.tsv"
    threads: THREADS
    params:
        method=lambda wildcards: TARGETS.method_of(wildcards.run),
        settings=job_settings("search"),
        storage=lambda wildcards: TARGETS.storage_flag(wildcards.dataset, wildcards.run, wildcards.seed),
        group=group_of,
    resources:
        gpu=1,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn search --method {params.method:q} --dataset {wildcards.dataset:q} "
        "--seed {wildcards.seed:q} --config-json {params.settings:q} {params.storage} --group {params.group:q} "
        "--out {output:q} --no-progress --threads {threads} > {log:q} 2>&1"


rule search:
    input:
        PREPARED,
        lambda wildcards: TARGETS.worker_outputs(wildcards.dataset, wildcards.run, wildcards.seed),
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
        storage=lambda wildcards: TARGETS.storage_flag(wildcards.dataset, wildcards.run, wildcards.seed),
        group=group_of,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn search --method {params.method:q} --dataset {wildcards.dataset:q} "
        "--seed {wildcards.seed:q} --config-json {params.settings:q} {params.storage} --group {params.group:q} "
        "--out {output:q} --no-progress --threads {threads} > {log:q} 2>&1"
