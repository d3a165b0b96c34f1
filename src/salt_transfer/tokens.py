"""Tokenizers: loading, canonical token forms, special tokens by role, and vocabulary overlap.

Usage:
    salt-transfer overlap --source-tokenizer data/models/smollm2 --target-tokenizer data/models/plm-es \
        --out results/overlap/smollm2/plm-es/overlap.parquet --stats results/overlap/smollm2/plm-es/stats.json

SALT copies the source-LLM row of every token the two vocabularies share (paper §3, Step 2); how
"shared" is decided is in the paper's Appendix A, which we have not seen (docs/paper.md, section 1).
We follow FOCUS (`deepfocus.vocab_helper`) in spirit but compare *bytes*, not decoded strings:

* every token becomes a `TokenForm`: the raw bytes it stands for, minus the word-start marker, plus a
  word-start flag. SentencePiece `▁x` -> (b"x", True) and `<0xNN>` byte fallback -> (b"\\xNN", False);
  byte-level BPE `Ġx` -> GPT-2 byte alphabet decoded -> (b"x", True); WordPiece `##x` -> (b"x", False)
  and any other WordPiece token `x` -> (b"x", True) (a WordPiece token that does not continue a word
  starts one);
* two tokens are shared when their forms are equal ("exact", the default). The optional "fuzzy" match
  (FOCUS's `fuzzy_match_all`) then pairs the remaining target tokens case-insensitively, first with the
  same word-start flag, then ignoring it;
* special tokens never match by string: a target bos/eos/pad/unk/mask/sep/cls takes the source token
  with the same role (cls falls back to bos and sep to eos, the causal-LM equivalents).

Departures from deepfocus, on purpose: byte comparison makes byte-fallback tokens (`<0xC3>`) match the
byte-level token for the same byte (`Ã`), and partial UTF-8 bytes match each other instead of all
decoding to "\ufffd"; when several source tokens share a form we take an ordinary token before a
byte-fallback one, then the lowest id, as deepfocus takes "the first".
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError
from .provenance import Meta, atomic_path, check_output, write_json_atomic

LOG = logging.getLogger(__name__)

WORD_START = "\u2581"  # ▁, SentencePiece's word-start marker; also our rendering of the flag

ROLES = ("bos", "eos", "pad", "unk", "mask", "sep", "cls")
# When one target token has several roles (GPT-2's <|endoftext|> is bos, eos and unk), match the
# role that says most about how it is used: a document separator first.
_ROLE_PRIORITY = ("eos", "bos", "sep", "cls", "unk", "pad", "mask")
# Causal LMs have no cls/sep; BERT's [CLS] opens a sequence like <s> and [SEP] closes it like </s>.
_ROLE_FALLBACK = {"cls": "bos", "sep": "eos", "bos": "cls", "eos": "sep"}

MATCH_KINDS = ("exact", "fuzzy", "special")

_BYTE_FALLBACK_RE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


# ----------------------------------------------------------------------------------------------
# Loading


def load_tokenizer(spec: str | Path):
    """Load a tokenizer from a local HF directory, a `.gguf` file, a `tokenizer.json`, or a hub id.

    Hub ids must pin a revision (`org/name@<commit or tag>`); downloads respect `HF_HUB_OFFLINE`.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    text = str(spec)
    if text.startswith("hf:"):
        text = text[3:]
    path = Path(text)
    try:
        if path.is_dir():
            ggufs = sorted(path.glob("*.gguf"))
            has_hf_files = any(
                (path / f).exists()
                for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model")
            )
            if ggufs and not has_hf_files:
                return AutoTokenizer.from_pretrained(str(path), gguf_file=ggufs[0].name)
            return AutoTokenizer.from_pretrained(str(path))
        if path.is_file() and path.suffix == ".gguf":
            return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        if path.is_file() and path.name.endswith(".json"):
            return PreTrainedTokenizerFast(tokenizer_file=str(path))
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises plain Exception on bad JSON
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"tokenizer {spec}: cannot be loaded ({first[:200]})") from exc
    if "/" in text and not text.startswith((".", "/")) and not path.exists():
        repo, _, revision = text.partition("@")
        if not revision:
            raise InputError(
                f"tokenizer {spec}: a hub id needs a pinned revision, e.g. {repo}@<commit sha or tag>"
            )
        try:
            return AutoTokenizer.from_pretrained(repo, revision=revision)
        except OSError as exc:
            raise InputError(f"tokenizer {spec}: cannot be loaded from the hub ({exc})") from exc
    raise InputError(f"tokenizer {spec}: no such file or directory")


