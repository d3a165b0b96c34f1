# Target-language PLMs the cells recycle, under results/plm/{plm}/model when derived here:
#   - stand-ins (plms.*.source: standin): trained on the language's training split, because no such
#     PLM installs offline (the encoder-decoder slot of the demo);
#   - trimmed real PLMs (plms.*.trim: true): a fetched multilingual PLM cut down to the tokens of the
#     language's training text, approximating the paper's monolingual PLMs (not the paper's setting).
# Other hub PLMs are used as fetched (data/models/{plm}, rules/fetch.smk).


rule standin_plm:
    input:
        corpus=plm_train_text,
    output:
        model=directory("results/plm/{plm}/model"),
    log:
        "logs/plm/{plm}.log",
    benchmark:
        "benchmarks/plm/{plm}.tsv"
    wildcard_constraints:
        plm=_alternatives(STANDIN_PLMS),
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=standin_flags,
    shell:
        "salt-transfer standin-plm --no-progress --threads {threads} {params.flags} --corpus {input.corpus} "
        "--out {output.model} > {log} 2>&1"


rule trim_plm:
    input:
        model=fetched_plm_dir,
        text=plm_train_text,
    output:
        model=directory("results/plm/{plm}/model"),
    log:
        "logs/plm/{plm}.log",
    benchmark:
        "benchmarks/plm/{plm}.tsv"
    wildcard_constraints:
        plm=_alternatives(TRIMMED_PLMS),
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=trim_flags,
    shell:
        "salt-transfer trim-plm --no-progress --threads {threads} --model {input.model} --text {input.text} "
        "{params.flags} --out {output.model} > {log} 2>&1"
