# Helpers for the whole workflow: config validation, the grid, wildcard constraints, input functions.
# No rule lives here; rules/*.smk only declare inputs/outputs and call `salt-transfer`.
#
# What the suite offers (methods, their inputs and options; the demo's task names) and every option
# default come from the package itself (`salt_transfer.catalog`, `salt_transfer.settings`: light
# modules without torch), so nothing here repeats them.

import hashlib
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

# The package next to this workflow, also when Snakemake runs from an environment without it.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from salt_transfer.catalog import DEMO_TASKS, method_entries  # noqa: E402
from salt_transfer.errors import InputError  # noqa: E402
from salt_transfer.mlqa import is_mlqa_task, pairs_for as mlqa_pairs_for  # noqa: E402
from salt_transfer.options import to_flags  # noqa: E402
from salt_transfer.settings import (  # noqa: E402
    FastTextOptions,
    StandinOptions,
    TrainArguments,
    TrimOptions,
)


def _schema_errors(data):
    """Schema violations as short lines: the key, the reason and the allowed values or keys (the
    schema itself is not printed: it runs to hundreds of lines)."""
    import jsonschema
    import yaml

    with open(os.path.join(workflow.basedir, "config", "schema.yaml")) as f:
        schema = yaml.safe_load(f)
    lines = []
    for err in sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(data),
        key=lambda e: [str(p) for p in e.absolute_path],
    ):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        allowed = ""
        if "enum" in err.schema:
            allowed = f"; allowed: {', '.join(map(str, err.schema['enum']))}"
        elif err.validator == "additionalProperties" and "properties" in err.schema:
            allowed = f"; allowed keys: {', '.join(err.schema['properties'])}"
        lines.append(f"{where}: {err.message}{allowed}")
    return lines


def _duplicate_keys(path):
    """Keys written twice in one mapping of a YAML file (PyYAML keeps the last one silently)."""
    import yaml

    found = []

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                found.append(
                    f"{path}:{key_node.start_mark.line + 1}: key {key!r} appears twice"
                )
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    with open(path, encoding="utf-8") as f:
        yaml.load(f, Loader=Strict)
    return found


_DUPLICATES = [
    d for f in workflow.configfiles if os.path.isfile(f) for d in _duplicate_keys(f)
]
if _DUPLICATES:
    raise ValueError(
        "invalid config (a key written twice):\n  " + "\n  ".join(_DUPLICATES)
    )
_SCHEMA_ERRORS = _schema_errors(config)
if _SCHEMA_ERRORS:
    _details = "\n  ".join(_SCHEMA_ERRORS[:8])
    raise ValueError(f"invalid config (config/schema.yaml):\n  {_details}")
validate(config, schema="../config/schema.yaml")  # fills in the schema's defaults

LLMS = list(config["llms"])
PLMS = list(config["plms"])
STANDIN_PLMS = [p for p in PLMS if config["plms"][p]["source"] == "standin"]
HUB_PLMS = [p for p in PLMS if p not in STANDIN_PLMS]
TRIMMED_PLMS = [p for p in HUB_PLMS if config["plms"][p]["trim"]]
ENGLISH = config.get("english_corpus")
DEMO_TASKS_ON = list(DEMO_TASKS) if config["evaluate"]["demo_tasks"] else []
EVAL_TASKS = [
    "bpb_target",
    *(["bpb_english"] if ENGLISH else []),
    *DEMO_TASKS_ON,
    *config["evaluate"]["lm_eval_tasks"],
]
ANALYSIS = config["analysis"]["enabled"]
# Transferred models also get the alignment analyses, as one more task of their evaluate job (one
# model load per model); the untouched source LLM gets EVAL_TASKS only.
CELL_EVAL_TASKS = [*EVAL_TASKS, *(["alignment"] if ANALYSIS else [])]


