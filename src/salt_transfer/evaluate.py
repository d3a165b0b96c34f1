"""Evaluate a model: bits per byte on held-out text (target language and English).

Usage:
    salt-transfer evaluate --model results/cpt/smollm2/es-bert/salt/model \
        --task bpb_target=bpb:data/corpora/es/test.txt --task bpb_english=bpb:data/corpora/en/test.txt \
        --out-dir results/eval/cpt/smollm2/es-bert/salt

Bits per byte, not per token: the models compared have different tokenizers, so per-token losses
are not comparable, while the UTF-8 bytes of the evaluated text are the same for every model.
BPB = (sum over tokens of -ln p(token | context)) / (ln 2 * number of UTF-8 bytes), with every token
of the text scored: the first one conditioned on the tokenizer's bos token (or eos when there is
none, as lm-evaluation-harness does for rolling log-likelihoods), later ones on as much of the same
document as fits in `seq_len` (lm-eval's rolling windows). Lines are documents.

Each task writes `<out-dir>/<task>.json` with the metric values, the amount of text scored, and the
sha256 of the model directory and of the evaluated text.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .corpora import read_lines
from .errors import InputError
from .provenance import sha256_tree, write_json_atomic

LOG = logging.getLogger(__name__)

TASK_KINDS = ("bpb",)


def select_text(lines: list[str], max_bytes: int) -> list[str]:
    """The first documents whose UTF-8 size (with newlines) fits in `max_bytes` (0: all).

    Selected by bytes, not tokens, so every model scores exactly the same text.
    """
    if not max_bytes:
        return lines
    out, used = [], 0
    for line in lines:
        size = len(line.encode("utf-8")) + 1
        if used + size > max_bytes and out:
            break
        out.append(line)
        used += size
    return out


def rolling_windows(ids: list[int], prefix_id: int, max_len: int):
    """(input ids, number of predicted tokens) windows covering every token once, each input using
    as much preceding context as fits in `max_len` (lm-evaluation-harness's rolling windows)."""
    first = min(max_len, len(ids))
    yield [prefix_id] + ids[: first - 1], first
    done = first
    while done < len(ids):
        n_pred = min(len(ids) - done, max_len)
        end = done + n_pred
        yield ids[end - max_len - 1 : end - 1], n_pred
        done = end


@torch.no_grad()
def document_nll(model, ids: list[int], prefix_id: int, seq_len: int, device) -> float:
    """Sum of -ln p over every token of `ids`, the first one conditioned on `prefix_id`."""
    total = 0.0
    done = 0
    for inp, n_pred in rolling_windows(ids, prefix_id, seq_len):
        logits = model(input_ids=torch.tensor([inp], device=device)).logits[0, -n_pred:].float()
        targets = torch.tensor(ids[done : done + n_pred], device=device)
        total -= float(torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).sum())
        done += n_pred
    return total


def bits_per_byte(
    model, tokenizer, lines: list[str], seq_len: int = 1024, device="cpu", progress: bool = False
) -> dict[str, Any]:
    """BPB of `lines` (one document each) under `model`."""
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is None:
        raise InputError(
            "the model's tokenizer has neither a bos nor an eos token to condition the first token on"
        )
    nll, n_tokens, n_bytes = 0.0, 0, 0
    for line in tqdm(lines, desc="bits per byte", disable=not progress, mininterval=2):
        ids = tokenizer(line, add_special_tokens=False)["input_ids"]
        if not ids:
            continue
        nll += document_nll(model, ids, prefix, seq_len, device)
        n_tokens += len(ids)
        n_bytes += len(line.encode("utf-8"))
    if n_bytes == 0:
        raise InputError("no text to evaluate")
    return {
        "bpb": nll / (math.log(2) * n_bytes),
        "nll_nats": nll,
        "tokens": n_tokens,
        "bytes": n_bytes,
        "documents": len(lines),
        "tokens_per_byte": n_tokens / n_bytes,
    }


def parse_task(spec: str) -> tuple[str, str, str]:
    """`NAME=KIND:PATH` -> (name, kind, path)."""
    name, sep, rest = spec.partition("=")
    kind, sep2, path = rest.partition(":")
    if not (sep and sep2 and name and path) or kind not in TASK_KINDS:
        raise InputError(f"--task {spec!r}: write NAME=KIND:PATH with KIND one of {TASK_KINDS}")
    return name, kind, path


def evaluate_model(
    model_dir: str | Path,
    tasks: list[str],
    out_dir: str | Path,
    max_bytes: int = 0,
    seq_len: int = 1024,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, dict]:
    """Run every task on one model; write `<out_dir>/<task>.json` each; return the records."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise InputError(f"model {model_dir}: not a model directory (no config.json)")
    parsed = [parse_task(t) for t in tasks]
    for _, _, path in parsed:
        if not Path(path).is_file():
            raise InputError(f"task text {path}: no such file")
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
    )
    model_sha = sha256_tree(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(dev).eval()
    records = {}
    for name, kind, path in parsed:
        t0 = time.perf_counter()
        lines = select_text(read_lines(path), max_bytes)
        metrics = bits_per_byte(model, tokenizer, lines, seq_len=seq_len, device=dev, progress=progress)
        record = {
            "task": name,
            "kind": kind,
            "metrics": {"bpb": metrics["bpb"]},
            "details": metrics,
            "text": str(path),
            "text_sha256": sha256_tree(path),
            "max_bytes": max_bytes,
            "model": str(model_dir),
            "model_sha256": model_sha,
            "seconds": round(time.perf_counter() - t0, 2),
            "device": str(dev),
        }
        write_json_atomic(Path(out_dir) / f"{name}.json", record)
        records[name] = record
    return records
