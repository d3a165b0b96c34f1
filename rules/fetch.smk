# Inputs: models and tokenizers (hub, local directory, packaged GGUF) and corpora. Local rules:
# downloads run on the submit host (compute nodes may be offline), one hub request at a time.


localrules:
    fetch_model,
    fetch_corpus,
    fetch_parallel,
    fetch_fasttext,
    fetch_mlqa,
    fetch_lexicon,


rule fetch_model:
    output:
        model=directory("data/models/{model}"),
    log:
        "logs/fetch/models/{model}.log",
    conda:
        "../envs/salt-transfer.yaml"
    resources:
        hf_api=1,
    params:
        spec=model_source,
        flags=fetch_flags,
    shell:
        "salt-transfer fetch-model --no-progress {params.spec} {output.model} {params.flags} > {log} 2>&1"


rule fetch_corpus:
    output:
        train="data/corpora/{lang}/train.txt",
        valid="data/corpora/{lang}/valid.txt",
        test="data/corpora/{lang}/test.txt",
        manifest="data/corpora/{lang}/manifest.json",
    log:
        "logs/fetch/corpora/{lang}.log",
    conda:
        "../envs/salt-transfer.yaml"
    resources:
        hf_api=1,
    params:
        flags=corpus_flags,
        out_dir=parent_of_train,
    shell:
        "salt-transfer fetch-corpus --no-progress {params.flags} --out-dir {params.out_dir} > {log} 2>&1"


rule fetch_parallel:
    output:
        pairs="data/corpora/{lang}/parallel.test.tsv",
    log:
        "logs/fetch/corpora/{lang}.parallel.log",
    conda:
        "../envs/salt-transfer.yaml"
    params:
        flags=parallel_flags,
    shell:
        "salt-transfer fetch-parallel --no-progress {params.flags} --out {output.pairs} > {log} 2>&1"


rule fetch_fasttext:
    output:
        model="data/fasttext/cc.{lang}.300.bin",
    log:
        "logs/fetch/fasttext/{lang}.log",
    conda:
        "../envs/salt-transfer.yaml"
    resources:
        hf_api=1,
    params:
        flags=fasttext_fetch_flags,
    shell:
        "salt-transfer fetch-fasttext --no-progress --lang {wildcards.lang} {params.flags} --out {output.model} > {log} 2>&1"


rule fetch_lexicon:
    output:
        lexicon="data/corpora/{lang}/lexicon.tsv",
    log:
        "logs/fetch/corpora/{lang}.lexicon.log",
    conda:
        "../envs/salt-transfer.yaml"
    params:
        flags=lexicon_flags,
    shell:
        "salt-transfer build-lexicon --no-progress {params.flags} --out {output.lexicon} > {log} 2>&1"


# MLQA as lm-eval tasks salt_mlqa_X_Y for one language (facebook/mlqa is a loading script, which
# datasets 5 does not run): the official MLQA_V1.zip, converted; the tasks include lm-eval's own.
rule fetch_mlqa:
    output:
        tasks=directory("data/mlqa/{lang}"),
    log:
        "logs/fetch/mlqa/{lang}.log",
    conda:
        "../envs/salt-transfer.yaml"
    resources:
        hf_api=1,
    params:
        flags=mlqa_flags,
    shell:
        "salt-transfer fetch-mlqa --no-progress --lang {wildcards.lang} {params.flags} --out-dir {output.tasks} > {log} 2>&1"
