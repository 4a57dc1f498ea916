# The evidence study (docs/evidence.md): `snakemake evidence`. Each job runs a whole study part in one
# process (a job per seed or per architecture would pay ~9 s of start-up each).
rule correlate:
    input:
        f"{RESULTS}/prepared/{{edataset}}.json",
    output:
        f"{EVIDENCE}/{{edataset}}/correlate.json",
        f"{EVIDENCE}/{{edataset}}/architectures.csv",
        f"{EVIDENCE}/{{edataset}}/scatter.png",
    log:
        f"{LOGS}/evidence/correlate/{{edataset}}.log",
    benchmark:
        f"{BENCH}/evidence/correlate/{{edataset}}.tsv"
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
        f"{RESULTS}/prepared/{{edataset}}.json",
    output:
        f"{EVIDENCE}/{{edataset}}/{RUNS}/{{erun}}/replicate.json",
    log:
        f"{LOGS}/evidence/replicate/{{edataset}}/{{erun}}.log",
    benchmark:
        f"{BENCH}/evidence/replicate/{{edataset}}/{{erun}}.tsv"
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
        correlate=evidence_correlations(),
        replicate=evidence_replicates(),
    output:
        report(f"{EVIDENCE}/correlation.md", caption="../report/evidence.rst", category="Evidence"),
        f"{EVIDENCE}/correlation.csv",
        f"{EVIDENCE}/correlation.tex",
        report(f"{EVIDENCE}/noise.md", caption="../report/evidence.rst", category="Evidence"),
        f"{EVIDENCE}/noise.csv",
        f"{EVIDENCE}/noise.tex",
        report(f"{EVIDENCE}/comparison.md", caption="../report/evidence.rst", category="Evidence"),
        f"{EVIDENCE}/comparison.csv",
        f"{EVIDENCE}/comparison.tex",
        report(f"{EVIDENCE}/ablation.md", caption="../report/evidence.rst", category="Evidence"),
        f"{EVIDENCE}/ablation.csv",
        f"{EVIDENCE}/ablation.tex",
        report(f"{EVIDENCE}/comparison.png", caption="../report/evidence.rst", category="Evidence"),
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
        evidence_outputs(),
