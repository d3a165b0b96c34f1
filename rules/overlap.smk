# Vocabulary overlap of each (source LLM, target PLM) pair, and the auxiliary fastText vectors.


rule overlap:
    input:
        source=llm_dir,
        target=plm_dir,
    output:
        table="results/overlap/{llm}/{plm}/overlap.parquet",
        stats="results/overlap/{llm}/{plm}/stats.json",
    log:
        "logs/overlap/{llm}/{plm}.log",
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=overlap_flags,
    shell:
        "salt-transfer overlap --no-progress --threads {threads} --source-tokenizer {input.source} "
        "--target-tokenizer {input.target} --out {output.table} --stats {output.stats} {params.flags} > {log} 2>&1"


rule fasttext:
    input:
        corpus=plm_train_text,
        tokenizer=plm_dir,
    output:
        model="results/fasttext/{lang}/{plm}/fasttext.bin",
    log:
        "logs/fasttext/{lang}/{plm}.log",
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=aux_flags,
    shell:
        "salt-transfer fasttext --no-progress --corpus {input.corpus} --tokenizer {input.tokenizer} "
        "--out {output.model} {params.flags} > {log} 2>&1"
