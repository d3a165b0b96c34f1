"""Transplant fitted rows into the source LLM: a causal LM that speaks the target (PLM) tokenizer.

Usage:
    salt-transfer transplant --source-model data/models/smollm2 --target-tokenizer data/models/plm-es \
        --embeddings results/fit/smollm2/plm-es/salt/embeddings.safetensors \
        --out results/init/smollm2/plm-es/salt/model

What changes in the source model: the input embedding's weight (|Vt| rows), the LM head (tied: the
same tensor; untied: the fitted `output` rows), `vocab_size` and the special-token ids of the config
and generation config. The embedding *modules* are kept and only their weights replaced, so
architecture-specific behaviour survives (Gemma's embedding scaled by sqrt(hidden) at run time, for
instance); the rows were fitted in the stored, unscaled space, so nothing is rescaled here.

The tokenizer becomes a causal-LM tokenizer: an encoder PLM's tokenizer would add [CLS] ... [SEP]
and T5's would append </s>; the transplanted one adds only a beginning-of-sequence token, and only
if the source LLM's tokenizer does (Gemma does, SmolLM2 does not). [CLS] serves as bos and [SEP] as
eos when the PLM has no bos/eos; with neither, eos doubles as bos (GPT-2's convention).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from .errors import InputError
from .provenance import Meta, atomic_dir, check_output, sha256_file, sha256_tree
from .tokens import backend_json, load_tokenizer, special_roles, vocab_size

LOG = logging.getLogger(__name__)


def source_adds_bos(source_tok) -> bool:
    bos = getattr(source_tok, "bos_token_id", None)
    if bos is None:
        return False
    ids = source_tok("a")["input_ids"]
    return bool(ids) and ids[0] == bos


def causal_tokenizer(target_tok, add_bos: bool, model_max_length: int | None = None):
    """Rebuild the target tokenizer so that encoding adds at most a bos token (no cls/sep/eos)."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    roles = special_roles(target_tok)
    bos = roles.get("bos", roles.get("cls"))
    eos = roles.get("eos", roles.get("sep"))
    if bos is None and add_bos:
        bos = eos
    pad = roles.get("pad", eos)
    unk = roles.get("unk")
    name = target_tok.convert_ids_to_tokens

    backend = Tokenizer.from_str(target_tok.backend_tokenizer.to_str())
    if add_bos and bos is not None:
        b = name(bos)
        template = processors.TemplateProcessing(
            single=f"{b} $A", pair=f"{b} $A $B:1", special_tokens=[(b, bos)]
        )
    else:
        template = processors.TemplateProcessing(single="$A", pair="$A $B:1", special_tokens=[])
    original = (backend_json(target_tok).get("post_processor") or {}).get("type")
    # Byte-level tokenizers use their post-processor to trim offsets; keep that part.
    backend.post_processor = (
        processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
        if original == "ByteLevel"
        else template
    )
    kwargs: dict[str, Any] = {
        "bos_token": name(bos) if bos is not None else None,
        "eos_token": name(eos) if eos is not None else None,
        "pad_token": name(pad) if pad is not None else None,
        "unk_token": name(unk) if unk is not None else None,
    }
    if "mask" in roles:
        kwargs["mask_token"] = name(roles["mask"])
    if model_max_length:
        kwargs["model_max_length"] = model_max_length
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, **{k: v for k, v in kwargs.items() if v is not None}
    )


def _read_fitted(path: Path) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    if not path.is_file():
        raise InputError(f"embeddings {path}: no such file (run `salt-transfer fit` first)")
    from .weights import safetensors_header

    data_start, entries = safetensors_header(path)  # an InputError for a foreign or cut file
    ends = [e["data_offsets"][1] for k, e in entries.items() if k != "__metadata__"]
    if path.stat().st_size < data_start + max(ends, default=0):
        raise InputError(f"embeddings {path}: truncated (fewer bytes than its header announces)")
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        if "input" not in keys:
            raise InputError(f"embeddings {path}: no 'input' tensor; not written by `salt-transfer fit`")
        inp = f.get_tensor("input")
        out = f.get_tensor("output") if "output" in keys else None
        header = json.loads((f.metadata() or {}).get("salt_transfer", "{}"))
    for label, t in (("input", inp), ("output", out)):
        if t is not None and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t).all(dim=1)).nonzero()[0])
            raise InputError(f"embeddings {path}: {label} row {bad} is not finite (NaN or Inf)")
    return inp, out, header


def _check_fitted_for(embeddings: Path, source_sha: str, tokenizer_sha: str) -> None:
    """Refuse rows fitted from another source model or for another target tokenizer than the ones
    given (their sidecar records what they were made from)."""
    from .provenance import meta_path

    side = meta_path(embeddings)
    if not side.is_file():
        LOG.warning("embeddings %s have no sidecar: cannot check what they were fitted from", embeddings)
        return
    inputs = json.loads(side.read_text(encoding="utf-8")).get("inputs") or {}
    recorded_source = (inputs.get("source_model") or {}).get("sha256")
    if recorded_source and recorded_source != source_sha:
        raise InputError(f"embeddings {embeddings} were fitted from another source model than --source-model")
    recorded_tok = [(inputs.get(role) or {}).get("sha256") for role in ("target_tokenizer", "plm")]
    recorded_tok = [r for r in recorded_tok if r]
    if recorded_tok and tokenizer_sha not in recorded_tok:
        raise InputError(
            f"embeddings {embeddings} were fitted for another target tokenizer than --target-tokenizer"
        )


def _set_vocab_size(config, n: int) -> None:
    config.vocab_size = n
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if text is not config:
        text.vocab_size = n


