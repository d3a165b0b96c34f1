# Continual pretraining (paper Step 5). Checkpoints go to scratch/ (not an output, so Snakemake does
# not delete them before a rerun): a failed, killed or pre-empted job resumes where it stopped.


rule pretrain:
    input:
        model="results/init/{llm}/{plm}/{method}/model",
        train=plm_train_text,
    output:
        model=directory("results/cpt/{llm}/{plm}/{method}/model"),
        log_csv="results/cpt/{llm}/{plm}/{method}/train_log.csv",
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
        "salt-transfer train --no-progress --threads {threads} --model {input.model} --train-file {input.train} "
        "--scratch-dir {params.scratch} {params.flags} --output-dir {output.model} --log-csv {output.log_csv} "
        "> {log} 2>&1"
