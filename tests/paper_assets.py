"""Stand-ins for what config/paper.yaml downloads, laid out exactly where and how the real clients look
for them, so that the paper grid's own code paths run offline (tests/integration/test_rehearsal.py):

  * Hugging Face hub cache (HF_HUB_CACHE): models--ORG--NAME/{blobs,snapshots/<commit>,refs/main},
    tiny models with the paper models' architectures and tokenizer families;
  * datasets cache (HF_DATASETS_CACHE): what `datasets` reads offline for Wikipedia, the Okapi
    HellaSwag/ARC/MMLU translations and XQuAD (their real fields, a few rows each);
  * files a local HTTP server hands out: the MLQA release zip and gzipped fastText `cc.<lang>.300.bin`.

Texts are slices of the committed test Bibles (tests/data), whatever the language code says: the
rehearsal checks code paths and formats, not language.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

# ----------------------------------------------------------------------------------------------
# MLQA release


def mlqa_zip(lang_pairs: list[tuple[str, str]], contexts: list[str], questions: int = 3) -> bytes:
    """MLQA_V1.zip in its real layout (MLQA_V1/{dev,test}/{split}-context-X-question-Y.json, SQuAD format)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for split in ("dev", "test"):
            for c, q in lang_pairs:
                paragraphs = []
                for i, context in enumerate(contexts[:questions]):
                    answer = context.split()[1]
                    paragraphs.append(
                        {
                            "context": context,
                            "qas": [
                                {
                                    "id": f"{split}-{c}-{q}-{i}",
                                    "question": f"Which word follows '{context.split()[0]}'?",
                                    "answers": [{"answer_start": context.index(answer), "text": answer}],
                                }
                            ],
                        }
                    )
                data = {"version": "1.0", "data": [{"title": f"Article {c}", "paragraphs": paragraphs}]}
                z.writestr(f"MLQA_V1/{split}/{split}-context-{c}-question-{q}.json", json.dumps(data))
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# Hugging Face hub cache


