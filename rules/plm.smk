# Stand-in target-language PLMs (config plms.*.source: standin): trained on the language's
# training split because no such PLM weights install offline. Hub PLMs come from fetch_model.


rule train_standin_plm:
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
        "salt-transfer train-plm --no-progress --threads {threads} {params.flags} --corpus {input.corpus} "
        "--out {output.model} > {log} 2>&1"