# evaluate.init_tasks / cpt_tasks may restrict the tasks of a stage (null: all of them).
def _stage_tasks(key):
    chosen = config["evaluate"].get(key)
    return [t for t in CELL_EVAL_TASKS if chosen is None or t in chosen]


INIT_EVAL_TASKS = _stage_tasks("init_tasks")
CPT_EVAL_TASKS = _stage_tasks("cpt_tasks")
PLM_LANGS = sorted({spec["language"] for spec in config["plms"].values()})


def _config_errors():
    """Cross-key checks the schema cannot express; each message names the key to fix."""
    errors = []
    try:
        entries = method_entries(config["methods"])
    except InputError as exc:
        errors.append(str(exc))
        entries = {}
    for plm, spec in config["plms"].items():
        if spec["language"] not in config["corpora"]:
            errors.append(
                f"plms.{plm}.language {spec['language']!r} is not a key of corpora"
            )
        if spec["source"].startswith("e5s1:") and not spec.get("tokenizer"):
            errors.append(
                f"plms.{plm}.tokenizer is needed by an e5s1: source (the model's tokenizer.json)"
            )
        if spec.get("tokenizer") and not spec["source"].startswith("e5s1:"):
            errors.append(f"plms.{plm}.tokenizer is only used with e5s1: sources")
        unknown = sorted(set(spec.get("methods") or []) - set(entries))
        if entries and unknown:
            errors.append(
                f"plms.{plm}.methods: {unknown} are not cells of `methods` ({sorted(entries)})"
            )
        if spec["trim"] and spec["source"] == "standin":
            errors.append(
                f"plms.{plm}.trim: a stand-in PLM is trained on the target text already"
            )
    if ENGLISH and ENGLISH not in config["corpora"]:
        errors.append(f"english_corpus {ENGLISH!r} is not a key of corpora")
    for lang, corpus in config["corpora"].items():
        source = corpus["source"]
        if source.startswith("file:") and not os.path.isfile(source[len("file:") :]):
            errors.append(
                f"corpora.{lang}.source: no such file {source[len('file:'):]!r}"
            )
    for lang in [code for code in PLM_LANGS if code in config["corpora"]]:
        corpus = config["corpora"][lang]
        if (DEMO_TASKS_ON or ANALYSIS) and not corpus.get("parallel_english"):
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
    lm_eval_tasks = config["evaluate"]["lm_eval_tasks"]
    if lm_eval_tasks:
        from salt_transfer.lmeval_names import known_task_names

        known = known_task_names(cache_dir=".snakemake/salt-transfer")
        for name, task in lm_eval_tasks.items():
            for lang in PLM_LANGS:
                full = task.format(lang=lang)
                if full.startswith("salt_mlqa_"):
                    if tuple(full.split("_")[2:]) not in mlqa_pairs_for(lang):
                        errors.append(
                            f"evaluate.lm_eval_tasks.{name}: {full!r} is not an MLQA pair of {lang!r} "
                            "(salt_mlqa_{lang}_{lang}, salt_mlqa_{lang}_en or salt_mlqa_en_{lang})"
                        )
                    continue
                if known is not None and full not in known:
                    errors.append(
                        f"evaluate.lm_eval_tasks.{name}: {full!r} is not a task of the installed lm-evaluation-harness"
                    )
    for key in ("init_tasks", "cpt_tasks"):
        unknown = sorted(set(config["evaluate"].get(key) or []) - set(CELL_EVAL_TASKS))
        if unknown:
            errors.append(
                f"evaluate.{key}: unknown task(s) {unknown}; the tasks of this config: {CELL_EVAL_TASKS}"
            )
    for section, cls in (
        ("standin_plm", StandinOptions),
        ("aux", FastTextOptions),
        ("trim", TrimOptions),
    ):
        try:
            to_flags(cls, _options(section))
        except InputError as exc:
            errors.append(f"{section}: {exc}")
    return errors, entries


