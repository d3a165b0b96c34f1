# Continual pretraining (paper Step 5). Checkpoints go to scratch/ (not an output, so Snakemake does
# not delete them before a rerun): a failed, killed or pre-empted job resumes where it stopped. With
# pretrain.heldout on, the valid split is scored during training (the convergence figure's points).


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        model=directory("results/cpt/{llm}/{plm}/{method}/model"),
        log_csv=report(
            "results/cpt/{llm}/{plm}/{method}/train_log.csv",
            caption="../report/train_log.rst",
            category="Continual pretraining",
            subcategory="{plm}",
            labels={"source LLM": "{llm}", "method": "{method}"},
        ),
    log:
        "logs/cpt/{llm}/{plm}/{method}.log",
    benchmark:
        "benchmarks/cpt/{llm}/{plm}/{method}.tsv"
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        flags=pretrain_flags,
        scratch="scratch/cpt/{llm}/{plm}/{method}",
    shell:
        "salt-transfer pretrain --no-progress --threads {threads} --model {input.model} --train-file {input.train} "
        "--scratch-dir {params.scratch} {params.flags} --output-dir {output.model} --log-csv {output.log_csv} "
        "> {log} 2>&1"
