"""Cross-lingual alignment analyses of Conneau, Wu et al., "Emerging Cross-lingual Structure in
Pretrained Language Models" (ACL 2020, §5), applied to transferred models.

Usage (standalone; the workflow runs the same computation as the `alignment` task of
`salt-transfer evaluate`, on the weights that job has already loaded):
    salt-transfer analyze --model results/cpt/smollm2-135m/es-bert/salt/model --source-model data/models/smollm2-135m \
        --parallel data/corpora/es/parallel.test.tsv --lexicon data/corpora/es/lexicon.tsv \
        --source-states results/analysis/source/smollm2-135m/es/states.safetensors \
        --out results/eval/cpt/smollm2-135m/es-bert/salt/alignment.json

Three measurements between the transferred model on target-language text and the source LLM on
English (docs/paper.md, section 3):

* word translation retrieval: target words' input-embedding rows in the transferred model against
  English words' rows in the source LLM, with a bilingual lexicon. Only words that are one token on
  both sides count (the paper keeps single-subword words). Precision@1 by nearest neighbour (cosine)
  and by CSLS with k = 10 (Conneau et al. 2018), directly (a transfer method puts both vocabularies
  in one space, so direct retrieval measures it) and after an orthogonal Procrustes map fitted on a
  disjoint training part of the lexicon (as the paper does for independently trained models);
* sentence retrieval: precision@1 per layer of target sentences retrieving their English
  translations by cosine of mean-pooled hidden states (special tokens excluded);
* linear CKA per layer between the two sets of mean-pooled representations, centred as in
  Kornblith et al. 2019 (the paper's printed formula omits the centring; docs/paper.md, section 3).

Departures: the paper aligns separate monolingual BERTs and applies iterative normalization before
Procrustes; here the "two models" are the source LLM and its transferred copy, and vectors are only
length-normalized. The paper's retrieval metric for words is assumed to be precision@1 [I].
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from .corpora import read_parallel
from .errors import InputError
from .provenance import sha256_tree, write_json_atomic
from .tokens import canonical_forms, load_tokenizer
from .weights import load_causal_lm, resolve_device

LOG = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Measures (pure functions)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two [n, d] representations of the same n items (columns centred first).

    CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F); invariant to orthogonal transforms and isotropic
    scaling of either side, 1 for identical representations.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same items on both sides ({x.shape[0]} vs {y.shape[0]})")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.T @ x).square().sum()
    norm = (x.T @ x).square().sum().sqrt() * (y.T @ y).square().sum().sqrt()
    return float(cross / norm) if norm > 0 else float("nan")


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = torch.nn.functional.normalize(a.double(), dim=1)
    b = torch.nn.functional.normalize(b.double(), dim=1)
    return a @ b.T


def csls(sim: torch.Tensor, k: int = 10) -> torch.Tensor:
    """CSLS(x, y) = 2 cos(x, y) - r_tgt(x) - r_src(y), r = mean cosine of the k nearest neighbours.

    Penalizes hubs, vectors close to everything (Conneau et al. 2018, "Word Translation Without
    Parallel Data"). `sim` is the [n_src, n_tgt] cosine matrix; k is capped by the sizes.
    """
    k_t, k_s = min(k, sim.shape[1]), min(k, sim.shape[0])
    r_src_side = sim.topk(k_t, dim=1).values.mean(
        1
    )  # each query's mean similarity to its k nearest candidates
    r_tgt_side = sim.topk(k_s, dim=0).values.mean(
        0
    )  # each candidate's mean similarity to its k nearest queries
    return 2 * sim - r_src_side.unsqueeze(1) - r_tgt_side.unsqueeze(0)


def precision_at_1(scores: torch.Tensor, gold: torch.Tensor) -> float:
    """Share of queries (rows) whose best-scoring candidate (column) is the gold one."""
    if len(gold) == 0:
        return float("nan")
    return float((scores.argmax(dim=1) == gold).double().mean())


def orthogonal_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """W with orthonormal rows/columns maximizing trace(W^T X^T Y): x W ~ y (Procrustes)."""
    u, _, vh = torch.linalg.svd(x.double().T @ y.double(), full_matrices=False)
    return u @ vh


# ----------------------------------------------------------------------------------------------
# Lexicon


def single_token_ids(tokenizer) -> dict[str, int]:
    """Word -> id of the token that is exactly that word at a word start (▁word / Ġword / word)."""
    out: dict[str, int] = {}
    for idx, form in enumerate(canonical_forms(tokenizer)):
        if form.kind == "normal" and form.word_start and form.form:
            word = form.form.decode("utf-8", errors="ignore")
            if word and word.isalpha():
                out.setdefault(word, idx)
    return out


def read_lexicon(path: str | Path) -> list[tuple[str, str]]:
    """(target word, English word) pairs from a TSV (first two columns)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"lexicon {path}: no such file")
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) >= 2 and cols[0] and cols[1]:
            pairs.append((cols[0], cols[1]))
    if not pairs:
        raise InputError(f"lexicon {path}: no word pairs")
    return pairs


