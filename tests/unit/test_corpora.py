"""Corpus splits never overlap; parallel pairs come from the test split only."""

from __future__ import annotations

import json

import pytest

from conftest import DATA
from salt_transfer.corpora import (
    book_of,
    clean_osis,
    fetch_corpus,
    fetch_parallel,
    parse_imp,
    read_parallel,
    split_documents,
)
from salt_transfer.errors import InputError

IMP = """$$$[ Module Heading ]
$$$Genesis 1:1
<w lemma="strong:H7225">EN el principio</w> <w lemma="strong:H1254">crió</w> Dios.
$$$Genesis 1:2
<w lemma="strong:H0776">Y la tierra</w><note placement="foot">una nota</note> estaba &amp; vacía.
$$$Exodus 1:1
Estos son los nombres.
$$$II Kings 3:4
Mesa rey de Moab.
"""


def test_sword_export_parsing():
    verses = parse_imp(IMP.splitlines(keepends=True))
    assert list(verses) == ["Genesis 1:1", "Genesis 1:2", "Exodus 1:1", "II Kings 3:4"]
    assert verses["Genesis 1:1"] == "EN el principio crió Dios."
    assert verses["Genesis 1:2"] == "Y la tierra estaba & vacía."  # note dropped, entity decoded
    assert clean_osis("<w>a</w><w>b</w>") == "a b"
    assert book_of("II Kings 3:4") == "II Kings"


def test_book_split_is_disjoint_and_complete():
    docs = {f"{b} 1:{i}": f"{b} {i}" for b in ("Genesis", "Ruth", "Mark", "James") for i in range(1, 6)}
    parts = split_documents(docs, {"by": "book", "valid": ["Ruth"], "test": ["Mark", "James"]})
    assert sorted(sum(parts.values(), [])) == sorted(docs)
    assert {book_of(k) for k in parts["valid"]} == {"Ruth"}
    assert {book_of(k) for k in parts["test"]} == {"Mark", "James"}
    with pytest.raises(InputError, match="unknown book"):
        split_documents(docs, {"by": "book", "valid": ["Tobit"], "test": ["Mark"]})
    with pytest.raises(InputError, match="both valid and test"):
        split_documents(docs, {"by": "book", "valid": ["Mark"], "test": ["Mark"]})


def test_hash_split_is_stable_and_proportional():
    docs = {str(i): f"doc {i}" for i in range(20000)}
    a = split_documents(docs, {"by": "hash", "valid": 0.05, "test": 0.1}, seed=3)
    b = split_documents(docs, {"by": "hash", "valid": 0.05, "test": 0.1}, seed=3)
    assert a == b
    assert abs(len(a["valid"]) / 20000 - 0.05) < 0.01 and abs(len(a["test"]) / 20000 - 0.1) < 0.01
    assert not set(a["train"]) & set(a["test"]) and not set(a["valid"]) & set(a["test"])
    c = split_documents(docs, {"by": "hash", "valid": 0.05, "test": 0.1}, seed=4)
    assert c["test"] != a["test"]


def test_fetch_corpus_and_parallel_from_files(tmp_path):
    es, en = f"file:{DATA / 'bible.es.txt'}", f"file:{DATA / 'bible.en.txt'}"
    split = {"by": "hash", "valid": 0.1, "test": 0.1}
    manifest = fetch_corpus(es, tmp_path / "es", split, seed=1)
    lines = {p: (tmp_path / "es" / f"{p}.txt").read_text().splitlines() for p in ("train", "valid", "test")}
    assert not set(lines["train"]) & set(lines["test"])
    assert sum(manifest["counts"][p]["lines"] for p in lines) == 700
    assert json.loads((tmp_path / "es" / "manifest.json").read_text())["files"]["test.txt"]
    n = fetch_parallel(es, en, split, tmp_path / "es" / "parallel.test.tsv", seed=1)
    pairs = read_parallel(tmp_path / "es" / "parallel.test.tsv")
    assert n == len(pairs) == len(lines["test"])
    assert [tgt for _, tgt, _ in pairs] == lines["test"]  # the test split, in order, and nothing else
    es_all = (DATA / "bible.es.txt").read_text().splitlines()
    en_all = (DATA / "bible.en.txt").read_text().splitlines()
    for key, tgt, eng in pairs[:20]:
        assert es_all[int(key)] == tgt and en_all[int(key)] == eng  # aligned translations


def test_sentence_mode(tmp_path):
    src = tmp_path / "wiki.txt"
    src.write_text("Berlin ist eine Stadt. Sie liegt an der Spree. Dort leben viele Menschen.\n" * 30)
    fetch_corpus(f"file:{src}", tmp_path / "out", {"by": "hash", "valid": 0.2, "test": 0.2}, sentences=True)
    train = (tmp_path / "out" / "train.txt").read_text().splitlines()
    assert "Sie liegt an der Spree." in train and all(line.endswith(".") for line in train)


def test_bad_sources(tmp_path):
    with pytest.raises(InputError, match="sword:MODULE"):
        fetch_corpus("ftp:x", tmp_path, {"by": "hash"})
    with pytest.raises(InputError, match="pin a revision"):
        fetch_corpus("hf-dataset:wikimedia/wikipedia", tmp_path, {"by": "hash"})
    with pytest.raises(InputError, match="no such file"):
        fetch_corpus(f"file:{tmp_path / 'missing.txt'}", tmp_path, {"by": "hash"})
