# salt-transfer: cross-lingual vocabulary transfer of LLMs (SALT, Lee et al., Findings ACL 2025).
#
#   snakemake                                       offline demo (config/demo.yaml), local
#   snakemake --configfile config/paper.yaml -n     the paper's grid, dry run
#   snakemake --profile profiles/slurm --configfile config/paper.yaml
#
# Paths encode the experiment; logs/ and benchmarks/ mirror results/:
#   data/models/{model}/                                 fetched LLMs and PLMs (+ manifest.json)
#   data/corpora/{lang}/{train,valid,test}.txt           corpora, split by whole documents
#   results/plm/{plm}/model/                             stand-in PLMs and trimmed PLMs (+ trim.json)
#   results/overlap/{llm}/{plm}/overlap.parquet          shared tokens (+ stats.json)
#   results/fasttext/{lang}/{plm}/fasttext.bin           token-level fastText
#   results/fit/{llm}/{plm}/{method}/embeddings.safetensors   fitted rows (+ fit.json)
#   results/init/{llm}/{plm}/{method}/model/             transferred model before training
#   results/cpt/{llm}/{plm}/{method}/model/              after continual pretraining (+ train_log.csv,
#                                                        training loss and held-out bits per byte)
#   results/eval/{init,cpt}/{llm}/{plm}/{method}/{task}.json  (alignment.json: word/sentence
#                                                        retrieval and CKA per layer)
#   results/eval/source/{llm}/{lang}/{task}.json         the untouched source LLM, for reference
#   results/tasks/{lang}/                                  the demo's lm-eval tasks (YAML + JSONL)
#   results/analysis/source/{llm}/{lang}/states.safetensors  the source LLM's English states
#   results/report/{results.csv,claims.csv,tables.md,metrics.json,plots/}
#   results/audit/manifest.tsv                           `snakemake audit`: every check, by hash


import os

from snakemake.utils import min_version

min_version("9.0")


# The demo is the default; with --configfile the given file *replaces* it (Snakemake would
# otherwise merge the two, and a paper run would carry the demo's models along).
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "demo.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/fetch.smk"
include: "rules/plm.smk"
include: "rules/overlap.smk"
include: "rules/fit.smk"
include: "rules/pretrain.smk"
include: "rules/evaluate.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"
include: "rules/audit.smk"


rule all:
    default_target: True
    input:
        "results/report/results.csv",
        "results/report/claims.csv",
        "results/report/tables.md",
        "results/report/tables.html",
        "results/report/plots",