def word_retrieval(
    tgt_rows: torch.Tensor,
    en_rows: torch.Tensor,
    gold: torch.Tensor,
    train_fraction: float = 0.5,
    seed: int = 0,
    k: int = 10,
) -> dict[str, Any]:
    """P@1 of target-word rows retrieving their translation among all English candidate rows.

    tgt_rows [n, d] are queries, en_rows [m, d] the distinct English candidates, gold [n] the index
    of each query's translation. Queries are split into a training part (for the Procrustes map)
    and a test part; every P@1 is measured on the test part, so direct and mapped retrieval compare.
    """
    n = len(tgt_rows)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    n_train = int(n * train_fraction)
    train, test = order[:n_train], order[n_train:]
    result: dict[str, Any] = {
        "n_pairs": n,
        "n_candidates": len(en_rows),
        "n_train": n_train,
        "n_test": len(test),
    }
    if len(test) == 0:
        return result
    sim = cosine_matrix(tgt_rows[test], en_rows)
    result.update(p1_nn=precision_at_1(sim, gold[test]), p1_csls=precision_at_1(csls(sim, k), gold[test]))
    if n_train >= 2 and tgt_rows.shape[1] == en_rows.shape[1]:
        src = torch.nn.functional.normalize(tgt_rows.double(), dim=1)
        dst = torch.nn.functional.normalize(en_rows.double(), dim=1)
        w = orthogonal_map(src[train], dst[gold[train]])
        mapped = cosine_matrix(src[test] @ w, dst)
        result.update(
            p1_nn_procrustes=precision_at_1(mapped, gold[test]),
            p1_csls_procrustes=precision_at_1(csls(mapped, k), gold[test]),
        )
    return result


# ----------------------------------------------------------------------------------------------
# Sentence representations


@torch.no_grad()
def mean_pooled_states(
    model, tokenizer, sentences: list[str], batch_size: int = 16, device="cpu"
) -> torch.Tensor:
    """[layers + 1, n, hidden] mean over each sentence's tokens of every layer's hidden states.

    Tokens are encoded without special tokens (the paper excludes them); layer 0 is the embedding
    output.
    """
    chunks = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(sentences), batch_size):
        batch = [
            tokenizer(s, add_special_tokens=False)["input_ids"] or [pad]
            for s in sentences[start : start + batch_size]
        ]
        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
        m = mask.to(device).unsqueeze(-1).float()
        pooled = [(h.float() * m).sum(1) / m.sum(1) for h in out.hidden_states]
        chunks.append(torch.stack(pooled).cpu())
    return torch.cat(chunks, dim=1)


def layerwise(tgt_states: torch.Tensor, en_states: torch.Tensor) -> dict[str, list[float]]:
    """Sentence-retrieval P@1 and CKA for every layer (both sides [layers, n, hidden])."""
    gold = torch.arange(tgt_states.shape[1])
    p1, cka = [], []
    for t, e in zip(tgt_states, en_states):
        p1.append(precision_at_1(cosine_matrix(t, e), gold))
        cka.append(linear_cka(t, e))
    return {"sentence_p1": p1, "cka": cka}


# ----------------------------------------------------------------------------------------------
# End to end


def source_states(
    source_model: str | Path,
    parallel: str | Path,
    out: str | Path,
    max_sentences: int = 0,
    device: str = "cpu",
    config_hash: str | None = None,
) -> dict[str, Any]:
    """Mean-pooled states of the source LLM on the English side of the parallel pairs (cached once),
    written with their sidecar."""
    from safetensors.torch import save_file

    from .provenance import Meta, atomic_path, check_output

    check_output(out)
    device = str(resolve_device(device))  # auto: CUDA when present, else CPU
    pairs = read_parallel(parallel)[: max_sentences or None]
    model, tok = load_causal_lm(source_model, device)
    states = mean_pooled_states(model, tok, [en for _, _, en in pairs], device=device)
    meta = Meta(
        "source-states",
        inputs={"source_model": source_model, "parallel": parallel},
        params={"max_sentences": max_sentences},
        device=str(device),
        config_hash=config_hash,
    )
    with atomic_path(out, meta) as tmp:
        save_file({"states": states.contiguous()}, str(tmp), metadata={"n": str(len(pairs))})
    return {"layers": states.shape[0], "sentences": len(pairs)}


