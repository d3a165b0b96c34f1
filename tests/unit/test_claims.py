"""The claims table: rankings with paired-bootstrap intervals and the three verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from salt_transfer.claims import VERDICTS, check_claims, claims_markdown


def _bpb_record(path, stage, method, nats_per_doc, task="bpb_target"):
    per_doc = [[float(n), 100] for n in nats_per_doc]
    path.write_text(
        json.dumps(
            {
                "task": task,
                "kind": "bpb",
                "metrics": {"bpb": sum(n for n, _ in per_doc) / (np.log(2) * 100 * len(per_doc))},
                "details": {"per_document": per_doc},
                "cell": {"stage": stage, "llm": "llm", "plm": "p", "method": method},
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "salt_shift,verdict",
    [(-20.0, "holds"), (20.0, "does not hold"), (0.01, "cannot tell at this scale")],
)
def test_verdict_follows_the_paired_interval(tmp_path, salt_shift, verdict):
    rng = np.random.default_rng(0)
    base = rng.uniform(200, 400, size=60)  # documents of very different difficulty: pairing matters
    files = [
        _bpb_record(tmp_path / "focus.json", "init", "focus", base + rng.normal(0, 1, 60)),
        _bpb_record(tmp_path / "random.json", "init", "random", base + 80),
        _bpb_record(tmp_path / "salt.json", "init", "salt", base + salt_shift + rng.normal(0, 1, 60)),
    ]
    df = check_claims(files, {}, {"salt": "salt"})
    row = df[df.claim == "init_loss"].iloc[0]
    assert row.verdict == verdict and row.best_other == "focus"
    assert row.ci_low <= row.difference <= row.ci_high
    assert row.n_methods == 3 and row.units == 60
    assert "init_loss" in claims_markdown(df) and verdict in claims_markdown(df)


def test_variants_are_checked_against_the_other_methods_only(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.uniform(200, 400, size=40)
    files = [
        _bpb_record(tmp_path / "a.json", "cpt", "salt", base - 30),
        _bpb_record(tmp_path / "b.json", "cpt", "salt-robust", base - 60),  # better, but a SALT variant
        _bpb_record(tmp_path / "c.json", "cpt", "focus", base),
    ]
    df = check_claims(files, {}, {"salt": "salt", "salt-robust": "salt", "focus": "focus"})
    assert set(df.salt_variant) == {"salt", "salt-robust"}
    assert (df.best_other == "focus").all() and (df.verdict == "holds").all()


def test_convergence_pairs_the_steps_of_each_run(tmp_path):
    logs = {}
    for method, shift in (("salt", -0.5), ("focus", 0.0)):
        log = tmp_path / f"{method}.csv"
        rows = ["step,tokens_seen,loss,lr,tokens_per_s,heldout_bpb", "0,0,,,,3.0"]
        rows += [f"{s},{s * 128},{8 - 0.1 * s + shift + 0.01 * (s % 3):.4f},0.001,," for s in range(1, 31)]
        log.write_text("\n".join(rows) + "\n")
        logs[("llm", "p", method)] = log
    df = check_claims([], logs, {})
    row = df[df.claim == "convergence"].iloc[0]
    assert row.units == 30 and row.verdict == "holds" and row.difference == pytest.approx(-0.5)


def test_nothing_to_check_is_said(tmp_path):
    df = check_claims([_bpb_record(tmp_path / "f.json", "init", "focus", [300, 310])], {}, {})
    assert df.empty and "No claim could be checked" in claims_markdown(df)
    assert set(VERDICTS) == {"holds", "does not hold", "cannot tell at this scale"}