def _options(section):
    """A config section without the keys that are not options of its command."""
    skip = {
        "aux": {"pretrained", "fasttext_url", "fasttext_sha256"},
        "pretrain": {"heldout"},
    }.get(section, set())
    return {k: v for k, v in config[section].items() if k not in skip}


_CONFIG_ERRORS, METHOD_ENTRIES = _config_errors()
if _CONFIG_ERRORS:
    _details = "\n  ".join(_CONFIG_ERRORS)
    raise ValueError(f"invalid config:\n  {_details}")
METHODS = list(METHOD_ENTRIES)

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
    """Hub PLMs are fetched to data/models/; stand-ins and trimmed PLMs are derived artifacts under
    results/plm/."""
    if plm in STANDIN_PLMS or plm in TRIMMED_PLMS:
        return f"results/plm/{plm}/model"
    return f"data/models/{plm}"


def plm_dir(wildcards):
    return plm_dir_of(wildcards.plm)


def fetched_plm_dir(wildcards):
    return f"data/models/{wildcards.plm}"


def plm_language(wildcards):
    return config["plms"][wildcards.plm]["language"]


def corpus_split(lang, split):
    return f"data/corpora/{lang}/{split}.txt"


def plm_train_text(wildcards):
    return corpus_split(plm_language(wildcards), "train")


def plm_valid_text(wildcards):
    return corpus_split(plm_language(wildcards), "valid")


def aux_model_of(plm):
    lang = config["plms"][plm]["language"]
    pretrained = config["aux"]["pretrained"].get(lang)
    if pretrained == "cc":
        return f"data/fasttext/cc.{lang}.300.bin"
    return pretrained if pretrained else f"results/fasttext/{lang}/{plm}/fasttext.bin"


def model_spec(wildcards):
    return config["llms"].get(wildcards.model) or config["plms"].get(wildcards.model)


def model_source(wildcards):
    return model_spec(wildcards)["source"]


def fetch_flags(wildcards):
    tokenizer = model_spec(wildcards).get("tokenizer")
    return f"--tokenizer {tokenizer}" if tokenizer else ""


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
    arch = config["plms"][wildcards.plm]["architecture"]
    options = {**_options("standin_plm"), "seed": config["seed"]}
    return f"--arch {arch} {to_flags(StandinOptions, options)}"


def trim_flags(wildcards):
    return to_flags(TrimOptions, _options("trim"))


def overlap_flags(wildcards):
    return "--fuzzy" if config["overlap"]["fuzzy"] else ""


def fasttext_fetch_flags(wildcards):
    """--url (the mirror template) and --sha256 (when the config pins one) of a cc.<lang> download."""
    flags = [f"--url {shlex.quote(config['aux']['fasttext_url'])}"]
    digest = config["aux"]["fasttext_sha256"].get(wildcards.lang)
    if digest:
        flags.append(f"--sha256 {digest}")
    return " ".join(flags)


def aux_flags(wildcards):
    return to_flags(FastTextOptions, _options("aux"))


def fit_inputs(wildcards):
    needs = METHOD_ENTRIES[wildcards.method].info.needs
    inputs = {
        "source": llm_dir(wildcards),
        "overlap": f"results/overlap/{wildcards.llm}/{wildcards.plm}/overlap.parquet",
        "tokenizer": plm_dir(wildcards),
    }
    if "aux" in needs:
        inputs["aux"] = aux_model_of(wildcards.plm)
    return inputs


def fit_flags(wildcards, input):
    entry = METHOD_ENTRIES[wildcards.method]
    flags = [
        f"--method {entry.method}",
        f"--name {entry.name}",
        f"--seed {config['seed']}",
        f"--dtype {config['fit']['dtype']}",
        f"--target-tokenizer {input.tokenizer}",
    ]
    if "plm" in entry.info.needs:
        flags.append(f"--plm {input.tokenizer}")
    if "aux" in entry.info.needs:
        flags.append(f"--aux {input.aux}")
        if config["aux"]["pretrained"].get(plm_language(wildcards)):
            flags.append("--aux-lookup word")
    for key, value in sorted(entry.options.items()):
        flags.append(f"--option {key}={value}")
    return " ".join(flags)