def hub_cache_repo(
    cache: Path, repo_id: str, files: Path, commit: str | None = None, repo_type: str = "model"
) -> str:
    """Put the files of directory `files` into the hub cache as repo `repo_id` at one commit, the way
    huggingface_hub stores a download: blobs by content hash, snapshots/<commit>/ of symlinks to
    them, refs/main naming the commit. Returns the commit (40 hex digits; by default derived from the
    content)."""
    listing = sorted(p for p in files.rglob("*") if p.is_file())
    digests = {p.relative_to(files).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in listing}
    commit = commit or hashlib.sha1(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    root = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    for rel, digest in digests.items():
        blob = root / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            shutil.copyfile(files / rel, blob)
        link = root / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(os.path.relpath(blob, link.parent), link)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return commit


def rehearsal_commit(repo_id: str) -> str:
    """The fixed commit a rehearsal repo is stored at (tests/integration/paper-rehearsal.yaml pins it)."""
    return hashlib.sha1(f"salt-transfer rehearsal: {repo_id}".encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# datasets cache (what `datasets.load_dataset` reads with HF_HUB_OFFLINE=1)


def datasets_cache_entry(cache: Path, repo_id: str, config: str, splits: dict[str, list[dict]]) -> Path:
    """Write `repo_id`/`config` into a datasets cache as a finished download: the directory
    `<namespace>___<name>/<config>/0.0.0/<hash>/` with dataset_info.json and one Arrow file per split,
    which `load_dataset(repo_id, config)` (streaming or not) finds when the hub cannot be reached."""
    import datasets
    from datasets.arrow_writer import ArrowWriter
    from datasets.naming import camelcase_to_snakecase

    namespace, name = repo_id.split("/")
    dataset_name = camelcase_to_snakecase(name)
    root = cache / f"{namespace}___{dataset_name}" / config / "0.0.0" / "rehearsal"
    root.mkdir(parents=True, exist_ok=True)
    split_dict = datasets.SplitDict(dataset_name=dataset_name)
    features = None
    for split, rows in splits.items():
        table = datasets.Dataset.from_list(rows)
        features = table.features
        with ArrowWriter(features=features, path=str(root / f"{dataset_name}-{split}.arrow")) as writer:
            writer.write_table(table.data.table)
            n, nbytes = writer.finalize()
        split_dict.add(
            datasets.SplitInfo(name=split, num_bytes=nbytes, num_examples=n, dataset_name=dataset_name)
        )
    info = datasets.DatasetInfo(
        features=features,
        builder_name="parquet",
        dataset_name=dataset_name,
        config_name=config,
        version="0.0.0",
        splits=split_dict,
    )
    info.write_to_directory(str(root))
    return root


def wikipedia_rows(lines: list[str], docs: int, per_doc: int = 6) -> list[dict]:
    """Wikipedia's fields (id, url, title, text); each article a run of lines."""
    rows = []
    for i in range(docs):
        text = "\n".join(lines[(i * per_doc) % len(lines) : (i * per_doc) % len(lines) + per_doc])
        rows.append(
            {
                "id": str(i + 1),
                "url": f"https://example.org/wiki/{i + 1}",
                "title": f"Artikel {i + 1}",
                "text": text,
            }
        )
    return rows


def okapi_and_xquad(lines: list[str], n: int = 4) -> dict[str, dict[str, dict[str, list[dict]]]]:
    """Rows with the fields lm-eval's Okapi HellaSwag/ARC/MMLU and XQuAD tasks read, per repo and split."""
    words = [w for line in lines for w in line.split()]

    def options(i: int, k: int) -> list[str]:
        return [
            " ".join(words[(i * 7 + j * 3) % len(words) : (i * 7 + j * 3) % len(words) + 3]) for j in range(k)
        ]

    hellaswag = [
        {
            "ind": i,
            "activity_label": "Bibel",
            "ctx_a": lines[i],
            "ctx_b": lines[i + 1][:20],
            "ctx": lines[i],
            "endings": options(i, 4),
            "label": str(i % 4),
            "split": "val",
            "split_type": "indomain",
            "source_id": f"s{i}",
        }
        for i in range(n)
    ]
    letters = "ABCDE"

    def arc(i):
        opts = options(i, 4)
        return {
            "id": f"arc-{i}",
            "instruction": lines[i],
            "option_a": opts[0],
            "option_b": opts[1],
            "option_c": opts[2],
            "option_d": opts[3],
            "option_e": None,
            "answer": letters[i % 4],
        }

    def mmlu(i):
        opts = options(i, 4)
        return {
            "id": f"mmlu-{i}",
            "instruction": lines[i],
            "option_a": opts[0],
            "option_b": opts[1],
            "option_c": opts[2],
            "option_d": opts[3],
            "answer": letters[i % 4],
        }

    def xquad(i):
        answer = lines[i].split()[1]
        return {
            "id": f"xquad-{i}",
            "context": lines[i],
            "question": f"Was folgt auf '{lines[i].split()[0]}'?",
            "answers": {"text": [answer], "answer_start": [lines[i].index(answer)]},
        }

    return {
        "alexandrainst/m_hellaswag": {"de": {"val": hellaswag}},
        "alexandrainst/m_arc": {
            "de": {s: [arc(i) for i in range(n)] for s in ("train", "validation", "test")}
        },
        "alexandrainst/m_mmlu": {"de": {s: [mmlu(i) for i in range(n)] for s in ("train", "test")}},
        "google/xquad": {"xquad.de": {"validation": [xquad(i) for i in range(n)]}},
    }


# ----------------------------------------------------------------------------------------------
# fastText


def fasttext_gz(lines: list[str], work: Path, dim: int = 16) -> bytes:
    """A word-level fastText .bin (as cc.<lang>.300.bin is, at a smaller dimension), gzipped."""
    import fasttext

    text = work / "fasttext-train.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = fasttext.train_unsupervised(
        str(text), model="cbow", dim=dim, epoch=2, minCount=1, bucket=20000, thread=1, verbose=0
    )
    path = work / "cc.bin"
    model.save_model(str(path))
    return gzip.compress(path.read_bytes())


# ----------------------------------------------------------------------------------------------
# The whole rehearsal environment

LLM_REPOS = {"gemma-2b": "google/gemma-2b", "xglm-1.7b": "facebook/xglm-1.7B"}
PLM_REPOS = {
    "de-bert": "dbmdz/bert-base-german-cased",
    "de-gpt2": "dbmdz/german-gpt2",
    "de-t5": "GermanT5/t5-efficient-gc4-german-base-nl36",
}
WIKIPEDIA = "wikimedia/wikipedia"


def _gemma(tok, path: Path) -> Path:
    """Gemma-shaped: tied embeddings scaled by sqrt(hidden) in the forward pass, SentencePiece BPE
    with byte fallback."""
    import torch
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(0)
    n = max(tok.get_vocab().values()) + 1
    config = GemmaConfig(
        vocab_size=n,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=0,
    )
    GemmaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _xglm(tok, path: Path) -> Path:
    """XGLM-shaped: tied embeddings scaled by sqrt(d_model), sinusoidal positions, unigram tokenizer."""
    import torch
    from transformers import XGLMConfig, XGLMForCausalLM

    torch.manual_seed(0)
    n = max(tok.get_vocab().values()) + 1
    config = XGLMConfig(
        vocab_size=n,
        d_model=32,
        ffn_dim=64,
        num_layers=2,
        attention_heads=4,
        max_position_embeddings=512,
        scale_embedding=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
    )
    XGLMForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_rehearsal(root: Path) -> dict:
    """Everything config/paper.yaml downloads, for `tests/integration/paper-rehearsal.yaml`, under
    `root`: returns {"env": the variables that point the clients at it, "files": what the local HTTP
    server must serve}."""
    from conftest import byte_bpe, read_lines, sp_bpe_byte_fallback, sp_unigram, tiny_plm, wordpiece
    from salt_transfer.mlqa import pairs_for

    es, en = read_lines("bible.es.txt"), read_lines("bible.en.txt")
    hub, ds_cache, src = root / "hf" / "hub", root / "hf" / "datasets", root / "src"
    builders = {
        "gemma-2b": lambda p: _gemma(sp_bpe_byte_fallback(en + es[:80], 600), p),
        "xglm-1.7b": lambda p: _xglm(sp_unigram(en + es, 600), p),
        "de-bert": lambda p: tiny_plm(wordpiece(es, 500), p, "bert"),
        "de-gpt2": lambda p: tiny_plm(byte_bpe(es, 500), p, "gpt2"),
        "de-t5": lambda p: tiny_plm(sp_unigram(es, 400), p, "t5"),
    }
    for name, repo in {**LLM_REPOS, **PLM_REPOS}.items():
        hub_cache_repo(hub, repo, builders[name](src / name), commit=rehearsal_commit(repo))
    datasets_cache_entry(ds_cache, WIKIPEDIA, "20231101.de", {"train": wikipedia_rows(es, 120)})
    datasets_cache_entry(ds_cache, WIKIPEDIA, "20231101.en", {"train": wikipedia_rows(en, 120)})
    for repo, configs in okapi_and_xquad(es).items():
        for config, splits in configs.items():
            datasets_cache_entry(ds_cache, repo, config, splits)
    files = {
        "/MLQA_V1.zip": mlqa_zip(pairs_for("de"), es, questions=3),
        "/cc.de.300.bin.gz": fasttext_gz(es + en, root),
    }
    env = {
        "HF_HUB_CACHE": str(hub),
        "HF_DATASETS_CACHE": str(ds_cache),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return {"env": env, "files": files}
