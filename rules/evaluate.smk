# Evaluation of every model before (init) and after (cpt) continual pretraining, and of each
# untouched source LLM as a reference. One job per model writes one JSON per task; with analyses
# on, the transferred models' jobs also write alignment.json (Conneau, Wu et al. 2020).


rule build_tasks:
    input:
        parallel="data/corpora/{lang}/parallel.test.tsv",
    output:
        expand(
            "results/tasks/{{lang}}/{name}.{ext}",
            name=list(DEMO_TASKS.values()),
            ext=["yaml", "jsonl"],
        ),
    log:
        "logs/tasks/{lang}.log",
    conda:
        "../envs/salt-transfer.yaml"
    params:
        flags=tasks_flags,
        out_dir=parent_of_first,
    shell:
        "salt-transfer build-tasks --no-progress --parallel {input.parallel} {params.flags} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule evaluate:
    input:
        unpack(eval_inputs),
        model="results/{stage}/{llm}/{plm}/{method}/model",
    output:
        expand(
            "results/eval/{{stage}}/{{llm}}/{{plm}}/{{method}}/{task}.json",
            task=CELL_EVAL_TASKS,
        ),
    log:
        "logs/eval/{stage}/{llm}/{plm}/{method}.log",
    benchmark:
        "benchmarks/eval/{stage}/{llm}/{plm}/{method}.tsv"
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=eval_flags,
        out_dir=parent_of_first,
    shell:
        "salt-transfer evaluate --no-progress --threads {threads} --model {input.model} {params.flags} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule evaluate_source:
    input:
        unpack(eval_inputs),
        model=llm_dir,
    output:
        expand("results/eval/source/{{llm}}/{{lang}}/{task}.json", task=EVAL_TASKS),
    log:
        "logs/eval/source/{llm}/{lang}.log",
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=eval_flags,
        out_dir=parent_of_first,
    shell:
        "salt-transfer evaluate --no-progress --threads {threads} --model {input.model} {params.flags} "
        "--out-dir {params.out_dir} > {log} 2>&1"
