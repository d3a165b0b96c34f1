"""Hermetic fixtures: tiny tokenizers of every family and tiny models, trained/built in-process.

Nothing here reads a hub or a cache: the corpus is a committed slice of two public-domain Bibles
(Genesis 1:1-26:7, Reina-Valera 1909 and World English Bible, from Debian's sword-text-* packages).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).parent / "data"


def read_lines(name: str) -> list[str]:
    return [line.strip() for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def tiny_workflow_config(work: Path, source_tokenizer) -> dict:
    """The tiny integration config (tiny in-process source LLM, three stand-in PLMs, three methods);
    writes the LLM and a small lexicon into `work`."""
    llm = tiny_llama(source_tokenizer, work / "tiny-llm", tied=True)
    es, en = f"file:{DATA / 'bible.es.txt'}", f"file:{DATA / 'bible.en.txt'}"
    split = {"by": "hash", "valid": 0.1, "test": 0.1}
    lexicon = work / "lexicon.tsv"
    # Frequent words, so that enough pairs are one token in both tiny vocabularies for word retrieval.
    words = (
        "y and;de of;el the;la the;que that;en in;no not;su his;por for;con with;del of;le him;mi my;al to"
    )
    lexicon.write_text("".join(f"{t}\t{e}\t9\n" for t, e in (p.split() for p in words.split(";"))))
    config = {
        "seed": 0,
        "llms": {"tiny": {"source": f"dir:{llm}"}},
        "corpora": {
            "es": {"source": es, "split": split, "parallel_english": en, "lexicon": f"file:{lexicon}"},
            "en": {"source": en, "split": split},
        },
        "english_corpus": "en",
        "plms": {
            "es-bert": {"language": "es", "architecture": "encoder", "source": "standin"},
            "es-gpt2": {"language": "es", "architecture": "decoder", "source": "standin"},
            "es-t5": {"language": "es", "architecture": "encoder-decoder", "source": "standin"},
        },
        "standin_plm": {
            "vocab_size": 400,
            "hidden": 16,
            "layers": 1,
            "heads": 2,
            "steps": 5,
            "batch_size": 4,
            "seq_len": 32,
            "lr": 0.001,
        },
        "methods": {"salt": {}, "focus": {}, "procrustes": {"kind": "ols"}},
        "aux": {"dim": 8, "epochs": 1, "min_count": 2, "bucket": 5000},
        "pretrain": {
            "max_steps": 2,
            "batch_size": 2,
            "seq_len": 32,
            "save_steps": 100,
            "logging_steps": 1,
            "max_train_tokens": 5000,
        },
        "evaluate": {"max_bytes": 300, "seq_len": 64, "demo_tasks": 4, "demo_task_max_words": 16},
        "analysis": {"enabled": True, "max_sentences": 8},
    }
    return config


@pytest.fixture(scope="session")
def es_lines() -> list[str]:
    return read_lines("bible.es.txt")


@pytest.fixture(scope="session")
def en_lines() -> list[str]:
    return read_lines("bible.en.txt")


# ----------------------------------------------------------------------------------------------
# Tokenizer builders (each returns a transformers fast tokenizer)


def byte_bpe(texts, vocab_size=700):
    """GPT-2 style byte-level BPE (the library's decoder stand-in tokenizer)."""
    from salt_transfer.standin_plm import train_tokenizer

    return train_tokenizer("decoder", texts, vocab_size)


def wordpiece(texts, vocab_size=600):
    """BERT style: lowercasing WordPiece, [CLS] $A [SEP]."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def sp_unigram(texts, vocab_size=600):
    """T5/XLM-R style SentencePiece unigram with Metaspace; appends </s>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        texts,
        trainers.UnigramTrainer(
            vocab_size=vocab_size,
            unk_token="<unk>",
            special_tokens=["<pad>", "</s>", "<unk>"],
            show_progress=False,
        ),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def sp_bpe_byte_fallback(texts, vocab_size=600):
    """Llama-2/Mistral style SentencePiece BPE with <0xNN> byte fallback; prepends <s>."""
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.normalizer = normalizers.Sequence(
        [normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]
    )
    # SentencePiece pieces never cross a word start: split before every ▁.
    base.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    base.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
        ),
    )
    learned = json.loads(base.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    )
    tok.normalizer = base.normalizer
    tok.pre_tokenizer = base.pre_tokenizer
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def save_tokenizer(tok, path: Path) -> Path:
    tok.save_pretrained(path)
    return path


