# The evidence study (docs/evidence.md): `snakemake evidence`. Each job runs a whole study part in one
# process (a job per seed or per architecture would pay ~9 s of start-up each).
rule correlate:
    input:
        TARGETS.prepared("{edataset}"),
    output:
        TARGETS.correlate_outputs("{edataset}"),
    log:
        f"{LOGS}/evidence/correlate/{{edataset}}.log",
    benchmark:
        f"{TIMINGS}/evidence/correlate/{{edataset}}.tsv"
    priority: 1  # the longest jobs of the study: start them first
    threads: THREADS
    params:
        out_dir=folder_of_first_output,
        settings=job_settings("correlate"),
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn correlate --dataset {wildcards.edataset:q} --config-json {params.settings:q} "
        "--out {params.out_dir:q} --no-progress --threads {threads} > {log:q} 2>&1"


rule replicate:
    input:
        TARGETS.prepared("{edataset}"),
    output:
        TARGETS.replicate_output("{edataset}", "{erun}"),
    log:
        f"{LOGS}/evidence/replicate/{{edataset}}/{{erun}}.log",
    benchmark:
        f"{TIMINGS}/evidence/replicate/{{edataset}}/{{erun}}.tsv"
    params:
        method=evidence_method,
        flags=evidence_flags,
        seeds=evidence_seeds,
        out_dir=folder_of_first_output,
        settings=job_settings("replicate"),
    threads: THREADS
    resources:
        gpu=1,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn replicate --method {params.method:q} --name {wildcards.erun:q} "
        "--dataset {wildcards.edataset:q} --seeds {params.seeds:q} --config-json {params.settings:q} "
        "{params.flags} --out {params.out_dir:q} --no-progress --threads {threads} "
        "> {log:q} 2>&1"


rule evidence_tables:
    input:
        correlate=TARGETS.evidence_correlations(),
        replicate=TARGETS.evidence_replicates(),
    output:
        *evidence_table_outputs(),
    log:
        f"{LOGS}/evidence/tables.log",
    params:
        out_dir=folder_of_first_output,
        baseline=EV["baseline"],
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn evidence --correlate {input.correlate:q} --replicate {input.replicate:q} "
        "--baseline {params.baseline:q} --out {params.out_dir:q} > {log:q} 2>&1"


rule evidence:
    input:
        TARGETS.evidence_outputs(),
