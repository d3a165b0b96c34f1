"""Stand-in target-language PLMs for offline runs: a tokenizer and a small model trained on the corpus.

Usage:
    salt-transfer standin-plm --arch encoder --corpus data/corpora/es/train.txt --out results/plm/es-bert/model

No Spanish (or any target-language) PLM weights install offline, so the demo builds its own, one per
architecture the SALT paper compares (Encoder, Decoder, Encoder-Decoder; paper §2.1 of the notes):

  encoder          BERT-style: cased WordPiece tokenizer, BertForMaskedLM, masked-LM objective (15%)
  decoder          GPT-2-style: byte-level BPE tokenizer, GPT2LMHeadModel, causal-LM objective
  encoder-decoder  T5-style: SentencePiece unigram tokenizer with sentinels, T5ForConditionalGeneration,
                   span-corruption objective (15% of tokens in spans of mean length 3)

The tokenizers are deterministic (same corpus, same bytes in any process): WordPiece pieces are
learned with the BPE trainer and unigram pieces with SentencePiece, because HF's own WordPiece and
Unigram trainers are not (see `_wordpiece`, `_unigram`). They are stand-ins, not the paper's PLMs: minutes of CPU training on a few MB of text give
embeddings with real but weak distributional structure. On a cluster the config names hub PLMs
instead and this command is not used.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .corpora import read_lines
from .errors import InputError
from .progress import track
from .provenance import Meta, atomic_dir, check_output
from .settings import StandinOptions

LOG = logging.getLogger(__name__)

ARCHS = ("encoder", "decoder", "encoder-decoder")
N_SENTINELS = 32  # T5 <extra_id_N> tokens available to span corruption


def train_tokenizer(arch: str, lines: list[str], vocab_size: int):
    """A fresh tokenizer of the family each architecture uses in practice."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if arch == "encoder":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = _wordpiece(lines, vocab_size, specials)
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
        )
    if arch == "decoder":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        tok.train_from_iterator(
            lines,
            trainers.BpeTrainer(
                vocab_size=vocab_size,
                special_tokens=["<|endoftext|>"],
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                show_progress=False,
            ),
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
            unk_token="<|endoftext|>",
        )
    if arch == "encoder-decoder":
        sentinels = [f"<extra_id_{i}>" for i in range(N_SENTINELS)]
        tok = _unigram(lines, vocab_size, ["<pad>", "</s>", "<unk>", *sentinels])
        eos = tok.token_to_id("</s>")
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", eos)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            additional_special_tokens=sentinels,
        )
    raise InputError(f"--arch {arch!r}: choose one of {ARCHS}")


def build_model(arch: str, tok, opts: StandinOptions):
    import transformers as tf

    n = len(tok)
    common = {"vocab_size": n}
    if arch == "encoder":
        config = tf.BertConfig(
            **common,
            hidden_size=opts.hidden,
            num_hidden_layers=opts.layers,
            num_attention_heads=opts.heads,
            intermediate_size=4 * opts.hidden,
            max_position_embeddings=max(512, opts.seq_len + 2),
            pad_token_id=tok.pad_token_id,
        )
        return tf.BertForMaskedLM(config)
    if arch == "decoder":
        config = tf.GPT2Config(
            **common,
            n_embd=opts.hidden,
            n_layer=opts.layers,
            n_head=opts.heads,
            n_positions=max(512, opts.seq_len),
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        return tf.GPT2LMHeadModel(config)
    config = tf.T5Config(
        **common,
        d_model=opts.hidden,
        d_ff=4 * opts.hidden,
        d_kv=opts.hidden // opts.heads,
        num_layers=opts.layers,
        num_heads=opts.heads,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    return tf.T5ForConditionalGeneration(config)


def _token_stream(tok, lines: list[str]) -> torch.Tensor:
    ids = tok(lines, add_special_tokens=False)["input_ids"]
    sep = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    flat = [i for seq in ids for i in (*seq, sep)]
    return torch.tensor(flat, dtype=torch.long)


def _mlm_batch(block: torch.Tensor, tok, g: torch.Generator) -> dict:
    """BERT masking: 15% of positions; of those 80% [MASK], 10% random, 10% kept."""
    labels = block.clone()
    chosen = torch.rand(block.shape, generator=g) < 0.15
    labels[~chosen] = -100
    inputs = block.clone()
    roll = torch.rand(block.shape, generator=g)
    inputs[chosen & (roll < 0.8)] = tok.mask_token_id
    rand = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[rand] = torch.randint(len(tok), (int(rand.sum()),), generator=g)
    return {"input_ids": inputs, "labels": labels}


def _span_batch(block: torch.Tensor, tok, g: torch.Generator) -> dict:
    """T5 span corruption: spans of mean length 3 covering ~15% of tokens become sentinels."""
    sentinel_ids = tok.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(N_SENTINELS)])
    inputs, targets = [], []
    for row in block.tolist():
        starts = torch.rand(len(row), generator=g) < 0.05  # 5% starts x mean length 3 ~ 15% masked
        src, tgt, i, used = [], [], 0, 0
        while i < len(row):
            if starts[i] and used < N_SENTINELS:
                length = 1 + int(torch.randint(5, (1,), generator=g))  # 1..5, mean 3
                src.append(sentinel_ids[used])
                tgt += [sentinel_ids[used], *row[i : i + length]]
                used, i = used + 1, i + length
            else:
                src.append(row[i])
                i += 1
        inputs.append(src + [tok.eos_token_id])
        targets.append(tgt + [tok.eos_token_id])
    pad = tok.pad_token_id

    def stack(seqs, fill):
        width = max(len(s) for s in seqs)
        return torch.tensor([s + [fill] * (width - len(s)) for s in seqs])

    input_ids = stack(inputs, pad)
    return {
        "input_ids": input_ids,
        "attention_mask": (input_ids != pad).long(),
        "labels": stack(targets, -100),
    }