def card_flags(wildcards):
    """Model-card header values of a cell: the source LLM's hub id and license, the language."""
    spec = config["llms"][wildcards.llm]
    base = spec.get("base_model") or (
        spec["source"][3:].split("@")[0] if spec["source"].startswith("hf:") else ""
    )
    flags = [f"--language {plm_language(wildcards)}"]
    if base:
        flags.append(f"--base-model {base}")
    if spec.get("license"):
        flags.append(f"--license {json.dumps(spec['license'])}")
    return " ".join(flags)


def transplant_flags(wildcards):
    return f"--save-dtype {config['transplant']['save_dtype']} {card_flags(wildcards)}"


def pretrain_inputs(wildcards):
    inputs = {
        "model": f"results/init/{wildcards.llm}/{wildcards.plm}/{wildcards.method}/model",
        "train": plm_train_text(wildcards),
    }
    if config["pretrain"]["heldout"]:
        inputs["valid"] = plm_valid_text(wildcards)
    return inputs


def pretrain_flags(wildcards, input):
    options = {**_options("pretrain"), "seed": config["seed"]}
    flags = to_flags(TrainArguments, options)
    if config["pretrain"]["heldout"]:
        flags += f" --eval-file {input.valid}"
    return f"{flags} {card_flags(wildcards)}"


def _eval_lang(wildcards):
    return getattr(wildcards, "lang", None) or plm_language(wildcards)


def mlqa_result_names(lang):
    """Result names of evaluate.lm_eval_tasks that are MLQA tasks this workflow builds for `lang`
    (salt_mlqa_X_Y: facebook/mlqa is a loading script that datasets 5 does not run; salt_transfer/mlqa.py).
    """
    return [
        name
        for name, task in config["evaluate"]["lm_eval_tasks"].items()
        if is_mlqa_task(task.format(lang=lang))
    ]


def mlqa_flags(wildcards):
    ev = config["evaluate"]
    flags = [f"--url {shlex.quote(ev['mlqa_url'])}"]
    if ev["mlqa_sha256"]:
        flags.append(f"--sha256 {ev['mlqa_sha256']}")
    return " ".join(flags)


def demo_task_files(lang):
    return [
        f"results/tasks/{lang}/{name.format(lang=lang)}.yaml"
        for name in DEMO_TASKS.values()
    ]


STAGE_TASKS = {"init": INIT_EVAL_TASKS, "cpt": CPT_EVAL_TASKS, "source": EVAL_TASKS}


def eval_inputs_for(stage):
    """Input function of the evaluation of `stage` (init, cpt or source); the texts of its
    bits-per-byte tasks, its lm-eval task YAML, and for transferred models with analyses on, what
    the alignment task compares them with."""
    tasks = STAGE_TASKS[stage]

    def inputs(wildcards):
        lang = _eval_lang(wildcards)
        found = {}
        if "bpb_target" in tasks:
            found["bpb_target"] = corpus_split(lang, "test")
        if "bpb_english" in tasks:
            found["bpb_english"] = corpus_split(ENGLISH, "test")
        if any(t in tasks for t in DEMO_TASKS_ON):
            found["demo_tasks"] = demo_task_files(lang)
        if any(t in tasks for t in mlqa_result_names(lang)):
            found["mlqa"] = f"data/mlqa/{lang}"
        if "alignment" in tasks:
            found.update(
                source=llm_dir(wildcards),
                parallel=f"data/corpora/{lang}/parallel.test.tsv",
                lexicon=lexicon_path(lang),
                states=f"results/analysis/source/{wildcards.llm}/{lang}/states.safetensors",
            )
        return found

    return inputs


