"""Vocabulary trimming: a multilingual PLM cut down to the tokens of target-language text.

    salt-transfer trim-plm --model data/models/e5-small --text data/corpora/es/train.txt \
        --out results/plm/es-e5/model

The SALT paper recycles *monolingual* target-language PLMs (30-50k vocabularies). The real PLMs
that install offline are multilingual (XLM-R's 250k vocabulary in multilingual-e5-small, Gemma-3's
262k): about 200k of their tokens belong to scripts that never occur in Spanish text. Every one of
them is a "new" token the transfer must initialize and the transferred model must carry in its
softmax, so they dominate both the fit and, at the start of training, the loss. Trimming keeps:

  * every token the target-language text uses (at least `min_count` times),
  * the special tokens that have a role (bos, eos, pad, unk, mask, cls, sep),
  * byte-fallback tokens (`<0xNN>`, SentencePiece BPE), so no text ever maps to <unk> that did not,
  * for BPE vocabularies, every token and merge on the way to a kept token (the "merge closure"),

and writes a real tokenizer and model with that smaller vocabulary (ids renumbered in their original
order; the model's embedding rows, and an untied head's rows, gathered accordingly). This
approximates the paper's monolingual PLMs with a multilingual one; it is our choice, not the
paper's, and everything that uses a trimmed PLM says so.

Why the text's tokenization does not change (checked on the text itself, `check` in trim.json):
Unigram (XLM-R) picks the best-scoring segmentation; the original best one uses only kept pieces, and
removing pieces cannot create a better one. WordPiece takes the longest vocabulary prefix; the
original choice is kept and nothing longer was in the vocabulary. BPE applies, at each step, the
lowest-ranked merge among the pairs present; every merge the original process applied is kept (the
merge closure contains it), and the kept merges are a subset of the original ones, so the original
choice is still the lowest-ranked one available at every step.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from .errors import InputError
from .provenance import Meta, atomic_dir, check_output
from .settings import TrimOptions

LOG = logging.getLogger(__name__)

_ROLES = ("bos", "eos", "pad", "unk", "mask", "cls", "sep")


def _byte_fallback_ids(vocab: dict[str, int]) -> set[int]:
    import re

    pattern = re.compile(r"<0x[0-9A-Fa-f]{2}>")
    return {i for t, i in vocab.items() if pattern.fullmatch(t)}


def _merge_pairs(model: dict) -> list[tuple[str, str]]:
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1]) for m in model.get("merges", [])]


def _merge_closure(keep_tokens: set[str], merges: list[tuple[str, str]]) -> set[str]:
    """Every token from which a kept token is built by BPE merges (all merges producing it, recursively)."""
    producers: dict[str, list[tuple[str, str]]] = {}
    for a, b in merges:
        producers.setdefault(a + b, []).append((a, b))
    out = set(keep_tokens)
    stack = list(keep_tokens)
    while stack:
        token = stack.pop()
        for a, b in producers.get(token, ()):
            for part in (a, b):
                if part not in out:
                    out.add(part)
                    stack.append(part)
    return out


def _remap_post_processor(node: Any, new_id: dict[int, int]) -> Any:
    """Special-token ids inside a post-processor (TemplateProcessing, Roberta/BertProcessing)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "ids" and isinstance(value, list) and all(isinstance(v, int) for v in value):
                out[key] = [new_id[v] for v in value]
            elif (
                key in ("sep", "cls")
                and isinstance(value, list)
                and len(value) == 2
                and isinstance(value[1], int)
            ):
                out[key] = [value[0], new_id[value[1]]]
            else:
                out[key] = _remap_post_processor(value, new_id)
        return out
    if isinstance(node, list):
        return [_remap_post_processor(v, new_id) for v in node]
    return node


