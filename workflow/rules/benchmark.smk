# Evidence on a tabular NAS benchmark (docs/evidence.md): `snakemake benchmark`. Scores are computed in
# shards (one job each), searches one job per method and seed; nothing is trained.
rule benchmark_score:
    output:
        TARGETS.benchmark_shard("{shard}"),
    log:
        f"{LOGS}/benchmark/score/shard-{{shard}}.log",
    benchmark:
        f"{TIMINGS}/benchmark/score/shard-{{shard}}.tsv"
    threads: THREADS
    params:
        settings=benchmark_settings("score"),
    resources:
        gpu=1,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn benchmark score --shard {wildcards.shard} --config-json {params.settings:q} "
        "--csv {output:q} --no-progress --threads {threads} > {log:q} 2>&1"


rule benchmark_correlate:
    input:
        TARGETS.benchmark_shards(),
    output:
        *benchmark_outputs("correlate"),
    log:
        f"{LOGS}/benchmark/correlate.log",
    threads: 1
    params:
        settings=benchmark_settings("correlate"),
        out_dir=folder_of_first_output,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn benchmark correlate --scores {input:q} --config-json {params.settings:q} "
        "--out {params.out_dir:q} > {log:q} 2>&1"


rule benchmark_search:
    output:
        TARGETS.benchmark_pick("{bmethod}", "{seed}"),
    log:
        f"{LOGS}/benchmark/search/{{bmethod}}/seed{{seed}}.log",
    benchmark:
        f"{TIMINGS}/benchmark/search/{{bmethod}}/seed{{seed}}.tsv"
    threads: THREADS
    params:
        settings=benchmark_settings("search"),
    resources:
        gpu=1,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn benchmark search --method {wildcards.bmethod:q} --seed {wildcards.seed} "
        "--config-json {params.settings:q} --out {output:q} --no-progress --threads {threads} > {log:q} 2>&1"


rule benchmark_quality:
    input:
        picks=TARGETS.benchmark_picks(),
        scores=TARGETS.benchmark_shards(),
    output:
        *benchmark_outputs("quality"),
    log:
        f"{LOGS}/benchmark/quality.log",
    threads: 1
    params:
        settings=benchmark_settings("quality"),
        out_dir=folder_of_first_output,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn benchmark quality --picks {input.picks:q} --scores {input.scores:q} "
        "--config-json {params.settings:q} --out {params.out_dir:q} > {log:q} 2>&1"


rule benchmark_anytime:
    input:
        picks=TARGETS.benchmark_picks(),
        scores=TARGETS.benchmark_shards(),
    output:
        *benchmark_outputs("anytime"),
    log:
        f"{LOGS}/benchmark/anytime.log",
    benchmark:
        f"{TIMINGS}/benchmark/anytime.tsv"
    threads: 1
    params:
        settings=benchmark_settings("anytime"),
        out_dir=folder_of_first_output,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn benchmark anytime --picks {input.picks:q} --scores {input.scores:q} "
        "--config-json {params.settings:q} --out {params.out_dir:q} > {log:q} 2>&1"


rule benchmark_front:
    input:
        picks=TARGETS.benchmark_picks(),
    output:
        *benchmark_outputs("front"),
    log:
        f"{LOGS}/benchmark/front.log",
    benchmark:
        f"{TIMINGS}/benchmark/front.tsv"
    threads: 1
    params:
        settings=benchmark_settings("front"),
        out_dir=folder_of_first_output,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn benchmark front --picks {input.picks:q} --config-json {params.settings:q} "
        "--out {params.out_dir:q} > {log:q} 2>&1"


rule benchmark:
    input:
        [TARGETS.benchmark_outputs(step)[0] for step in ("correlate", "quality", "anytime", "front")],
