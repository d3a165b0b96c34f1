"""The demo's lm-eval tasks: built from held-out parallel text, gold answers where they should be."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import DATA
from salt_transfer.catalog import demo_task_names as task_names
from salt_transfer.corpora import fetch_parallel, read_parallel
from salt_transfer.errors import InputError
from salt_transfer.tasks import build_tasks


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks") / "parallel.test.tsv"
    fetch_parallel(
        f"file:{DATA / 'bible.es.txt'}",
        f"file:{DATA / 'bible.en.txt'}",
        {"by": "hash", "valid": 0.1, "test": 0.2},
        out,
    )
    return out


def test_tasks_have_gold_answers_from_the_parallel_text(parallel, tmp_path):
    counts = build_tasks(parallel, "es", tmp_path, items=10, max_words=30, seed=3)
    assert counts == {name: 10 for name in task_names("es").values()}
    pairs = {t: e for _, t, e in read_parallel(parallel)}
    reverse = {e: t for t, e in pairs.items()}
    for key, name in task_names("es").items():
        config = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
        assert config["task"] == name and config["output_type"] == "multiple_choice"
        assert config["dataset_kwargs"]["data_files"]["test"] == (tmp_path / f"{name}.jsonl").as_posix()
        docs = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        labels = {d["label"] for d in docs}
        assert len(docs) == 10 and labels <= {0, 1, 2, 3} and len(labels) > 1  # gold not always first
        for d in docs:
            gold = d["choices"][d["label"]]
            assert len(set(d["choices"])) == 4
            if key == "xling_en2tgt":
                assert pairs[gold] == d["context"].removeprefix("English: ").removesuffix("\nTranslation:")
            elif key == "xling_tgt2en":
                assert reverse[gold] == d["context"].removesuffix("\nEnglish:")
            else:
                assert f"{d['context']} {gold}" in pairs


def test_too_little_text_is_an_error(parallel, tmp_path):
    with pytest.raises(InputError, match="40 needed for 40 items.*demo_task_max_words"):
        build_tasks(parallel, "es", tmp_path, max_words=2)
    # Enough pairs but too few long verses for the continuation task: refused, not silently short.
    with pytest.raises(InputError, match="verses of 6 or more words"):
        build_tasks(parallel, "es", tmp_path, items=9, max_words=10)