def train_standin_plm(
    arch: str,
    corpus: str | Path,
    out_dir: str | Path,
    opts: StandinOptions | None = None,
    progress: bool = True,
    config_hash: str | None = None,
) -> dict:
    """Train tokenizer + model on `corpus`; save an HF directory with `train_plm.json` and its sidecar."""
    opts = opts or StandinOptions()
    if arch not in ARCHS:
        raise InputError(f"--arch {arch!r}: choose one of {ARCHS}")
    check_output(out_dir, directory=True)
    lines = read_lines(corpus)
    if not lines:
        raise InputError(f"corpus {corpus}: empty")
    torch.manual_seed(opts.seed)
    g = torch.Generator().manual_seed(opts.seed)
    t0 = time.perf_counter()
    tok = train_tokenizer(arch, lines, opts.vocab_size)
    stream = _token_stream(tok, lines)
    n_blocks = len(stream) // opts.seq_len
    if n_blocks < opts.batch_size:
        raise InputError(
            f"corpus {corpus}: {len(stream)} tokens is too little for batches of "
            f"{opts.batch_size} x {opts.seq_len}"
        )
    blocks = stream[: n_blocks * opts.seq_len].view(n_blocks, opts.seq_len)
    model = build_model(arch, tok, opts)
    optimizer = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=0.01)
    warmup = max(1, opts.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / opts.steps))),
    )
    losses = []
    model.train()
    steps = track(range(opts.steps), f"train {arch} stand-in", bar=progress, unit="step")
    for _ in steps:
        batch_rows = blocks[torch.randint(n_blocks, (opts.batch_size,), generator=g)]
        if arch == "encoder":
            batch = _mlm_batch(batch_rows, tok, g)
        elif arch == "decoder":
            batch = {"input_ids": batch_rows, "labels": batch_rows}
        else:
            batch = _span_batch(batch_rows, tok, g)
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    record = {
        "arch": arch,
        "model_class": type(model).__name__,
        "options": asdict(opts),
        "n_train_tokens": len(stream),
        "vocab_size": len(tok),
        "loss_first_10": sum(losses[:10]) / min(10, len(losses)),
        "loss_last_10": sum(losses[-10:]) / min(10, len(losses)),
        "seconds": round(time.perf_counter() - t0, 1),
        "note": "stand-in PLM trained briefly on the target corpus; not a pretrained hub PLM",
    }
    meta = Meta(
        "standin-plm",
        inputs={"corpus": corpus},
        params={"arch": arch, **asdict(opts)},
        seed=opts.seed,
        device="cpu",
        config_hash=config_hash,
    )
    with atomic_dir(out_dir, meta) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "train_plm.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


# Word-start mark for learning WordPiece pieces with the BPE trainer: a private-use character, so
# it cannot collide with corpus text.
_WORD_START = "\ue000"


def _wordpiece(lines: list[str], vocab_size: int, specials: list[str]):
    """A cased BERT WordPiece tokenizer, learned deterministically.

    HF's WordPieceTrainer is not deterministic (huggingface/tokenizers#1794: the ids of its "##"
    pieces follow hash-map order and break ties between merges), and a stand-in PLM that changes
    between runs would change every hash downstream. Its BPE trainer is deterministic, so the pieces
    are learned with BPE on words that carry a word-start mark and then written as a WordPiece
    vocabulary: a piece with the mark starts a word ("de"), one without continues it ("##ción").
    Every character is kept in both roles, so no word of the corpus maps to [UNK].
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizer
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.BertPreTokenizer(),
            pre_tokenizers.Metaspace(replacement=_WORD_START, prepend_scheme="always", split=False),
        ]
    )
    bpe.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False))
    learned = sorted(bpe.get_vocab().items(), key=lambda item: item[1])  # alphabet, then merges
    chars = [t for t, _ in learned if len(t) == 1 and t != _WORD_START]
    pieces = [*specials, *chars, *(f"##{c}" for c in chars)]
    for token, _ in learned:
        if len(token) > 1:
            pieces.append(token[1:] if token.startswith(_WORD_START) else f"##{token}")
    vocab: dict[str, int] = {}
    for piece in pieces:
        if piece and piece != "##" and piece not in vocab and len(vocab) < vocab_size:
            vocab[piece] = len(vocab)
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(specials)  # whole tokens, never split (they are already in the vocabulary)
    return tok


def _unigram(lines: list[str], vocab_size: int, specials: list[str]):
    """A T5-style unigram tokenizer learned by SentencePiece itself (one thread: deterministic).

    HF's UnigramTrainer is not deterministic (piece order and scores to ~1e-3 vary between runs),
    so the pieces and scores come from the `sentencepiece` trainer, as T5's own vocabulary did,
    with identity normalization (the text is already clean) and full character coverage.
    """
    import io

    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([line for line in lines if line.strip()]),
        model_writer=proto,
        model_type="unigram",
        vocab_size=vocab_size - len(specials) + 1,  # + its own <unk>, which ours replaces
        hard_vocab_limit=False,  # a small corpus may support fewer pieces
        normalization_rule_name="identity",
        character_coverage=1.0,
        num_threads=1,
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    vocab = [(piece, 0.0) for piece in specials]
    vocab += [(sp.id_to_piece(i), sp.get_score(i)) for i in range(1, sp.get_piece_size())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=specials.index("<unk>"), byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.add_special_tokens(specials)
    return tok