# ----------------------------------------------------------------------------------------------
# Tiny models


def tiny_llama(tok, path: Path, hidden=32, tied=True, seed=0, max_positions=128) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    n = max(tok.get_vocab().values()) + 1
    config = LlamaConfig(
        vocab_size=n,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tied,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_plm(tok, path: Path, arch: str, hidden=24, seed=1) -> Path:
    """A tiny encoder (bert), decoder (gpt2) or encoder-decoder (t5) PLM with the given tokenizer."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    n = max(tok.get_vocab().values()) + 1
    if arch == "bert":
        model = tf.BertForMaskedLM(
            tf.BertConfig(
                vocab_size=n,
                hidden_size=hidden,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=2 * hidden,
            )
        )
    elif arch == "gpt2":
        model = tf.GPT2LMHeadModel(
            tf.GPT2Config(vocab_size=n, n_embd=hidden, n_layer=1, n_head=2, n_positions=64)
        )
    elif arch == "t5":
        model = tf.T5ForConditionalGeneration(
            tf.T5Config(
                vocab_size=n,
                d_model=hidden,
                d_ff=2 * hidden,
                d_kv=8,
                num_layers=1,
                num_heads=2,
                decoder_start_token_id=0,
            )
        )
    else:
        raise ValueError(arch)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# ----------------------------------------------------------------------------------------------
# Session fixtures


@pytest.fixture(scope="session")
def toks(es_lines, en_lines):
    """Tokenizers: an English byte-BPE source and Spanish targets of every family."""
    return {
        "source": byte_bpe(en_lines + es_lines[:60], vocab_size=700),
        "bpe": byte_bpe(es_lines, vocab_size=500),
        "wordpiece": wordpiece(es_lines, vocab_size=500),
        "unigram": sp_unigram(es_lines, vocab_size=400),
        "bytefallback": sp_bpe_byte_fallback(es_lines, vocab_size=500),
    }


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("salt")


@pytest.fixture(scope="session")
def source_tied(toks, workdir) -> Path:
    return tiny_llama(toks["source"], workdir / "llm_tied", tied=True)


@pytest.fixture(scope="session")
def source_untied(toks, workdir) -> Path:
    return tiny_llama(toks["source"], workdir / "llm_untied", tied=False, seed=3)


@pytest.fixture(scope="session")
def plm_bert(toks, workdir) -> Path:
    return tiny_plm(toks["wordpiece"], workdir / "plm_bert", "bert")


@pytest.fixture(scope="session")
def es_corpus(workdir, es_lines) -> Path:
    path = workdir / "es.txt"
    path.write_text("\n".join(es_lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def overlap_bert(plm_bert, source_tied, workdir) -> Path:
    from salt_transfer.cli import main

    out = workdir / "overlap_bert.parquet"
    assert (
        main(
            [
                "overlap",
                "-q",
                "--target-tokenizer",
                str(plm_bert),
                "--source-tokenizer",
                str(source_tied),
                "--out",
                str(out),
                "--stats",
                str(workdir / "overlap_bert.json"),
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="session")
def aux_bert(plm_bert, es_corpus, workdir) -> Path:
    from salt_transfer.cli import main

    out = workdir / "fasttext_bert.bin"
    assert (
        main(
            [
                "aux",
                "-q",
                "--corpus",
                str(es_corpus),
                "--tokenizer",
                str(plm_bert),
                "--out",
                str(out),
                "--dim",
                "16",
                "--epochs",
                "2",
                "--min-count",
                "2",
                "--bucket",
                "20000",
            ]
        )
        == 0
    )
    return out
