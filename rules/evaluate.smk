# Evaluation of every model before (init) and after (cpt) continual pretraining, and of each
# untouched source LLM as a reference. One job per model writes one JSON per task; with analyses
# on, the transferred models' jobs also write alignment.json (Conneau, Wu et al. 2020). At init,
# evaluate.init_tasks may name a subset (the demo scores only the target text there).


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


rule evaluate_init:
    input:
        unpack(eval_inputs_for("init")),
        model="results/init/{llm}/{plm}/{method}/model",
    output:
        expand(
            "results/eval/init/{{llm}}/{{plm}}/{{method}}/{task}.json",
            task=INIT_EVAL_TASKS,
        ),
    log:
        "logs/eval/init/{llm}/{plm}/{method}.log",
    benchmark:
        "benchmarks/eval/init/{llm}/{plm}/{method}.tsv"
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=eval_flags_for("init"),
        out_dir=parent_of_first,
    shell:
        "salt-transfer evaluate --no-progress --threads {threads} --model {input.model} {params.flags} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule evaluate_cpt:
    input:
        unpack(eval_inputs_for("cpt")),
        model="results/cpt/{llm}/{plm}/{method}/model",
    output:
        expand(
            "results/eval/cpt/{{llm}}/{{plm}}/{{method}}/{task}.json",
            task=CPT_EVAL_TASKS,
        ),
    log:
        "logs/eval/cpt/{llm}/{plm}/{method}.log",
    benchmark:
        "benchmarks/eval/cpt/{llm}/{plm}/{method}.tsv"
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=eval_flags_for("cpt"),
        out_dir=parent_of_first,
    shell:
        "salt-transfer evaluate --no-progress --threads {threads} --model {input.model} {params.flags} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule evaluate_source:
    input:
        unpack(eval_inputs_for("source")),
        model=llm_dir,
    output:
        expand("results/eval/source/{{llm}}/{{lang}}/{task}.json", task=EVAL_TASKS),
    log:
        "logs/eval/source/{llm}/{lang}.log",
    conda:
        "../envs/salt-transfer.yaml"
    threads: 1
    params:
        flags=eval_flags_for("source"),
        out_dir=parent_of_first,
    shell:
        "salt-transfer evaluate --no-progress --threads {threads} --model {input.model} {params.flags} "
        "--out-dir {params.out_dir} > {log} 2>&1"
