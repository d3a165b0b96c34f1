"""Evaluate a model: bits per byte on held-out text, and downstream tasks through lm-evaluation-harness.

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

Downstream tasks run through lm-evaluation-harness (`--task NAME=lm-eval:TASK`): registry tasks
such as `hellaswag_de` or `mlqa_de_en` (paper config), or task YAML from `--include-path` folders
(the demo's tasks, `salt_transfer.tasks`). `--task NAME=alignment` runs the cross-lingual alignment
analyses (`salt_transfer.analysis`) on the same loaded weights: one process per model instead of
two, which the demo's time budget needs (about 8 s of imports and loading per process on 2 cores).
Each task writes `<out-dir>/<task>.json` with its metric values and the sha256 of the model
directory and of the evaluated text or task data.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .corpora import read_lines
from .errors import InputError
from .provenance import sha256_tree, write_json_atomic
from .weights import load_causal_lm, native_bf16, require_model_dir, resolve_device

LOG = logging.getLogger(__name__)

TASK_KINDS = ("bpb", "lm-eval", "alignment")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class AlignmentInputs:
    """What the `alignment` task compares the model with (see `salt_transfer.analysis`)."""

    source_model: str
    parallel: str
    lexicon: str
    source_states: str
    max_sentences: int = 0


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
    """Sum of -ln p over every token of `ids`, the first one conditioned on `prefix_id` (one document,
    unbatched: the reference `bits_per_byte` must agree with)."""
    total = 0.0
    done = 0
    for inp, n_pred in rolling_windows(ids, prefix_id, seq_len):
        logits = model(input_ids=torch.tensor([inp], device=device)).logits[0, -n_pred:].float()
        targets = torch.tensor(ids[done : done + n_pred], device=device)
        total -= float(torch.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).sum())
        done += n_pred
    return total


# Tokens per batched forward pass of `bits_per_byte` (CPU matrix products are far more efficient on
# a batch of short documents than on one at a time; measured 3x on SmolLM2 over Bible verses).
_BATCH_TOKENS = 2048


@torch.no_grad()
def _window_nlls(model, windows: list[tuple[list[int], list[int]]], device) -> list[float]:
    """-ln p summed over each window's targets (its last len(targets) positions), windows batched
    by length. Right padding is safe without a mask: a causal model never lets a real position see
    a later (padded) one."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][0]))
    out = [0.0] * len(windows)
    start = 0
    while start < len(order):
        width = len(windows[order[start]][0])
        stop = start + 1
        while stop < len(order) and (stop - start + 1) * len(windows[order[stop]][0]) <= max(
            _BATCH_TOKENS, width
        ):
            stop += 1
        batch = order[start:stop]
        width = max(len(windows[i][0]) for i in batch)
        inputs = torch.zeros(len(batch), width, dtype=torch.long)
        for row, i in enumerate(batch):
            inputs[row, : len(windows[i][0])] = torch.tensor(windows[i][0])
        logits = model(input_ids=inputs.to(device)).logits.float()
        for row, i in enumerate(batch):
            inp, targets = windows[i]
            n = len(targets)
            end = len(inp)
            logp = torch.log_softmax(logits[row, end - n : end], dim=-1)
            out[i] = -float(logp.gather(1, torch.tensor(targets, device=device).unsqueeze(1)).sum())
        start = stop
    return out


def bits_per_byte(
    model, tokenizer, lines: list[str], seq_len: int = 1024, device="cpu", progress: bool = False
) -> dict[str, Any]:
    """BPB of `lines` (one document each) under `model`, with each document's nats and bytes (for
    paired comparisons between models scored on the same text)."""
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is None:
        raise InputError(
            "the model's tokenizer has neither a bos nor an eos token to condition the first token on"
        )
    windows, owner, per_doc = [], [], []
    n_tokens = 0
    encoded = tokenizer(list(lines), add_special_tokens=False)["input_ids"] if lines else []
    for line, ids in zip(lines, encoded):
        if not ids:
            continue
        done = 0
        for inp, n_pred in rolling_windows(ids, prefix, seq_len):
            windows.append((inp, ids[done : done + n_pred]))
            owner.append(len(per_doc))
            done += n_pred
        per_doc.append([0.0, len(line.encode("utf-8"))])
        n_tokens += len(ids)
    n_bytes = sum(b for _, b in per_doc)
    if n_bytes == 0:
        raise InputError("no text to evaluate")
    if progress:
        LOG.info("bits per byte: %d documents, %d tokens", len(per_doc), n_tokens)
    for doc, nll in zip(owner, _window_nlls(model, windows, device)):
        per_doc[doc][0] += nll
    nll = sum(n for n, _ in per_doc)
    bpb = nll / (math.log(2) * n_bytes)
    # Standard error of the ratio estimator sum(bits) / sum(bytes) over documents (delta method):
    # how much the score would move on another sample of documents of the same kind.
    n = len(per_doc)
    resid = sum((d / math.log(2) - bpb * b) ** 2 for d, b in per_doc)
    stderr = math.sqrt(n / (n - 1) * resid) / n_bytes if n > 1 else float("nan")
    return {
        "bpb": bpb,
        "bpb_stderr": stderr,
        "nll_nats": nll,
        "tokens": n_tokens,
        "bytes": n_bytes,
        "documents": len(per_doc),
        "tokens_per_byte": n_tokens / n_bytes,
        "per_document": [[round(n, 6), b] for n, b in per_doc],  # [nats, bytes]
    }