def eval_labels(wildcards, stage):
    """The cell labels each evaluation JSON records (the report reads them, not the path)."""
    if stage == "source":
        labels = dict(stage="source", llm=wildcards.llm, language=wildcards.lang)
    else:
        labels = dict(
            stage=stage, llm=wildcards.llm, plm=wildcards.plm, method=wildcards.method
        )
    return " ".join(f"--label {k}={v}" for k, v in labels.items())


def eval_flags_for(stage):
    """Params function of the evaluation of `stage`; the tasks and settings as flags."""
    tasks = STAGE_TASKS[stage]

    def flags_of(wildcards, input):
        ev = config["evaluate"]
        lang = _eval_lang(wildcards)
        flags = [eval_labels(wildcards, stage)]
        flags += [
            f"--task {name}=bpb:{input[name]}"
            for name in ("bpb_target", "bpb_english")
            if name in tasks
        ]
        harness = {
            **{k: DEMO_TASKS[k] for k in DEMO_TASKS_ON},
            **ev["lm_eval_tasks"],
        }
        flags += [
            f"--task {name}=lm-eval:{task.format(lang=lang)}"
            for name, task in harness.items()
            if name in tasks
        ]
        if any(t in tasks for t in DEMO_TASKS_ON):
            flags.append(f"--include-path results/tasks/{lang}")
        if "mlqa" in input.keys():
            flags.append(f"--include-path {input.mlqa}")
        flags += [
            f"--max-bytes {ev['max_bytes']}",
            f"--seq-len {ev['seq_len']}",
            f"--batch-size {ev['batch_size']}",
            f"--precision {ev['precision']}",
            f"--seed {config['seed']}",
        ]
        if ev["lm_eval_limit"]:
            flags.append(f"--lm-eval-limit {ev['lm_eval_limit']}")
        if ev["num_fewshot"] is not None:
            flags.append(f"--num-fewshot {ev['num_fewshot']}")
        if "alignment" in tasks:
            flags += [
                "--task alignment=alignment",
                f"--source-model {input.source} --parallel {input.parallel}",
                f"--lexicon {input.lexicon} --source-states {input.states}",
                source_states_flags(wildcards),
            ]
        return " ".join(flags)

    return flags_of


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


def methods_of(plm):
    """The cells run with a PLM: plms.<plm>.methods, in the order of `methods` (default: all)."""
    chosen = config["plms"][plm].get("methods")
    return [m for m in METHODS if chosen is None or m in chosen]


def cells():
    return [
        (llm, plm, method) for llm in LLMS for plm in PLMS for method in methods_of(plm)
    ]


def all_eval_jsons():
    files = [
        f"results/eval/{stage}/{llm}/{plm}/{method}/{task}.json"
        for llm, plm, method in cells()
        for stage in ("init", "cpt")
        for task in STAGE_TASKS[stage]
    ]
    if config["evaluate"]["source_baseline"]:
        files += [
            f"results/eval/source/{llm}/{lang}/{task}.json"
            for llm in LLMS
            for lang in PLM_LANGS
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
            p: {
                "language": s["language"],
                "architecture": s["architecture"],
                "source": s["source"],
                "trim": s["trim"],
            }
            for p, s in config["plms"].items()
        },
        "methods": METHODS,
        "method_of": {name: e.method for name, e in METHOD_ENTRIES.items()},
        "llms": LLMS,
    }
    return f"--grid '{_json_arg(grid)}'"


def audit_inputs(wildcards):
    """The table, and dvc.lock when DVC records this workflow (a changed lock reruns the audit)."""
    inputs = {"table": "results/report/results.csv"}
    if os.path.exists("dvc.lock"):
        inputs["lock"] = "dvc.lock"
    return inputs


def audit_flags(wildcards, input):
    return f"--dvc-lock {input.lock}" if "lock" in input.keys() else "--no-dvc-lock"
