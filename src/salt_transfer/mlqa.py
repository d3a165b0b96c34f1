"""MLQA (Lewis et al., ACL 2020) for lm-evaluation-harness without a dataset loading script.

lm-eval 0.4.13's MLQA tasks (`mlqa_X_Y`: context language X, question language Y) read the hub dataset
`facebook/mlqa`, which is a loading script (`mlqa.py`, no data files, no parquet export): datasets >= 4.0
(this project pins 5.x) refuses to run scripts ("Dataset scripts are no longer supported"), so those
tasks cannot load (docs/paper-grid-data.md). This module takes the data from where that script took it,
the official release `MLQA_V1.zip`, converts the context/question pairs a language needs to JSON Lines
with the hub dataset's fields (id, title, context, question, answers{answer_start, text}), and writes
task YAMLs `salt_mlqa_X_Y` that `include` lm-eval's own `mlqa_X_Y.yaml` (its prompt, generation
settings and MLQA's official EM/F1 in lm-eval's utils) and change only where the data comes from.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

from .errors import InputError
from .provenance import Meta, atomic_dir, check_output, sha256_file

LOG = logging.getLogger(__name__)

MLQA_URL = "https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip"
LANGUAGES = ("en", "de", "es", "ar", "hi", "vi", "zh")
TASK = "salt_mlqa_{context}_{question}"
SPLITS = {"test": "test", "validation": "dev"}  # lm-eval split name -> MLQA file prefix


def task_name(context: str, question: str) -> str:
    return TASK.format(context=context, question=question)


def is_mlqa_task(name: str) -> bool:
    """Whether an lm-eval task name is one this module provides (the workflow builds it, not the hub)."""
    parts = name.split("_")
    return (
        name.startswith("salt_mlqa_") and len(parts) == 4 and parts[2] in LANGUAGES and parts[3] in LANGUAGES
    )


def pairs_for(lang: str) -> list[tuple[str, str]]:
    """(context, question) languages a target language needs: in-language and both cross-lingual pairs."""
    return [(lang, lang)] if lang == "en" else [(lang, lang), (lang, "en"), ("en", lang)]


def squad_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """SQuAD-format JSON -> one row per question, with the hub dataset's fields."""
    rows = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                rows.append(
                    {
                        "id": qa["id"],
                        "title": article.get("title", ""),
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": {
                            "answer_start": [a["answer_start"] for a in qa["answers"]],
                            "text": [a["text"] for a in qa["answers"]],
                        },
                    }
                )
    return rows


def lm_eval_task_yaml(context: str, question: str) -> Path:
    """lm-eval's own YAML of an MLQA pair (the one ours includes)."""
    import lm_eval

    path = Path(lm_eval.__file__).parent / "tasks" / "mlqa" / f"mlqa_{context}_{question}.yaml"
    if not path.is_file():
        raise InputError(f"MLQA pair {context}-{question}: lm-evaluation-harness has no {path.name}")
    return path


def fetch_mlqa(
    lang: str,
    out_dir: str | Path,
    url: str = MLQA_URL,
    sha256: str | None = None,
    progress: bool = True,
    config_hash: str | None = None,
) -> dict[str, int]:
    """Download MLQA_V1.zip (resumable: `<out_dir>.zip.part` survives a failed run), write the JSONL
    splits and task YAMLs of `lang`'s pairs into `out_dir` (replaced as a whole, with its sidecar);
    returns the number of questions per task and split."""
    from .downloads import download_resuming

    if lang not in LANGUAGES:
        raise InputError(f"MLQA language {lang!r}: MLQA has {', '.join(LANGUAGES)}")
    out_dir = check_output(out_dir, directory=True)
    pairs = pairs_for(lang)
    yamls = {pair: lm_eval_task_yaml(*pair) for pair in pairs}
    part = out_dir.with_name(out_dir.name + ".zip.part")
    part.parent.mkdir(parents=True, exist_ok=True)
    download_resuming(url, part, progress=progress, what="MLQA")
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise InputError(f"MLQA {url}: sha256 {digest}, expected {sha256}; the download was removed")
    counts: dict[str, int] = {}
    meta = Meta(
        "fetch-mlqa", params={"url": url, "lang": lang, "zip_sha256": digest}, config_hash=config_hash
    )
    try:
        with zipfile.ZipFile(part) as archive, atomic_dir(out_dir, meta) as tmp:
            names = set(archive.namelist())
            for context, question in pairs:
                name = task_name(context, question)
                data_files = {}
                for split, prefix in SPLITS.items():
                    member = f"MLQA_V1/{prefix}/{prefix}-context-{context}-question-{question}.json"
                    if member not in names:
                        raise InputError(f"MLQA {url}: the archive has no {member}")
                    rows = squad_rows(json.loads(archive.read(member).decode("utf-8")))
                    file_name = f"mlqa.{context}.{question}.{split}.jsonl"
                    (tmp / file_name).write_text(
                        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
                    )
                    data_files[split] = (out_dir / file_name).as_posix()  # where it will be
                    counts[f"{name}/{split}"] = len(rows)
                config = {
                    "include": yamls[(context, question)].as_posix(),
                    "task": name,
                    "tag": [],
                    "dataset_path": "json",
                    "dataset_name": None,
                    "dataset_kwargs": {"data_files": data_files},
                }
                (tmp / f"{name}.yaml").write_text(_yaml(config), encoding="utf-8")
            meta.params = {**meta.params, "questions": counts}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        part.unlink()
        raise InputError(
            f"MLQA {url}: not the MLQA release ({type(exc).__name__}: {exc}); the download was removed"
        ) from exc
    part.unlink()
    LOG.info("MLQA %s: %s", lang, counts)
    return counts


def _yaml(config: dict[str, Any]) -> str:
    import yaml

    header = "# Written by `salt-transfer fetch-mlqa`: lm-eval's own MLQA task, data from MLQA_V1.zip (see salt_transfer/mlqa.py).\n"
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