def trimmed_tokenizer_json(spec: dict, keep_ids: list[int]) -> dict:
    """The tokenizer JSON restricted to `keep_ids` (sorted), ids renumbered in that order."""
    model = dict(spec["model"])
    kind = model.get("type")
    new_id = {old: new for new, old in enumerate(keep_ids)}
    if kind == "Unigram":
        vocab = model["vocab"]
        model["vocab"] = [vocab[i] for i in keep_ids]
        if model.get("unk_id") is not None:
            model["unk_id"] = new_id[model["unk_id"]]
    elif kind in ("BPE", "WordPiece", "WordLevel"):
        by_id = {i: t for t, i in model["vocab"].items()}
        kept = {by_id[i]: new_id[i] for i in keep_ids if i in by_id}
        model["vocab"] = kept
        if kind == "BPE":
            model["merges"] = [
                [a, b] for a, b in _merge_pairs(spec["model"]) if a in kept and b in kept and a + b in kept
            ]
    else:
        raise InputError(f"tokenizer model type {kind!r} cannot be trimmed (Unigram, BPE, WordPiece only)")
    out = dict(spec)
    out["model"] = model
    out["added_tokens"] = [
        {**tok, "id": new_id[tok["id"]]} for tok in spec.get("added_tokens") or [] if tok["id"] in new_id
    ]
    if spec.get("post_processor"):
        out["post_processor"] = _remap_post_processor(spec["post_processor"], new_id)
    return out


def _vocab_of(spec: dict) -> dict[str, int]:
    model = spec["model"]
    if model["type"] == "Unigram":
        return {piece: i for i, (piece, _score) in enumerate(model["vocab"])}
    return dict(model["vocab"])


def _count_tokens(tok, lines: list[str]) -> tuple[Counter, list[list[int]]]:
    encoded = []
    counts: Counter = Counter()
    for start in range(0, len(lines), 1024):
        for ids in tok(lines[start : start + 1024], add_special_tokens=False)["input_ids"]:
            encoded.append(ids)
            counts.update(ids)
    return counts, encoded