# ----------------------------------------------------------------------------------------------
# Families and canonical forms


@dataclass(frozen=True)
class Family:
    """How a tokenizer marks word starts and encodes bytes in its vocabulary strings."""

    name: str  # "byte_level" | "sentencepiece" | "wordpiece"
    continuation_prefix: str = "##"  # WordPiece only
    byte_fallback: bool = False  # SentencePiece only: `<0xNN>` tokens stand for raw bytes


@dataclass(frozen=True)
class TokenForm:
    """What a token stands for, comparable across tokenizer families."""

    form: bytes  # the bytes the token produces, without the word-start marker
    word_start: bool  # the token begins a word (▁ / Ġ / a non-## WordPiece token)
    kind: str  # "normal" | "byte" (a single raw byte: byte fallback) | "special" | "unused"


def _walk(component: Any) -> Iterable[dict]:
    """Every typed component of a tokenizers JSON fragment (Sequences flattened)."""
    if isinstance(component, dict):
        if "type" in component:
            yield component
        for value in component.values():
            yield from _walk(value)
    elif isinstance(component, list):
        for value in component:
            yield from _walk(value)


def backend_json(tok) -> dict:
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise InputError(
            f"tokenizer {getattr(tok, 'name_or_path', tok)!r} has no fast (tokenizers) backend; "
            "save it with a tokenizer.json"
        )
    return json.loads(backend.to_str())


def tokenizer_family(tok) -> Family:
    """Detect the vocabulary convention from the tokenizer's own pipeline (not from token statistics)."""
    spec = backend_json(tok)
    model = spec.get("model") or {}
    if model.get("type") == "WordPiece":
        return Family("wordpiece", continuation_prefix=model.get("continuing_subword_prefix") or "##")
    parts = [spec.get(k) for k in ("normalizer", "pre_tokenizer", "decoder")]
    types = [c.get("type") for c in _walk(parts)]
    if "ByteLevel" in types:
        return Family("byte_level")
    uses_metaspace = "Metaspace" in types or any(
        c.get("type") == "Replace" and WORD_START in json.dumps(c, ensure_ascii=False) for c in _walk(parts)
    )
    if uses_metaspace:
        return Family("sentencepiece", byte_fallback=bool(model.get("byte_fallback")))
    # Last resort for hand-built tokenizers without a pipeline: look at the vocabulary itself.
    vocab = tok.get_vocab()
    counts = {
        "sentencepiece": sum(t.startswith(WORD_START) for t in vocab),
        "byte_level": sum(t.startswith("\u0120") for t in vocab),
        "wordpiece": sum(t.startswith("##") for t in vocab),
    }
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        raise InputError(
            f"tokenizer {tok.name_or_path!r}: cannot tell its family (no ByteLevel/Metaspace/WordPiece "
            "component and no ▁/Ġ/## tokens)"
        )
    LOG.warning("tokenizer %s: family guessed from vocabulary markers: %s", tok.name_or_path, best)
    return Family(best)


@lru_cache(maxsize=1)
def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's `bytes_to_unicode`: printable stand-in character -> raw byte."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def vocab_size(tok) -> int:
    """Number of embedding rows the tokenizer addresses: highest id + 1 (ids may have holes)."""
    return max(tok.get_vocab().values()) + 1