def parse_task(spec: str) -> tuple[str, str, str]:
    """`NAME=bpb:PATH`, `NAME=lm-eval:TASK` or `NAME=alignment` -> (name, kind, PATH or TASK or "")."""
    name, sep, rest = spec.partition("=")
    kind, sep2, arg = rest.partition(":")
    if kind == "alignment" and name and not arg:
        return name, kind, ""
    if not (sep and sep2 and name and arg) or kind not in TASK_KINDS:
        raise InputError(f"--task {spec!r}: write NAME=bpb:PATH, NAME=lm-eval:TASK or NAME=alignment")
    return name, kind, arg


def _tasks_defined_in(paths: list[str]) -> set[str]:
    names = set()
    for folder in paths:
        for yaml_file in Path(folder).glob("*.yaml"):
            for line in yaml_file.read_text(encoding="utf-8").splitlines():
                if line.startswith("task:"):
                    names.add(line.split(":", 1)[1].strip())
    return names


def run_lm_eval(
    model,
    tokenizer,
    tasks: dict[str, str],
    include_paths: list[str],
    limit: int | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    bf16: bool = False,
) -> dict[str, dict]:
    """Run lm-evaluation-harness tasks on an already loaded model; result name -> metrics and details.

    `bf16` runs the forward passes under bfloat16 autocast. It must be passed to the harness: its
    model call opens its own autocast context, which (disabled by default) switches an outer one off.

    The harness's own HF wrapper (`HFLM`) is given the loaded model, so the weights are read once.
    Its default task registry (thousands of YAML files, slow to index) is loaded only when a task is
    not defined in `include_paths`.
    """
    import random

    import lm_eval.evaluator
    import numpy as np
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from .squad_metrics import install as install_squad_metrics

    install_squad_metrics()  # lm-eval's XQuAD imports a module transformers 5 no longer has
    for folder in include_paths:
        if not Path(folder).is_dir():
            raise InputError(f"--include-path {folder}: no such directory")
    defined = _tasks_defined_in(include_paths)
    manager = TaskManager(
        include_path=include_paths or None, include_defaults=any(t not in defined for t in tasks.values())
    )
    missing = sorted(t for t in tasks.values() if t not in manager.all_tasks)
    if missing:
        raise InputError(f"lm-eval tasks {missing} are not in lm-eval's registry or the include paths")
    lm = HFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        mixed_precision_dtype=torch.bfloat16 if bf16 else None,
    )
    # What lm_eval.simple_evaluate does for a pre-loaded model (lm-eval 0.4.13, pinned), minus its
    # environment report: that runs `pip list` and `git` in subprocesses, about 2.5 s of every
    # evaluate job, for facts the sidecar records anyway.
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    loaded = manager.load(sorted(set(tasks.values())))
    for task in loaded["tasks"].values():
        if num_fewshot is not None and task.get_config("num_fewshot") != 0:
            task.set_config(key="num_fewshot", value=num_fewshot)
        elif task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=seed)
    out = lm_eval.evaluator.evaluate(
        lm=lm,
        task_dict=loaded,
        limit=limit,
        # Standard errors: lm-eval's analytic one for mean-aggregated metrics (accuracy), a
        # 100-sample bootstrap for the others; per-item scores kept for paired comparisons.
        bootstrap_iters=100,
        log_samples=True,
    )
    records = {}
    for name, task in tasks.items():
        raw = out["results"][task]
        metrics = {
            k.split(",")[0]: float(v)
            for k, v in raw.items()
            if "," in k and "stderr" not in k and isinstance(v, (int, float))
        }
        stderr = {
            k.split(",")[0].removesuffix("_stderr"): float(v)
            for k, v in raw.items()
            if "_stderr," in k and isinstance(v, (int, float))
        }
        per_item = {}
        for sample in sorted(out.get("samples", {}).get(task, []), key=lambda x: x.get("doc_id", 0)):
            for metric in metrics:
                value = sample.get(metric)
                if isinstance(value, (int, float)):
                    per_item.setdefault(metric, []).append(float(value))
        records[name] = {
            "metrics": metrics,
            "stderr": stderr,
            "per_item": per_item,
            "lm_eval_task": task,
            "details": {
                "samples": out.get("n-samples", {}).get(task),
                "version": out.get("versions", {}).get(task),
                "num_fewshot": out.get("n-shot", {}).get(task),
                "limit": limit,
                "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else None,
            },
        }
    return records


