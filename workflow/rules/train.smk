# Training writes a checkpoint every epoch beside its result (lightsnn.core.layout); the checkpoint is not a declared output,
# so a killed job's rerun (rerun-incomplete) resumes from it instead of starting over.
rule train:
    input:
        f"{RUN}/{SEARCH_FILE}",
    output:
        f"{RUN}/{TRAIN_FILE}",
    log:
        f"{LOGS}/train/{RUN_ID}.log",
    benchmark:
        f"{TIMINGS}/train/{RUN_ID}.tsv"
    threads: THREADS
    params:
        out_dir=train_dir,
        settings=job_settings("train"),
        group=group_of,
    resources:
        gpu=1,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn train --search {input:q} --dataset {wildcards.dataset:q} --seed {wildcards.seed:q} "
        "--config-json {params.settings:q} --group {params.group:q} --out {params.out_dir:q} --no-progress "
        "--threads {threads} > {log:q} 2>&1"


rule evaluate:
    input:
        f"{RUN}/{TRAIN_FILE}",
    output:
        f"{RUN}/{EVALUATE_FILE}",
    log:
        f"{LOGS}/evaluate/{RUN_ID}.log",
    benchmark:
        f"{TIMINGS}/evaluate/{RUN_ID}.tsv"
    threads: THREADS
    params:
        checkpoint=checkpoint_of,
        settings=job_settings("evaluate"),
        group=group_of,
    resources:
        gpu=1,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn evaluate --checkpoint {params.checkpoint:q} --config-json {params.settings:q} "
        "--group {params.group:q} --out {output:q} --no-progress --threads {threads} > {log:q} 2>&1"
