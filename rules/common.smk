# Helpers for the whole workflow: config validation, the grid, wildcard constraints, input functions.
# No rule lives here; rules/*.smk only declare inputs/outputs and call `salt-transfer`.

import hashlib
import json
import os
import re
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../config/schema.yaml")

LLMS = list(config["llms"])
PLMS = list(config["plms"])
METHODS = list(config["methods"])
STANDIN_PLMS = [p for p in PLMS if config["plms"][p]["source"] == "standin"]
HUB_PLMS = [p for p in PLMS if p not in STANDIN_PLMS]
ENGLISH = config.get("english_corpus")
# The demo's multiple-choice tasks (built by build_tasks): result name -> lm-eval task name.
DEMO_TASK_NAMES = {
    "continuation": "salt_continuation_{lang}",
    "xling_en2tgt": "salt_xling_en2{lang}",
    "xling_tgt2en": "salt_xling_{lang}2en",
}
DEMO_TASKS = list(DEMO_TASK_NAMES) if config["evaluate"]["demo_tasks"] else []
EVAL_TASKS = [
    "bpb_target",
    *(["bpb_english"] if ENGLISH else []),
    *DEMO_TASKS,
    *config["evaluate"]["lm_eval_tasks"],
]
ANALYSIS = config["analysis"]["enabled"]
# Transferred models also get the alignment analyses, as one more task of their evaluate job (one
# model load per model); the untouched source LLM gets EVAL_TASKS only.
CELL_EVAL_TASKS = [*EVAL_TASKS, *(["alignment"] if ANALYSIS else [])]
PLM_LANGS = sorted({spec["language"] for spec in config["plms"].values()})

# What each method reads besides the source LLM (kept in step with the registry by a unit test).
METHOD_NEEDS = {
    "salt": {"aux", "plm"},
    "focus": {"aux"},
    "ofa": {"aux"},
    "multivariate": set(),
    "random": set(),
    "mean": set(),
    "procrustes": {"plm"},
}


def _config_errors():
    """Cross-key checks the schema cannot express; each message names the key to fix."""
    errors = []
    for plm, spec in config["plms"].items():
        if spec["language"] not in config["corpora"]:
            errors.append(
                f"plms.{plm}.language {spec['language']!r} is not a key of corpora"
            )
    if ENGLISH and ENGLISH not in config["corpora"]:
        errors.append(f"english_corpus {ENGLISH!r} is not a key of corpora")
    for lang in [code for code in PLM_LANGS if code in config["corpora"]]:
        corpus = config["corpora"][lang]
        if (DEMO_TASKS or ANALYSIS) and not corpus.get("parallel_english"):
            errors.append(
                f"corpora.{lang}.parallel_english is needed by evaluate.demo_tasks / analysis"
            )
        if ANALYSIS and not corpus.get("lexicon"):
            errors.append(f"corpora.{lang}.lexicon is needed by analysis.enabled")
        if corpus.get("lexicon") == "strongs" and not (
            corpus["source"].startswith("sword:")
            and (corpus.get("parallel_english") or "").startswith("sword:")
        ):
            errors.append(
                f"corpora.{lang}.lexicon strongs needs sword: source and parallel_english"
            )
    overlap = set(LLMS) & set(HUB_PLMS)
    if overlap:
        errors.append(
            f"names {sorted(overlap)} are both an llm and a plm; model names must be unique"
        )
    for name in LLMS + PLMS + list(config["corpora"]):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            errors.append(
                f"name {name!r}: use letters, digits, '.', '_' or '-' (it becomes a path component)"
            )
    return errors


_CONFIG_ERRORS = _config_errors()
if _CONFIG_ERRORS:
    _details = "\n  ".join(_CONFIG_ERRORS)
    raise ValueError(f"invalid config:\n  {_details}")

# sha256 of the validated config (defaults filled in). Every salt-transfer command records it in
# its *.meta.json: `--config-hash` defaults to this variable, which jobs inherit (Slurm jobs too:
# the plugin submits with --export=ALL, and each job re-reads this file anyway).
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
# Exported, not read (the envvars lint is about variables a workflow needs from the user).
os.environ.update(SALT_TRANSFER_CONFIG_HASH=CONFIG_HASH)