def evaluate_model(
    model_dir: str | Path,
    tasks: list[str],
    out_dir: str | Path,
    max_bytes: int = 0,
    seq_len: int = 1024,
    device: str = "auto",
    progress: bool = True,
    include_paths: list[str] = (),
    lm_eval_limit: int | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    alignment: AlignmentInputs | None = None,
    labels: dict[str, str] | None = None,
    precision: str = "fp32",
) -> dict[str, dict]:
    """Run every task on one model; write `<out_dir>/<task>.json` each; return the records.

    `labels` (stage, llm, plm, method or language) are recorded in every JSON as its `cell`: the
    report reads a record's place in the grid from them, not from the file's path. `precision`
    bf16 runs the forward passes of bits per byte and lm-eval tasks under bfloat16 autocast (about
    2x faster on CPUs with native bfloat16, e.g. AVX512-BF16; log-probabilities are still summed in
    float32); every record says which precision it was scored in.
    """
    from .corpora import check_text_file
    from .provenance import check_output

    model_dir = require_model_dir(model_dir)
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if seq_len < 2:
        raise InputError(f"--seq-len {seq_len}: must be at least 2")
    if max_bytes < 0:
        raise InputError(f"--max-bytes {max_bytes}: must be 0 (all) or positive")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be positive")
    parsed = [parse_task(t) for t in tasks]
    for name, kind, path in parsed:
        if kind == "bpb":
            check_text_file(path, f"task {name} text")
        check_output(Path(out_dir) / f"{name}.json", label="--out-dir")
        if kind == "alignment" and alignment is None:
            raise InputError(
                f"--task {name}=alignment needs --source-model, --parallel, --lexicon and --source-states"
            )
    dev = resolve_device(device)
    if precision == "auto":
        precision = "bf16" if native_bf16(dev) else "fp32"
    elif precision == "bf16" and not native_bf16(dev):
        raise InputError(
            f"--precision bf16: this {dev.type.upper()} has no native bfloat16 "
            "(a GPU that supports it, or a CPU with AVX512-BF16/AMX); use fp32 or auto"
        )
    model_sha = sha256_tree(model_dir)
    model, tokenizer = load_causal_lm(model_dir, dev)
    common = {
        "model": str(model_dir),
        "model_sha256": model_sha,
        "device": str(dev),
        "precision": precision,
        "cell": dict(labels or {}),
    }
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    records = {}
    for name, kind, path in parsed:
        if kind != "bpb":
            continue
        t0 = time.perf_counter()
        lines = select_text(read_lines(path), max_bytes)
        with autocast:
            metrics = bits_per_byte(model, tokenizer, lines, seq_len=seq_len, device=dev, progress=progress)
        records[name] = {
            "task": name,
            "kind": kind,
            "metrics": {"bpb": metrics["bpb"]},
            "stderr": {"bpb": metrics["bpb_stderr"]},
            "details": metrics,
            "text": str(path),
            "text_sha256": sha256_tree(path),
            "max_bytes": max_bytes,
            **common,
            "seconds": round(time.perf_counter() - t0, 2),
        }
    harness = {name: arg for name, kind, arg in parsed if kind == "lm-eval"}
    if harness:
        t0 = time.perf_counter()
        results = run_lm_eval(
            model,
            tokenizer,
            harness,
            list(include_paths),
            limit=lm_eval_limit,
            num_fewshot=num_fewshot,
            batch_size=batch_size,
            seed=seed,
            bf16=precision == "bf16",
        )
        for name, result in results.items():
            data = sorted(
                Path(p) / f"{result['lm_eval_task']}.jsonl"
                for p in include_paths
                if (Path(p) / f"{result['lm_eval_task']}.jsonl").is_file()
            )
            records[name] = {
                "task": name,
                "kind": "lm-eval",
                **result,
                **common,
                # The task's local data (demo tasks); hub tasks have none here.
                "text": str(data[0]) if data else "",
                "text_sha256": sha256_tree(data[0]) if data else "",
                "seconds": round(time.perf_counter() - t0, 2),
            }
    for name, kind, _ in parsed:
        if kind != "alignment":
            continue
        from .analysis import alignment_record

        record = alignment_record(
            model,
            tokenizer,
            model_dir,
            alignment.source_model,
            alignment.parallel,
            alignment.lexicon,
            alignment.source_states,
            max_sentences=alignment.max_sentences,
            seed=seed,
            device=str(dev),
            model_sha256=model_sha,
        )
        summary = {k: float(v) for k, v in record["summary"].items() if v is not None}
        records[name] = {
            "task": name,
            **record,
            "metrics": summary,
            "device": str(dev),
            "cell": dict(labels or {}),
        }
    for name, record in records.items():
        write_json_atomic(Path(out_dir) / f"{name}.json", record)
    return records
