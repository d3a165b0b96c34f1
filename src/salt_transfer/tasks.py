"""Offline downstream tasks for lm-evaluation-harness, built from held-out parallel text.

Usage:
    salt-transfer build-tasks --parallel data/corpora/es/parallel.test.tsv --lang es --items 40 \
        --out-dir results/tasks/es

No XNLI/HellaSwag/MLQA data installs offline (docs/offline-assets.md), so the demo builds its own
multiple-choice tasks from the test split, which no model ever trains on:

  salt_continuation_{lang}   HellaSwag-like: the first half of a target-language verse; pick its real
                             second half among four (the others are second halves of other verses)
  salt_xling_en2{lang}       an English verse; pick its target-language translation among four
  salt_xling_{lang}2en       a target-language verse; pick its English translation among four

Each is written as lm-eval task YAML (multiple_choice, acc and byte-length-normalized acc_norm,
which compares models with different tokenizers fairly) next to its JSONL data, and loaded with
lm-eval's `--include_path`. Choices are scored by log-likelihood; chance is 25%.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from .catalog import demo_task_names
from .corpora import read_parallel
from .errors import InputError
from .provenance import Meta, write_text_atomic

TASK_YAML = """\
# Built by `salt-transfer build-tasks` from {source}; data: {data}
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: label
target_delimiter: "{delimiter}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  description: "{description}"
"""


def _pick(items: list, n: int, rng: random.Random) -> list:
    return rng.sample(items, n)


def _choices(gold: str, pool: list[str], rng: random.Random) -> tuple[list[str], int]:
    distractors = rng.sample([x for x in pool if x != gold], 3)
    label = rng.randrange(4)
    return distractors[:label] + [gold] + distractors[label:], label


def build_tasks(
    parallel: str | Path,
    lang: str,
    out_dir: str | Path,
    items: int = 40,
    max_words: int = 24,
    seed: int = 0,
    config_hash: str | None = None,
) -> dict[str, int]:
    """Write the three tasks' JSONL data (with sidecars) and YAML into `out_dir`; returns items per task.

    Verses of at most `max_words` words are used (short items keep CPU evaluation cheap).
    """
    out_dir = Path(out_dir)
    pairs = [
        (t, e)
        for _, t, e in read_parallel(parallel)
        if len(t.split()) <= max_words and len(e.split()) <= max_words
    ]
    # Continuation items split a verse in two halves of at least 3 words each.
    halves = [
        (" ".join(w[: len(w) // 2]), " ".join(w[len(w) // 2 :]))
        for w in (t.split() for t, _ in pairs)
        if len(w) >= 6
    ]
    # Every task gets exactly `items` items, each with 3 distractors drawn from the other verses.
    needed = max(4, items)
    for what, have in (("pairs", len(pairs)), ("verses of 6 or more words", len(halves))):
        if have < needed:
            raise InputError(
                f"parallel text {parallel}: only {have} {what} of at most {max_words} words, "
                f"{needed} needed for {items} items per task: lower evaluate.demo_tasks or raise "
                "evaluate.demo_task_max_words"
            )
    rng = random.Random(seed)
    docs: dict[str, list[dict]] = {}

    endings = [b for _, b in halves]
    docs["continuation"] = []
    for head, tail in _pick(halves, items, rng):
        choices, label = _choices(tail, endings, rng)
        docs["continuation"].append({"context": head, "choices": choices, "label": label})

    targets, english = [t for t, _ in pairs], [e for _, e in pairs]
    docs["xling_en2tgt"], docs["xling_tgt2en"] = [], []
    for tgt, eng in _pick(pairs, items, rng):
        choices, label = _choices(tgt, targets, rng)
        docs["xling_en2tgt"].append(
            {"context": f"English: {eng}\nTranslation:", "choices": choices, "label": label}
        )
        choices, label = _choices(eng, english, rng)
        docs["xling_tgt2en"].append({"context": f"{tgt}\nEnglish:", "choices": choices, "label": label})

    descriptions = {
        "continuation": "pick the real second half of a held-out verse among four",
        "xling_en2tgt": "pick the translation of an English verse among four target-language verses",
        "xling_tgt2en": "pick the English translation of a target-language verse among four",
    }
    counts = {}
    for key, name in demo_task_names(lang).items():
        data = out_dir / f"{name}.jsonl"
        meta = Meta(
            "build-tasks",
            inputs={"parallel": parallel},
            params={"lang": lang, "items": items, "max_words": max_words},
            seed=seed,
            config_hash=config_hash,
        )
        write_text_atomic(data, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs[key]), meta)
        write_text_atomic(
            out_dir / f"{name}.yaml",
            TASK_YAML.format(
                name=name,
                data=data.as_posix(),
                source=Path(parallel).as_posix(),
                delimiter=" ",
                description=descriptions[key],
            ),
        )
        counts[name] = len(docs[key])
    return counts
