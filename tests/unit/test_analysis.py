"""Alignment analyses: CKA properties, CSLS and P@1 on constructed cases, word retrieval, end to end."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import DATA
from salt_transfer.analysis import (
    analyze,
    cosine_matrix,
    csls,
    linear_cka,
    precision_at_1,
    single_token_ids,
    source_states,
    word_retrieval,
)
from salt_transfer.corpora import fetch_parallel, lexicon_from_markup
from salt_transfer.evaluate import AlignmentInputs, evaluate_model


def test_cka_identity_and_invariances():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 12, generator=g)
    assert linear_cka(x, x) == pytest.approx(1.0)
    q = torch.linalg.qr(torch.randn(12, 12, generator=g)).Q
    assert linear_cka(x, 3.5 * x @ q) == pytest.approx(1.0)  # orthogonal transform and isotropic scaling
    assert linear_cka(x, x + 7.0) == pytest.approx(1.0)  # centring removes constant shifts
    y = torch.randn(50, 12, generator=g)
    assert linear_cka(x, y) < 0.5
    stretched = x * torch.linspace(1, 10, 12)  # an anisotropic scaling is not an invariance
    assert linear_cka(x, stretched) < 0.99


def test_csls_corrects_a_hub_that_nearest_neighbour_picks():
    """Candidate 0 is a hub close to every query; CSLS penalizes it, NN does not."""
    # q_i = e_i + 0.8 (1, 1, 1): cos(q_i, hub) = 0.92 beats cos(q_i, e_i) = 0.85.
    queries = torch.eye(3) + 0.8
    candidates = torch.cat([torch.ones(1, 3), torch.eye(3)])
    gold = torch.tensor([1, 2, 3])
    sim = cosine_matrix(queries, candidates)
    assert precision_at_1(sim, gold) == 0.0  # the hub wins every query
    assert precision_at_1(csls(sim, k=2), gold) == 1.0


def test_word_retrieval_direct_and_after_procrustes():
    g = torch.Generator().manual_seed(1)
    english = torch.randn(60, 16, generator=g)
    gold = torch.arange(60)
    same = word_retrieval(english + 0.01 * torch.randn(60, 16, generator=g), english, gold)
    assert same["p1_nn"] == 1.0 and same["p1_csls"] == 1.0
    q = torch.linalg.qr(torch.randn(16, 16, generator=g)).Q
    rotated = word_retrieval(english @ q, english, gold)  # same geometry, other basis
    assert rotated["p1_nn"] < 0.3
    assert rotated["p1_nn_procrustes"] == 1.0 and rotated["n_train"] == 30 and rotated["n_test"] == 30


def test_strongs_lexicon_pairs_heads_of_tagged_spans():
    tgt = {
        f"Gen 1:{i}": '<w lemma="strong:H0430">y Dios</w> <w lemma="strong:H0776">la tierra</w>'
        for i in range(4)
    }
    eng = {f"Gen 1:{i}": '<w lemma="strong:H430">God</w> <w lemma="strong:H0776">earth</w>' for i in range(4)}
    assert lexicon_from_markup(tgt, eng) == [("dios", "god", 4), ("tierra", "earth", 4)]
    assert lexicon_from_markup(tgt, eng, min_count=5) == []


def test_single_token_words_across_families(toks):
    for name in ("source", "wordpiece", "unigram", "bytefallback"):
        words = single_token_ids(toks[name])
        assert words and all(w.isalpha() for w in words)
        tok = toks[name]
        word, idx = next(iter(words.items()))
        assert word in tok.decode([idx])


def test_analyze_end_to_end_on_a_tiny_model(source_tied, tmp_path):
    par = tmp_path / "par.tsv"
    fetch_parallel(
        f"file:{DATA / 'bible.es.txt'}",
        f"file:{DATA / 'bible.en.txt'}",
        {"by": "hash", "valid": 0.1, "test": 0.1},
        par,
    )
    lexicon = tmp_path / "lex.tsv"
    lexicon.write_text("dios\tgod\t9\ntierra\tearth\t9\nagua\twater\t9\ncielos\theavens\t9\nluz\tlight\t9\n")
    info = source_states(source_tied, par, tmp_path / "states.safetensors", max_sentences=12)
    assert info == {"layers": 3, "sentences": 12}  # embeddings + 2 layers
    record = analyze(
        source_tied,
        source_tied,
        par,
        lexicon,
        tmp_path / "states.safetensors",
        tmp_path / "a.json",
        max_sentences=12,
    )
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved["sentences"]["n"] == 12 and len(saved["sentences"]["cka"]) == 3
    assert all(0 <= v <= 1 for v in saved["sentences"]["sentence_p1"])
    assert record["summary"]["cka_mean"] == pytest.approx(sum(saved["sentences"]["cka"]) / 3)
    # The same computation as the `alignment` task of evaluate, on the weights it has loaded.
    via_evaluate = evaluate_model(
        source_tied,
        ["alignment=alignment"],
        tmp_path / "eval",
        progress=False,
        alignment=AlignmentInputs(
            str(source_tied), str(par), str(lexicon), str(tmp_path / "states.safetensors"), 12
        ),
    )["alignment"]
    assert via_evaluate["kind"] == "alignment" and via_evaluate["sentences"] == record["sentences"]
    assert via_evaluate["metrics"]["cka_mean"] == pytest.approx(record["summary"]["cka_mean"])
    assert json.loads((tmp_path / "eval" / "alignment.json").read_text())["words"] == record["words"]
    with pytest.raises(Exception, match="sentences"):
        analyze(
            source_tied,
            source_tied,
            par,
            lexicon,
            tmp_path / "states.safetensors",
            tmp_path / "b.json",
            max_sentences=10,
        )
