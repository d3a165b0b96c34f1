"""SQuAD exact match and F1, for lm-evaluation-harness tasks written against transformers 4.

lm-eval 0.4.13's XQuAD task (and CoQA, SCROLLS, NorQuAD, GalicianBench) import
`transformers.data.metrics.squad_metrics`, a module transformers 5 (this project's) no longer has: the
task fails at load with ModuleNotFoundError (found by the paper rehearsal, tests/integration). This
module provides the two functions those tasks call, `compute_exact` and `compute_f1`, as the official
SQuAD v1.1/v2.0 evaluation script defines them (Rajpurkar et al.; transformers 4 carried the same
definitions): lower-case, strip punctuation, the English articles a/an/the and extra whitespace, then
exact string equality, or the F1 of the bag of tokens (1 when both are empty, 0 when one is).

`install()` registers it under the old module name before the harness loads its task files, so those
tasks run unchanged under their own names (`xquad_de`, ...) and report the harness's own metrics.
"""

from __future__ import annotations

import collections
import re
import string
import sys
import types

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)
OLD_NAME = "transformers.data.metrics.squad_metrics"


def normalize_answer(text: str) -> str:
    """Lower-case; drop punctuation, articles and extra whitespace (the SQuAD script's normalization)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def get_tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def compute_exact(a_gold: str, a_pred: str) -> int:
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    gold, pred = get_tokens(a_gold), get_tokens(a_pred)
    if not gold or not pred:
        return float(gold == pred)  # no-answer: 1 if both are empty, else 0
    common = sum((collections.Counter(gold) & collections.Counter(pred)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def install() -> bool:
    """Make `import transformers.data.metrics.squad_metrics` find this module when transformers lacks
    it; returns whether it was needed. Idempotent; leaves a transformers that has it alone."""
    if OLD_NAME in sys.modules:
        return False
    try:
        __import__(OLD_NAME)
        return False
    except ImportError:
        pass
    import transformers.data  # the package exists in 5.x; only its metrics subpackage is gone

    metrics = sys.modules.get("transformers.data.metrics") or types.ModuleType("transformers.data.metrics")
    metrics.__path__ = []  # a namespace for the submodule below
    metrics.squad_metrics = sys.modules[__name__]
    sys.modules["transformers.data.metrics"] = metrics
    sys.modules[OLD_NAME] = sys.modules[__name__]
    transformers.data.metrics = metrics
    return True
