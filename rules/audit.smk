# `snakemake audit`: re-hash everything results.csv names, against the rows, the *.meta.json chains
# and dvc.lock (when there is one). A mismatch fails the job; the table of mismatches is in the log.
rule audit:
    input:
        unpack(audit_inputs),
    output:
        manifest="results/audit/manifest.tsv",
    log:
        "logs/audit/audit.log",
    conda:
        "../envs/salt-transfer.yaml"
    params:
        flags=audit_flags,
    shell:
        "salt-transfer audit {input.table} {params.flags} --out {output.manifest} > {log} 2>&1"
