"""The SQuAD metrics lm-eval's XQuAD task imports from transformers 4 (gone in transformers 5)."""

from __future__ import annotations

import importlib
import sys

import pytest

from salt_transfer import squad_metrics


@pytest.mark.parametrize(
    "gold,pred,exact,f1",
    [
        ("The Eiffel Tower", "eiffel tower!", 1, 1.0),
        ("Paris", "in Paris, France", 0, 0.5),  # P = 1/3, R = 1: F1 = 0.5
        ("a cat sat", "the dog sat", 0, 0.5),
        ("", "", 1, 1.0),
        ("", "something", 0, 0.0),
        ("Berlin", "München", 0, 0.0),
    ],
)
def test_exact_and_f1_follow_the_squad_script(gold, pred, exact, f1):
    assert squad_metrics.compute_exact(gold, pred) == exact
    assert squad_metrics.compute_f1(gold, pred) == pytest.approx(f1)


def test_lm_eval_xquad_utils_import_after_install(monkeypatch):
    monkeypatch.delitem(sys.modules, squad_metrics.OLD_NAME, raising=False)
    squad_metrics.install()
    utils = importlib.import_module("lm_eval.tasks.xquad.utils")
    doc = {"answers": {"text": ["Der Rhein"]}}
    assert utils.process_results_qa(doc, ["der Rhein"]) == {"f1": 1.0, "exact_match": 1}