def transplant(
    source_model: str | Path,
    target_tokenizer: str | Path,
    embeddings: str | Path,
    out_dir: str | Path,
    save_dtype: str = "auto",
    config_hash: str | None = None,
    card: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """Write an HF causal-LM directory (+ sidecar): source model + target tokenizer + fitted rows,
    with a model card (`card`: base_model, language, license for its header).

    The directory's files depend only on the content of the inputs (transplant.json and README.md
    record hashes, not paths; the sidecar beside the directory has the paths), so the same inputs
    give the same bytes however they were produced."""
    from transformers import AutoModelForCausalLM

    from .weights import require_model_dir

    if save_dtype not in ("auto", "float32", "bfloat16"):
        raise InputError(f"--save-dtype {save_dtype!r}: choose auto, float32 or bfloat16")
    check_output(out_dir, directory=True)
    require_model_dir(source_model, label="source model")
    embeddings = Path(embeddings)
    target_tok = load_tokenizer(target_tokenizer)
    source_tok = load_tokenizer(source_model)
    n = vocab_size(target_tok)
    rows_in, rows_out, header = _read_fitted(embeddings)
    if rows_in.shape[0] != n:
        raise InputError(
            f"embeddings {embeddings}: {rows_in.shape[0]} rows, but target tokenizer {target_tokenizer} has {n} ids"
        )
    model = AutoModelForCausalLM.from_pretrained(source_model, dtype="auto")
    emb = model.get_input_embeddings()
    head = model.get_output_embeddings()
    hidden = emb.weight.shape[1]
    if rows_in.shape[1] != hidden:
        raise InputError(
            f"embeddings {embeddings}: width {rows_in.shape[1]}, source model hidden size {hidden}"
        )
    tied = head is not None and head.weight is emb.weight
    if head is not None and not tied and rows_out is None:
        raise InputError(
            f"embeddings {embeddings}: the source LM head is untied but there are no 'output' rows; refit them"
        )
    dtype = emb.weight.dtype
    roles_tok = causal_tokenizer(
        target_tok,
        add_bos=source_adds_bos(source_tok),
        model_max_length=getattr(model.config.get_text_config(), "max_position_embeddings", None),
    )
    pad_id = roles_tok.pad_token_id

    with torch.no_grad():
        emb.weight = nn.Parameter(rows_in.to(dtype), requires_grad=emb.weight.requires_grad)
        emb.num_embeddings = n
        if getattr(emb, "padding_idx", None) is not None:
            emb.padding_idx = pad_id
        if head is not None:
            if tied:
                head.weight = emb.weight
            else:
                head.weight = nn.Parameter(rows_out.to(dtype), requires_grad=head.weight.requires_grad)
            if hasattr(head, "out_features"):
                head.out_features = n
    _set_vocab_size(model.config, n)
    ids = {
        "bos_token_id": roles_tok.bos_token_id,
        "eos_token_id": roles_tok.eos_token_id,
        "pad_token_id": pad_id,
    }
    for cfg in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        for key, value in ids.items():
            setattr(cfg, key, value)
    if model.generation_config is not None:
        for key, value in ids.items():
            setattr(model.generation_config, key, value)

    hashes = {
        "source model": sha256_tree(source_model),
        "target tokenizer (PLM directory)": sha256_tree(target_tokenizer),
        "fitted embeddings": sha256_file(embeddings),
    }
    _check_fitted_for(embeddings, hashes["source model"], hashes["target tokenizer (PLM directory)"])
    record = {
        "source_model_sha256": hashes["source model"],
        "target_tokenizer_sha256": hashes["target tokenizer (PLM directory)"],
        "embeddings_sha256": hashes["fitted embeddings"],
        "method": header.get("method"),
        "vocab_size": n,
        "hidden_size": hidden,
        "tied_head": tied,
        "adds_bos": source_adds_bos(source_tok),
        "special_tokens": {k: v for k, v in ids.items()},
    }
    if save_dtype != "auto":
        model = model.to(getattr(torch, save_dtype))
        record["saved_dtype"] = save_dtype
    meta = Meta(
        "transplant",
        inputs={"source_model": source_model, "target_tokenizer": target_tokenizer, "embeddings": embeddings},
        params={k: record[k] for k in ("vocab_size", "tied_head", "adds_bos")},
        config_hash=config_hash,
    )
    text = _card(record, embeddings, hashes, card or {})
    with atomic_dir(out_dir, meta) as tmp:
        model.save_pretrained(tmp)
        roles_tok.save_pretrained(tmp)
        (tmp / "transplant.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        (tmp / "README.md").write_text(text, encoding="utf-8")
    return {
        **record,
        "source_model": str(source_model),
        "target_tokenizer": str(target_tokenizer),
        "embeddings": str(embeddings),
    }


def _card(
    record: dict[str, Any], embeddings: Path, hashes: dict[str, str], card: dict[str, str | None]
) -> str:
    """The model card of a transferred model, from the fit report and overlap stats its sidecars name."""
    from .modelcard import _read_json, model_card, transfer_sections
    from .provenance import meta_path

    fit_meta = _read_json(meta_path(embeddings))
    fit_report = _read_json(Path(fit_meta.get("params", {}).get("report", "")) if fit_meta else None)
    overlap = (fit_meta.get("inputs") or {}).get("overlap") or {}
    overlap_meta = _read_json(meta_path(overlap["path"])) if overlap.get("path") else {}
    stats = _read_json(Path(overlap_meta.get("params", {}).get("stats", "")) if overlap_meta else None)
    method = record.get("method") or "unknown"
    name = fit_report.get("name") or method
    return model_card(
        title=f"{card.get('base_model') or 'source LLM'} with a transferred vocabulary ({name}, before training)",
        base_model=card.get("base_model"),
        language=card.get("language"),
        license=card.get("license"),
        method=method,
        sections=transfer_sections(record, fit_report, stats, hashes),
    )
