# Alignment analyses (Conneau, Wu et al. 2020): the source LLM's English states once per language,
# then word and sentence retrieval and CKA per layer for every model before and after training.


rule source_states:
    input:
        source=llm_dir,
        parallel="data/corpora/{lang}/parallel.test.tsv",
    output:
        states="results/analysis/source/{llm}/{lang}/states.safetensors",
    log:
        "logs/analysis/source/{llm}/{lang}.log",
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=source_states_flags,
    shell:
        "salt-transfer source-states --no-progress --threads {threads} --source-model {input.source} "
        "--parallel {input.parallel} {params.flags} --out {output.states} > {log} 2>&1"


rule analyze:
    input:
        unpack(analysis_inputs),
    output:
        analysis="results/analysis/{stage}/{llm}/{plm}/{method}.json",
    log:
        "logs/analysis/{stage}/{llm}/{plm}/{method}.log",
    benchmark:
        "benchmarks/analysis/{stage}/{llm}/{plm}/{method}.tsv"
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=analysis_flags,
    shell:
        "salt-transfer analyze --no-progress --threads {threads} --model {input.model} "
        "--source-model {input.source} --parallel {input.parallel} --lexicon {input.lexicon} "
        "--source-states {input.states} {params.flags} --out {output.analysis} > {log} 2>&1"