def trim_plm(
    model_dir: str | Path,
    text: str | Path,
    out: str | Path,
    opts: TrimOptions | None = None,
    config_hash: str | None = None,
) -> dict[str, Any]:
    """Write a trimmed copy of the PLM in `model_dir` to `out` (+ trim.json and sidecar); returns trim.json."""
    opts = opts or TrimOptions()
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoConfig, PreTrainedTokenizerFast

    from .corpora import read_lines
    from .evaluate import select_text
    from .tokens import backend_json, load_tokenizer, special_roles
    from .weights import model_class_for, require_model_dir

    model_dir = require_model_dir(model_dir, label="PLM")
    check_output(out, directory=True)
    lines = read_lines(text, "--text")
    if opts.max_bytes:
        lines = select_text(lines, opts.max_bytes)
    tok = load_tokenizer(model_dir)
    spec = backend_json(tok)
    vocab = _vocab_of(spec)
    n_vocab = max(vocab.values()) + 1 if vocab else 0
    for added in spec.get("added_tokens") or []:
        n_vocab = max(n_vocab, added["id"] + 1)
    counts, encoded = _count_tokens(tok, lines)
    if not counts:
        raise InputError(f"--text {text}: no tokens (empty text?)")
    from_text = {i for i, c in counts.items() if c >= opts.min_count}
    roles = special_roles(tok)
    reasons = {"text": len(from_text), "special": 0, "byte_fallback": 0, "merge_closure": 0}
    keep = set(from_text)
    specials = set(roles.values()) - keep
    reasons["special"] = len(specials)
    keep |= specials
    if spec["model"]["type"] == "BPE" and spec["model"].get("byte_fallback"):
        fallback = _byte_fallback_ids(vocab) - keep
        reasons["byte_fallback"] = len(fallback)
        keep |= fallback
    if spec["model"]["type"] == "BPE":
        by_id = {i: t for t, i in vocab.items()}
        closure = _merge_closure({by_id[i] for i in keep if i in by_id}, _merge_pairs(spec["model"]))
        extra = {vocab[t] for t in closure} - keep
        reasons["merge_closure"] = len(extra)
        keep |= extra
    keep_ids = sorted(keep)
    new_id = {old: new for new, old in enumerate(keep_ids)}
    trimmed = Tokenizer.from_str(json.dumps(trimmed_tokenizer_json(spec, keep_ids)))
    names = {role: tok.convert_ids_to_tokens(i) for role, i in roles.items()}
    new_tok = PreTrainedTokenizerFast(tokenizer_object=trimmed, **{f"{r}_token": t for r, t in names.items()})

    # The text's tokenization must not change for lines made of kept tokens (all of them when
    # min_count is 1): same tokens, renumbered.
    _, re_encoded = _count_tokens(new_tok, lines)
    checked = changed = 0
    first_change = None
    for line, before, after in zip(lines, encoded, re_encoded):
        if not all(i in new_id for i in before):
            continue
        checked += 1
        if [new_id[i] for i in before] != after:
            changed += 1
            first_change = first_change or line[:80]
    if changed:
        raise InputError(
            f"trimming {model_dir} changed the tokenization of {changed} of {checked} lines (first: {first_change!r}); "
            "this tokenizer cannot be trimmed safely"
        )

    config = AutoConfig.from_pretrained(model_dir)
    model = model_class_for(config).from_pretrained(model_dir, dtype=torch.float32)
    emb = model.get_input_embeddings()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = head is not None and head.weight is emb.weight
    index = torch.tensor(keep_ids, dtype=torch.long)
    if int(index.max()) >= emb.weight.shape[0]:
        raise InputError(f"PLM {model_dir}: tokenizer id {int(index.max())} has no embedding row")
    old_rows = emb.weight.shape[0]
    with torch.no_grad():
        emb.weight = torch.nn.Parameter(emb.weight[index].clone())
        emb.num_embeddings = len(keep_ids)
        if getattr(emb, "padding_idx", None) is not None:
            emb.padding_idx = new_id.get(emb.padding_idx)
        if head is not None:
            if tied:
                head.weight = emb.weight
            else:
                head.weight = torch.nn.Parameter(head.weight[index].clone())
            if hasattr(head, "out_features"):
                head.out_features = len(keep_ids)
        # Other per-token vectors (an MLM head's output bias, T5's final_logits_bias): rows follow ids.
        seen = {id(emb.weight)} | ({id(head.weight)} if head is not None else set())
        for module in model.modules():
            for pname, param in list(module.named_parameters(recurse=False)):
                if id(param) not in seen and param.dim() >= 1 and param.shape[0] == old_rows:
                    setattr(module, pname, torch.nn.Parameter(param[index].clone()))
                    seen.add(id(param))
            for bname, buf in list(module.named_buffers(recurse=False)):
                if (
                    buf is not None
                    and buf.dim() >= 1
                    and buf.shape[0] == old_rows
                    and bname != "position_ids"
                ):
                    module.register_buffer(bname, buf[index].clone())
        if head is not None and getattr(head, "bias", None) is not None and head.bias.shape[0] == old_rows:
            head.bias = torch.nn.Parameter(head.bias[index].clone())
        for module in model.modules():  # MLM heads keep their bias twice (decoder.bias is predictions.bias)
            if (
                hasattr(module, "decoder")
                and hasattr(module, "bias")
                and isinstance(module.bias, torch.nn.Parameter)
            ) and getattr(module.decoder, "bias", None) is not None:
                module.decoder.bias = module.bias
    for cfg in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        cfg.vocab_size = len(keep_ids)
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(cfg, key, None)
            if isinstance(value, int):
                setattr(cfg, key, new_id.get(value))
    record = {
        "source": str(model_dir),
        "original_vocab": n_vocab,
        "kept": len(keep_ids),
        "kept_by_reason": reasons,
        "min_count": opts.min_count,
        "text": str(text),
        "text_lines": len(lines),
        "text_tokens": sum(len(e) for e in encoded),
        "text_distinct_tokens": len(counts),
        "check": {
            "lines_checked": checked,
            "lines_changed": changed,
            "tokens_before": sum(len(e) for e in encoded),
            "tokens_after": sum(len(e) for e in re_encoded),
        },
        "tied_head": tied,
        "note": "vocabulary trimmed to the target-language text: approximates a monolingual PLM, not the paper's setting",
    }
    meta = Meta(
        "trim-plm",
        inputs={"model": model_dir, "text": text},
        params={"min_count": opts.min_count, "max_bytes": opts.max_bytes, "kept": len(keep_ids)},
        config_hash=config_hash,
    )
    with atomic_dir(out, meta) as tmp:
        model.save_pretrained(tmp)
        new_tok.save_pretrained(tmp)
        (tmp / "trim.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
