rule prepare:
    output:
        f"{RESULTS}/prepared/{{dataset}}.json",
    log:
        f"{LOGS}/prepare/{{dataset}}.log",
    benchmark:
        f"{BENCH}/prepare/{{dataset}}.tsv"
    params:
        config_files=CONFIG_FILE,
    conda:
        "../envs/lightsnn.yaml"
    shell:
        "python -m lightsnn prepare --dataset {wildcards.dataset:q} {params.config_files} "
        "--report {output:q} --no-progress > {log:q} 2>&1"
