rule search:
    input:
        f"{RESULTS}/prepared/{{dataset}}.json",
    output:
        f"{RUNS_DIR}/{{dataset}}/{{run}}/seed{{seed}}/search.json",
    log:
        f"{LOGS}/search/{{dataset}}/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/search/{{dataset}}/{{run}}/seed{{seed}}.tsv"
    params:
        method=method_of,
        flags=variant_flags,
        config_files=CONFIG_FILE,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn search --method {params.method:q} --dataset {wildcards.dataset:q} "
        "--seed {wildcards.seed:q} {params.config_files} --out {output:q} --no-progress --threads {threads} "
        "{params.flags} > {log:q} 2>&1"