def _alternatives(names):
    """Regex matching exactly these names (or nothing when the list is empty)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


wildcard_constraints:
    llm=_alternatives(LLMS),
    plm=_alternatives(PLMS),
    method=_alternatives(METHODS),
    lang=_alternatives(list(config["corpora"])),
    model=_alternatives(LLMS + HUB_PLMS),
    stage="init|cpt",


# ---------------------------------------------------------------------------------------------
# Paths


def llm_dir(wildcards):
    return f"data/models/{wildcards.llm}"


def plm_dir_of(plm):
    """Hub PLMs are fetched to data/models/; stand-ins are derived artifacts under results/plm/."""
    return f"results/plm/{plm}/model" if plm in STANDIN_PLMS else f"data/models/{plm}"


def plm_dir(wildcards):
    return plm_dir_of(wildcards.plm)


def plm_language(wildcards):
    return config["plms"][wildcards.plm]["language"]


def corpus_split(lang, split):
    return f"data/corpora/{lang}/{split}.txt"


def plm_train_text(wildcards):
    return corpus_split(plm_language(wildcards), "train")


def aux_model_of(plm):
    lang = config["plms"][plm]["language"]
    pretrained = config["aux"]["pretrained"].get(lang)
    if pretrained == "cc":
        return f"data/fasttext/cc.{lang}.300.bin"
    return pretrained if pretrained else f"results/aux/{lang}/{plm}/fasttext.bin"


def model_source(wildcards):
    spec = config["llms"].get(wildcards.model) or config["plms"].get(wildcards.model)
    return spec["source"]


def parent_of_train(wildcards, output):
    return str(Path(output.train).parent)


def parent_of_first(wildcards, output):
    return str(Path(output[0]).parent)


# ---------------------------------------------------------------------------------------------
# Command-line flags built from config


def _json_arg(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def corpus_flags(wildcards):
    spec = config["corpora"][wildcards.lang]
    flags = f"--source {spec['source']} --split '{_json_arg(spec['split'])}' --seed {config['seed']}"
    if spec.get("max_docs"):
        flags += f" --max-docs {spec['max_docs']}"
    if spec.get("sentences"):
        flags += " --sentences"
    return flags


def parallel_flags(wildcards):
    spec = config["corpora"][wildcards.lang]
    return (
        f"--source {spec['source']} --english {spec['parallel_english']} "
        f"--split '{_json_arg(spec['split'])}' --seed {config['seed']}"
    )


def standin_flags(wildcards):
    opts = config["standin_plm"]
    arch = config["plms"][wildcards.plm]["architecture"]
    options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(opts.items()))
    return f"--arch {arch} --seed {config['seed']} {options}"


def overlap_flags(wildcards):
    return "--fuzzy" if config["overlap"]["fuzzy"] else ""


def aux_flags(wildcards):
    aux = config["aux"]
    return f"--dim {aux['dim']} --epochs {aux['epochs']} --min-count {aux['min_count']} --bucket {aux['bucket']}"


def fit_inputs(wildcards):
    needs = METHOD_NEEDS[wildcards.method]
    inputs = {
        "source": llm_dir(wildcards),
        "overlap": f"results/overlap/{wildcards.llm}/{wildcards.plm}/overlap.parquet",
        "tokenizer": plm_dir(wildcards),
    }
    if "aux" in needs:
        inputs["aux"] = aux_model_of(wildcards.plm)
    return inputs


def fit_flags(wildcards, input):
    needs = METHOD_NEEDS[wildcards.method]
    flags = [
        f"--method {wildcards.method}",
        f"--seed {config['seed']}",
        f"--dtype {config['fit']['dtype']}",
        f"--target-tokenizer {input.tokenizer}",
    ]
    if "plm" in needs:
        flags.append(f"--plm {input.tokenizer}")
    if "aux" in needs:
        flags.append(f"--aux {input.aux}")
        if config["aux"]["pretrained"].get(plm_language(wildcards)):
            flags.append("--aux-lookup word")
    for key, value in sorted((config["methods"][wildcards.method] or {}).items()):
        flags.append(f"--option {key}={value}")
    return " ".join(flags)


def transplant_flags(wildcards):
    return f"--save-dtype {config['transplant']['save_dtype']}"


def pretrain_flags(wildcards):
    args = config["pretrain"]
    flags = [f"--seed {config['seed']}"]
    for key, value in sorted(args.items()):
        name = key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        else:
            flags.append(f"--{name} {value}")
    return " ".join(flags)


def _eval_lang(wildcards):
    return getattr(wildcards, "lang", None) or plm_language(wildcards)


def demo_task_files(lang):
    return [
        f"results/tasks/{lang}/{name.format(lang=lang)}.yaml"
        for name in DEMO_TASK_NAMES.values()
    ]


def _is_cell(wildcards):
    """True for evaluate (a transferred model), False for evaluate_source."""
    return hasattr(wildcards, "method")


def eval_inputs(wildcards):
    """Texts of the bits-per-byte tasks; with demo tasks their lm-eval YAML; for transferred models
    with analyses on, what the alignment task compares them with."""
    lang = _eval_lang(wildcards)
    inputs = {"bpb_target": corpus_split(lang, "test")}
    if ENGLISH:
        inputs["bpb_english"] = corpus_split(ENGLISH, "test")
    if DEMO_TASKS:
        inputs["demo_tasks"] = demo_task_files(lang)
    if ANALYSIS and _is_cell(wildcards):
        inputs.update(
            source=llm_dir(wildcards),
            parallel=f"data/corpora/{lang}/parallel.test.tsv",
            lexicon=lexicon_path(lang),
            states=f"results/analysis/source/{wildcards.llm}/{lang}/states.safetensors",
        )
    return inputs


def eval_flags(wildcards, input):
    ev = config["evaluate"]
    lang = _eval_lang(wildcards)
    flags = [
        f"--task {name}=bpb:{input[name]}"
        for name in ("bpb_target", "bpb_english")
        if name in EVAL_TASKS
    ]
    harness = {**{k: DEMO_TASK_NAMES[k] for k in DEMO_TASKS}, **ev["lm_eval_tasks"]}
    flags += [
        f"--task {name}=lm-eval:{task.format(lang=lang)}"
        for name, task in harness.items()
    ]
    if DEMO_TASKS:
        flags.append(f"--include-path results/tasks/{lang}")
    flags += [
        f"--max-bytes {ev['max_bytes']}",
        f"--seq-len {ev['seq_len']}",
        f"--batch-size {ev['batch_size']}",
        f"--seed {config['seed']}",
    ]
    if ev["lm_eval_limit"]:
        flags.append(f"--lm-eval-limit {ev['lm_eval_limit']}")
    if ev["num_fewshot"] is not None:
        flags.append(f"--num-fewshot {ev['num_fewshot']}")
    if ANALYSIS and _is_cell(wildcards):
        flags += [
            "--task alignment=alignment",
            f"--source-model {input.source} --parallel {input.parallel}",
            f"--lexicon {input.lexicon} --source-states {input.states}",
            source_states_flags(wildcards),
        ]
    return " ".join(flags)


def tasks_flags(wildcards):
    ev = config["evaluate"]
    return (
        f"--lang {wildcards.lang} --items {ev['demo_tasks']} "
        f"--max-words {ev['demo_task_max_words']} --seed {config['seed']}"
    )


# ---------------------------------------------------------------------------------------------
# Analysis


def lexicon_path(lang):
    spec = config["corpora"][lang]["lexicon"]
    return (
        spec[len("file:") :]
        if spec.startswith("file:")
        else f"data/corpora/{lang}/lexicon.tsv"
    )


def lexicon_flags(wildcards):
    corpus = config["corpora"][wildcards.lang]
    if corpus["lexicon"] == "muse":
        return f"--muse {wildcards.lang}"
    return f"--target {corpus['source']} --english {corpus['parallel_english']}"


def source_states_flags(wildcards):
    return f"--max-sentences {config['analysis']['max_sentences']}"


# ---------------------------------------------------------------------------------------------
# Targets


def cells():
    return [(llm, plm, method) for llm in LLMS for plm in PLMS for method in METHODS]


def all_eval_jsons():
    files = [
        f"results/eval/{stage}/{llm}/{plm}/{method}/{task}.json"
        for llm, plm, method in cells()
        for stage in ("init", "cpt")
        for task in CELL_EVAL_TASKS
    ]
    if config["evaluate"]["source_baseline"]:
        langs = sorted({config["plms"][p]["language"] for p in PLMS})
        files += [
            f"results/eval/source/{llm}/{lang}/{task}.json"
            for llm in LLMS
            for lang in langs
            for task in EVAL_TASKS
        ]
    return files


def all_train_logs():
    return [
        f"results/cpt/{llm}/{plm}/{method}/train_log.csv"
        for llm, plm, method in cells()
    ]


def report_flags(wildcards, input):
    grid = {
        "plms": {
            p: {"language": s["language"], "architecture": s["architecture"]}
            for p, s in config["plms"].items()
        },
        "methods": METHODS,
        "llms": LLMS,
    }
    logs = " ".join(f"--train-log {p}" for p in input.logs)
    return f"--grid '{_json_arg(grid)}' {logs}"


def audit_inputs(wildcards):
    """The table, and dvc.lock when DVC records this workflow (a changed lock reruns the audit)."""
    inputs = {"table": "results/report/results.csv"}
    if os.path.exists("dvc.lock"):
        inputs["lock"] = "dvc.lock"
    return inputs


def audit_flags(wildcards, input):
    return f"--dvc-lock {input.lock}" if "lock" in input.keys() else "--no-dvc-lock"
