# The report: results.csv (one row per llm x plm x method x stage x task x metric, with hashes),
# paper-shaped tables, the paper's claims checked, metrics.json (for `dvc metrics show`) and plots.
# The training logs are inputs so that the report waits for them; it finds each one through the
# sidecar of the model it belongs to.


rule report:
    input:
        evals=all_eval_jsons(),
        logs=all_train_logs(),
    output:
        csv=report(
            "results/report/results.csv",
            caption="../report/results.rst",
            category="Evaluation",
        ),
        claims=report(
            "results/report/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        tables="results/report/tables.md",
        tables_html=report(
            "results/report/tables.html",
            caption="../report/tables.rst",
            category="Evaluation",
        ),
        metrics="results/report/metrics.json",
        plots=report(
            directory("results/report/plots"),
            patterns=["{name}.png"],
            caption="../report/plots.rst",
            category="Plots",
        ),
    log:
        "logs/report/report.log",
    conda:
        "../envs/salt-transfer.yaml"
    params:
        flags=report_flags,
        out_dir=parent_of_first,
    shell:
        "salt-transfer report --no-progress {params.flags} --out-dir {params.out_dir} {input.evals} > {log} 2>&1"
