# Training writes checkpoint.pt every epoch next to train.json; the checkpoint is not a declared output,
# so a killed job's rerun (rerun-incomplete) resumes from it instead of starting over.
rule train:
    input:
        f"{RUNS_DIR}/{{dataset}}/{{run}}/seed{{seed}}/search.json",
    output:
        f"{RUNS_DIR}/{{dataset}}/{{run}}/seed{{seed}}/train/train.json",
    log:
        f"{LOGS}/train/{{dataset}}/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{dataset}}/{{run}}/seed{{seed}}.tsv"
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
        f"{RUNS_DIR}/{{dataset}}/{{run}}/seed{{seed}}/train/train.json",
    output:
        f"{RUNS_DIR}/{{dataset}}/{{run}}/seed{{seed}}/evaluate.json",
    log:
        f"{LOGS}/evaluate/{{dataset}}/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{dataset}}/{{run}}/seed{{seed}}.tsv"
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
