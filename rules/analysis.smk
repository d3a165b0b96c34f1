# Alignment analyses (Conneau, Wu et al. 2020): the source LLM's English states, once per language.
# Word and sentence retrieval and CKA per layer then run as the `alignment` task of each transferred
# model's evaluate job (rules/evaluate.smk), on the weights that job has loaded anyway.


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