def special_token_ids(tok) -> set[int]:
    ids = set(getattr(tok, "all_special_ids", []) or [])
    for idx, added in (getattr(tok, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(idx))
    return ids


def special_roles(tok) -> dict[str, int]:
    """Role -> token id for the roles this tokenizer defines."""
    roles = {}
    for role in ROLES:
        try:
            idx = getattr(tok, f"{role}_token_id", None)
        except (AttributeError, KeyError, ValueError):
            idx = None
        if isinstance(idx, int) and idx >= 0:
            roles[role] = idx
    return roles


def _plain_form(text: str) -> tuple[bytes, bool]:
    """Form of a string token written in plain text (added tokens): a leading space starts a word."""
    if text.startswith(" "):
        return text[1:].encode("utf-8"), True
    return text.encode("utf-8"), False


def token_form(token: str, family: Family, byte_decoder: dict[str, int] | None = None) -> TokenForm:
    """Canonical form of one vocabulary string of a non-special token."""
    if family.name == "byte_level":
        decoder = byte_decoder or _gpt2_byte_decoder()
        try:
            raw = bytes(decoder[c] for c in token)
        except KeyError:  # a token outside the byte alphabet (an added token): plain text
            form, start = _plain_form(token)
            return TokenForm(form, start, "normal")
        if raw.startswith(b" "):
            return TokenForm(raw[1:], True, "normal")
        return TokenForm(raw, False, "normal")
    if family.name == "sentencepiece":
        if family.byte_fallback:
            m = _BYTE_FALLBACK_RE.fullmatch(token)
            if m:
                return TokenForm(bytes([int(m.group(1), 16)]), False, "byte")
        start = token.startswith(WORD_START)
        text = token[1:] if start else token
        # Pieces spanning several words (Gemma's "▁▁", XLM-R's "▁of▁the") keep inner markers as spaces.
        return TokenForm(text.replace(WORD_START, " ").encode("utf-8"), start, "normal")
    if family.name == "wordpiece":
        prefix = family.continuation_prefix
        if token.startswith(prefix) and len(token) > len(prefix):
            return TokenForm(token[len(prefix) :].encode("utf-8"), False, "normal")
        return TokenForm(token.encode("utf-8"), True, "normal")
    raise ValueError(f"unknown tokenizer family {family.name}")


def canonical_forms(tok, family: Family | None = None) -> list[TokenForm]:
    """Canonical form of every id in [0, vocab_size): specials and id holes are marked, not compared."""
    family = family or tokenizer_family(tok)
    n = vocab_size(tok)
    specials = special_token_ids(tok)
    added = getattr(tok, "added_tokens_decoder", {}) or {}
    forms = [TokenForm(b"", False, "unused")] * n
    decoder = _gpt2_byte_decoder()
    for token, idx in tok.get_vocab().items():
        if idx in specials:
            forms[idx] = TokenForm(token.encode("utf-8"), False, "special")
        elif idx in added:
            # Added (non-special) tokens are stored as plain text, not in the model's vocabulary alphabet.
            form, start = _plain_form(added[idx].content)
            forms[idx] = TokenForm(form, start, "normal")
        else:
            forms[idx] = token_form(token, family, decoder)
    return forms


def render_bytes(form: bytes) -> str:
    """Readable, whitespace-free text for a byte string.

    Valid UTF-8 stays as is; invalid bytes, whitespace and control characters become `<0xNN>`, so the
    result is unique per byte string (up to literal `<0xNN>` text) and safe as a fastText "word".
    """
    try:
        text = form.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    # Most tokens are valid UTF-8 without whitespace or control characters: returned as they are
    # (0.8 s of Python for the 250k XLM-R tokens otherwise). Space is the only whitespace character
    # str.isprintable() accepts (checked over all code points).
    if text is not None and " " not in text and text.isprintable():
        return text
    out: list[str] = []
    i = 0
    while i < len(form):
        try:
            chunk = form[i:].decode("utf-8")
            bad_at = len(form)
        except UnicodeDecodeError as err:
            chunk = form[i : i + err.start].decode("utf-8")
            bad_at = i + err.start
        for ch in chunk:
            if ch.isspace() or not ch.isprintable():
                out.extend(f"<0x{b:02X}>" for b in ch.encode("utf-8"))
            else:
                out.append(ch)
        if bad_at < len(form):
            out.append(f"<0x{form[bad_at]:02X}>")
            i = bad_at + 1
        else:
            break
    return "".join(out)


def render(form: TokenForm) -> str:
    """Canonical string of a token: `▁` for the word-start flag, then `render_bytes` of its bytes."""
    return (WORD_START if form.word_start else "") + render_bytes(form.form)


# ----------------------------------------------------------------------------------------------
# Overlap


@dataclass
class Overlap:
    """Shared tokens of a (target, source) tokenizer pair."""

    table: pd.DataFrame  # target_id, source_id, target_token, source_token, canonical, word_start, match
    stats: dict[str, Any]


def _source_index(forms: list[TokenForm], key) -> dict:
    """Map key(form) -> source id, preferring ordinary tokens over byte tokens, then the lowest id."""
    index: dict = {}
    order = sorted(range(len(forms)), key=lambda i: (forms[i].kind != "normal", i))
    for idx in order:
        f = forms[idx]
        if f.kind not in ("normal", "byte"):
            continue
        k = key(f)
        if k is not None and k not in index:
            index[k] = idx
    return index


def _fuzzy_text(f: TokenForm) -> str | None:
    if f.kind != "normal" or not f.form:
        return None
    return f.form.decode("utf-8", errors="surrogateescape").casefold()


def _match_special(target_roles: dict[str, int], source_roles: dict[str, int]) -> dict[int, int]:
    by_id: dict[int, list[str]] = {}
    for role, idx in target_roles.items():
        by_id.setdefault(idx, []).append(role)
    matches = {}
    for idx, roles in by_id.items():
        for role in sorted(roles, key=_ROLE_PRIORITY.index):
            for candidate in (role, _ROLE_FALLBACK.get(role)):
                if candidate in source_roles:
                    matches[idx] = source_roles[candidate]
                    break
            if idx in matches:
                break
    return matches


def compute_overlap(target_tok, source_tok, fuzzy: bool = False) -> Overlap:
    """Shared tokens between a target (PLM) tokenizer and a source (LLM) tokenizer.

    Raises `InputError` when nothing is shared: a transfer from an empty overlap is not SALT.
    """
    t_family, s_family = tokenizer_family(target_tok), tokenizer_family(source_tok)
    t_forms, s_forms = canonical_forms(target_tok, t_family), canonical_forms(source_tok, s_family)
    exact = _source_index(s_forms, lambda f: (f.form, f.word_start) if f.form or f.word_start else None)
    fuzzy_same = _source_index(s_forms, lambda f: (_fuzzy_text(f), f.word_start) if _fuzzy_text(f) else None)
    fuzzy_any = _source_index(s_forms, _fuzzy_text)
    special = _match_special(special_roles(target_tok), special_roles(source_tok))

    t_tokens = {i: t for t, i in target_tok.get_vocab().items()}
    s_tokens = {i: t for t, i in source_tok.get_vocab().items()}
    rows = []
    for tid, f in enumerate(t_forms):
        sid, kind = None, None
        if f.kind == "special":
            sid = special.get(tid)
            kind = "special" if sid is not None else None
        elif f.kind in ("normal", "byte"):
            sid = exact.get((f.form, f.word_start)) if (f.form or f.word_start) else None
            kind = "exact" if sid is not None else None
            if sid is None and fuzzy and (text := _fuzzy_text(f)):
                sid = fuzzy_same.get((text, f.word_start), fuzzy_any.get(text))
                kind = "fuzzy" if sid is not None else None
        if sid is not None:
            rows.append(
                (tid, sid, t_tokens.get(tid, ""), s_tokens.get(sid, ""), render(f), f.word_start, kind)
            )
    table = pd.DataFrame(
        rows,
        columns=[
            "target_id",
            "source_id",
            "target_token",
            "source_token",
            "canonical",
            "word_start",
            "match",
        ],
    ).astype({"target_id": "int64", "source_id": "int64", "word_start": "bool"})
    n_target, n_source = len(t_forms), len(s_forms)
    if table.empty:
        raise InputError(
            f"tokenizers {target_tok.name_or_path!r} (target) and {source_tok.name_or_path!r} (source) share "
            "no token: check that both paths are the tokenizers you meant"
        )
    by_kind = {k: int((table["match"] == k).sum()) for k in MATCH_KINDS}
    t_kinds = pd.Series([f.kind for f in t_forms])
    stats = {
        "n_target": n_target,
        "n_source": n_source,
        "n_shared": len(table),
        "n_new": n_target - len(table),
        "target_coverage": len(table) / n_target,
        "by_match": by_kind,
        "target_family": t_family.name,
        "source_family": s_family.name,
        "target_byte_tokens": int((t_kinds == "byte").sum()),
        "target_byte_tokens_shared": int(table["target_id"].map(lambda i: t_forms[i].kind == "byte").sum()),
        "target_special_tokens": int((t_kinds == "special").sum()),
        "target_unused_ids": int((t_kinds == "unused").sum()),
        "fuzzy": fuzzy,
    }
    return Overlap(table=table, stats=stats)


def write_overlap(
    overlap: Overlap,
    parquet_path: str | Path,
    stats_path: str | Path | None = None,
    meta: Meta | None = None,
) -> None:
    """Write overlap.parquet (sizes in its schema metadata, so it stands alone; its sidecar with it
    when `meta` is given) and stats.json."""
    table = pa.Table.from_pandas(overlap.table, preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[b"salt_transfer"] = json.dumps(
        {k: overlap.stats[k] for k in ("n_target", "n_source", "n_shared", "fuzzy")}
    ).encode()
    table = table.replace_schema_metadata(schema_meta)
    with atomic_path(parquet_path, meta) as tmp:
        pq.write_table(table, tmp)
    if stats_path is not None:
        write_json_atomic(stats_path, overlap.stats)


def tokenizer_fingerprint(spec: str | Path) -> str | None:
    """sha256 over a tokenizer's own files (a directory's tokenizer files, or one tokenizer file):
    what `fit` and `fasttext` compare to refuse an overlap or a fastText model made for another
    tokenizer. None for hub ids and GGUF-only directories (nothing cheap to hash)."""
    import hashlib

    from .fetch import TOKENIZER_FILES

    path = Path(str(spec))
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = [path / n for n in TOKENIZER_FILES if (path / n).is_file()]
    else:
        return None
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def check_made_for(artifact: str | Path, role: str, given: str | Path, what: str) -> None:
    """Refuse `artifact` when its sidecar records a tokenizer fingerprint (params `<role>_fingerprint`)
    other than that of the tokenizer `given` now: it was made for another tokenizer (the same vocabulary
    size would otherwise let its ids be used silently under the wrong tokens)."""
    from .provenance import meta_path

    side = meta_path(artifact)
    if not side.is_file():
        LOG.warning("%s has no sidecar: cannot check that it was made for %s", artifact, given)
        return
    try:
        recorded = json.loads(side.read_text(encoding="utf-8")).get("params", {}).get(f"{role}_fingerprint")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return
    now = tokenizer_fingerprint(given)
    if recorded and now and recorded != now:
        raise InputError(
            f"{what} {artifact} was made for another {role.replace('_', ' ')} than {given} "
            "(its sidecar records different tokenizer files); recompute it for these inputs"
        )


def overlap_files(
    target_tokenizer: str | Path,
    source_tokenizer: str | Path,
    out: str | Path,
    stats: str | Path,
    fuzzy: bool = False,
    config_hash: str | None = None,
) -> Overlap:
    """Load both tokenizers, compute their overlap, write overlap.parquet (+ sidecar) and stats.json."""
    check_output(out)
    check_output(stats, label="--stats")
    target = load_tokenizer(target_tokenizer)
    source = load_tokenizer(source_tokenizer)
    result = compute_overlap(target, source, fuzzy=fuzzy)
    meta = Meta(
        "overlap",
        inputs={"target_tokenizer": target_tokenizer, "source_tokenizer": source_tokenizer},
        params={
            "fuzzy": fuzzy,
            "stats": str(stats),
            "target_tokenizer_fingerprint": tokenizer_fingerprint(target_tokenizer),
            "source_tokenizer_fingerprint": tokenizer_fingerprint(source_tokenizer),
        },
        config_hash=config_hash,
    )
    write_overlap(result, out, stats, meta)
    return result


def read_overlap(parquet_path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read overlap.parquet -> (table, {"n_target", "n_source", "n_shared", "fuzzy"})."""
    path = Path(parquet_path)
    if not path.is_file():
        raise InputError(f"overlap {path}: no such file (run `salt-transfer overlap` first)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"overlap {path}: not a readable parquet file ({exc})") from exc
    raw = (table.schema.metadata or {}).get(b"salt_transfer")
    if raw is None:
        raise InputError(
            f"overlap {path}: missing salt_transfer metadata; rewrite it with `salt-transfer overlap`"
        )
    df = table.to_pandas()
    required = {"target_id", "source_id", "match"}
    if not required <= set(df.columns):
        raise InputError(f"overlap {path}: columns {sorted(required - set(df.columns))} missing")
    if df.empty:
        raise InputError(f"overlap {path}: no shared tokens")
    return df, json.loads(raw)