def alignment_record(
    model,
    tok,
    model_dir: str | Path,
    source_model: str | Path,
    parallel: str | Path,
    lexicon: str | Path,
    source_states_path: str | Path,
    max_sentences: int = 0,
    seed: int = 0,
    device: str = "cpu",
    model_sha256: str | None = None,
) -> dict[str, Any]:
    """Word retrieval, per-layer sentence retrieval and CKA for one loaded transferred model.

    `model`/`tok` are the model in `model_dir`, already loaded (evaluate runs this next to its other
    tasks on the same weights). Returns the record `analyze` writes. `model_sha256`, when the caller
    has already hashed `model_dir` (evaluate has), saves hashing it again (~0.2 s per 100 MB).
    """
    from safetensors.torch import load_file

    from .weights import embedding_layout

    t0 = time.perf_counter()
    model_dir = Path(model_dir)
    src_tok = load_tokenizer(source_model)

    # Words: single-token on both sides; identical strings are left out (they measure copying of
    # shared tokens, not transfer); one English candidate per distinct English word.
    tgt_ids, en_ids = single_token_ids(tok), single_token_ids(src_tok)
    queries: dict[str, str] = {}
    for t, e in read_lexicon(lexicon):
        if t in tgt_ids and e in en_ids and t != e:
            queries.setdefault(t, e)  # the first listed translation of each target word
    words: dict[str, Any] = {"n_lexicon_single_token": len(queries)}
    if len(queries) >= 4:
        english = sorted(set(queries.values()))
        gold = torch.tensor([english.index(e) for e in queries.values()])
        tgt_rows = model.get_input_embeddings().weight.detach().cpu()[[tgt_ids[t] for t in queries]]
        en_rows = embedding_layout(source_model, causal_lm=True).input.rows(
            torch.tensor([en_ids[e] for e in english])
        )
        words.update(word_retrieval(tgt_rows, en_rows, gold, seed=seed))
    else:
        LOG.warning(
            "lexicon %s: %d pairs are one token on both sides (4 needed): no word retrieval",
            lexicon,
            len(queries),
        )

    # Sentences: the cached English states of the source LLM against the transferred model's.
    pairs_s = read_parallel(parallel)[: max_sentences or None]
    if not Path(source_states_path).is_file():
        raise InputError(f"source states {source_states_path}: no such file (run source-states first)")
    en_states = load_file(str(source_states_path))["states"]
    if en_states.shape[1] != len(pairs_s):
        raise InputError(
            f"source states {source_states_path}: {en_states.shape[1]} sentences, parallel text has "
            f"{len(pairs_s)} (rebuild them with the same --max-sentences)"
        )
    tgt_states = mean_pooled_states(model, tok, [tgt for _, tgt, _ in pairs_s], device=device)
    if tgt_states.shape != en_states.shape:
        raise InputError(
            f"model {model_dir}: hidden states {tuple(tgt_states.shape)} do not match the source "
            f"LLM's {tuple(en_states.shape)}; is {source_model} the model it was transferred from?"
        )
    per_layer = layerwise(tgt_states, en_states)
    return {
        "kind": "alignment",
        "words": words,
        "sentences": {"n": len(pairs_s), **per_layer},
        "summary": {
            "word_p1_nn": words.get("p1_nn"),
            "word_p1_csls": words.get("p1_csls"),
            "word_p1_nn_procrustes": words.get("p1_nn_procrustes"),
            "word_p1_csls_procrustes": words.get("p1_csls_procrustes"),
            "sentence_p1_best": max(per_layer["sentence_p1"]),
            "sentence_p1_best_layer": int(torch.tensor(per_layer["sentence_p1"]).argmax()),
            "cka_mean": sum(per_layer["cka"]) / len(per_layer["cka"]),
        },
        "model": str(model_dir),
        "model_sha256": model_sha256 or sha256_tree(model_dir),
        "inputs": {
            "source_model": str(source_model),
            "parallel": str(parallel),
            "lexicon": str(lexicon),
            "source_states": str(source_states_path),
        },
        "inputs_sha256": {
            "source_model": sha256_tree(source_model),
            "parallel": sha256_tree(parallel),
            "lexicon": sha256_tree(lexicon),
            "source_states": sha256_tree(source_states_path),
        },
        "max_sentences": max_sentences,
        "seed": seed,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def analyze(
    model_dir: str | Path,
    source_model: str | Path,
    parallel: str | Path,
    lexicon: str | Path,
    source_states_path: str | Path,
    out: str | Path,
    max_sentences: int = 0,
    seed: int = 0,
    device: str = "cpu",
    config_hash: str | None = None,
) -> dict[str, Any]:
    """Load the model in `model_dir`, compute `alignment_record` and write it to `out` (JSON, + sidecar)."""
    from .provenance import Meta, check_output

    check_output(out)
    device = str(resolve_device(device))  # auto: CUDA when present, else CPU
    model, tok = load_causal_lm(model_dir, device)
    record = alignment_record(
        model,
        tok,
        model_dir,
        source_model,
        parallel,
        lexicon,
        source_states_path,
        max_sentences=max_sentences,
        seed=seed,
        device=device,
    )
    meta = Meta(
        "analyze",
        inputs={
            "model": model_dir,
            "source_model": source_model,
            "parallel": parallel,
            "lexicon": lexicon,
            "source_states": source_states_path,
        },
        params={"max_sentences": max_sentences},
        seed=seed,
        device=str(device),
        config_hash=config_hash,
    )
    write_json_atomic(out, record, meta)
    return record
