# Fit target-vocabulary embeddings (GPU when available) and build the transferred model.


rule fit:
    input:
        unpack(fit_inputs),
    output:
        embeddings="results/fit/{llm}/{plm}/{method}/embeddings.safetensors",
        report="results/fit/{llm}/{plm}/{method}/fit.json",
    log:
        "logs/fit/{llm}/{plm}/{method}.log",
    benchmark:
        "benchmarks/fit/{llm}/{plm}/{method}.tsv"
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        flags=fit_flags,
    shell:
        "salt-transfer fit --no-progress --threads {threads} --source-model {input.source} "
        "--overlap {input.overlap} {params.flags} --out {output.embeddings} --report {output.report} > {log} 2>&1"


rule transplant:
    input:
        source=llm_dir,
        tokenizer=plm_dir,
        embeddings="results/fit/{llm}/{plm}/{method}/embeddings.safetensors",
    output:
        model=directory("results/init/{llm}/{plm}/{method}/model"),
    log:
        "logs/transplant/{llm}/{plm}/{method}.log",
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=transplant_flags,
    shell:
        "salt-transfer transplant --no-progress --threads {threads} --source-model {input.source} "
        "--target-tokenizer {input.tokenizer} --embeddings {input.embeddings} {params.flags} "
        "--out {output.model} > {log} 2>&1"
