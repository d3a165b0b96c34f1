"""The SALT paper's claims, checked on the measured results: a ranking with uncertainty and a verdict.

Claims (the paper's, as far as the available text and one third-party note state them; see
docs/paper.md): SALT gives

  init_loss        the lowest loss right after initialization (held-out target-language bits per byte,
                   stage init);
  convergence      the fastest convergence in continual pretraining (mean training loss over the whole
                   run: the area under the loss curve; same batches for every method of a PLM, so the
                   steps pair up);
  final_loss       the lowest loss after continual pretraining (held-out target bits per byte, stage cpt);
  cross_lingual    the best cross-lingual task scores (the translation-choice tasks in both directions,
                   stage cpt, byte-normalized accuracy);
  english          the best English retention (English bits per byte, stage cpt).

Each claim is checked per source LLM x PLM, for every SALT variant of the grid (the paper's exact
SALT and e.g. a norm-capped one), against the best of the *other* methods. The uncertainty is a
paired bootstrap (2,000 resamples, seeded) over the units every method was scored on: documents of
the evaluated text, items of the tasks, steps of the training run. Verdicts:

  holds                       SALT is better than the best other method, 95% interval of the
                              difference excluding zero;
  does not hold               the best other method is better, interval excluding zero;
  cannot tell at this scale   the interval contains zero (too little text, too few items or steps).

Nothing is adjusted for the number of comparisons: read a single "holds" among many with care.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BOOTSTRAP = 2000
SEED = 0


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    lower_is_better: bool


CLAIMS = (
    Claim("init_loss", "lowest target-language loss at initialization (held-out bits per byte)", True),
    Claim("convergence", "fastest convergence (mean training loss over continual pretraining)", True),
    Claim(
        "final_loss", "lowest target-language loss after continual pretraining (held-out bits per byte)", True
    ),
    Claim("cross_lingual", "best cross-lingual task accuracy after continual pretraining", False),
    Claim("english", "best English retention after continual pretraining (English bits per byte)", True),
)

VERDICTS = ("holds", "does not hold", "cannot tell at this scale")
COLUMNS = [
    "claim",
    "statement",
    "llm",
    "plm",
    "salt_variant",
    "salt_value",
    "best_other",
    "best_other_value",
    "difference",
    "ci_low",
    "ci_high",
    "units",
    "salt_rank",
    "n_methods",
    "ranking",
    "verdict",
]


@dataclass
class Series:
    """One method's score on a claim: the units it is aggregated from, and how."""

    units: np.ndarray
    kind: str  # "ratio" ([nats, bytes] rows: bits per byte) or "mean" (one value per unit)

    def value(self) -> float:
        return float(self.resampled(np.arange(len(self.units))[None, :])[0])

    def resampled(self, index: np.ndarray) -> np.ndarray:
        """The score on each row of `index` ([resamples, n] unit indices), vectorized."""
        rows = self.units[index]
        if self.kind == "ratio":
            return rows[..., 0].sum(-1) / (math.log(2) * rows[..., 1].sum(-1))
        return rows.mean(-1)


def _paired(a: Series, b: Series, rng: np.random.Generator) -> tuple[float, float, float, float, float]:
    """(value a, value b, diff a-b, 2.5% and 97.5% bootstrap quantiles of the diff) on shared units."""
    n = min(len(a.units), len(b.units))
    a, b = Series(a.units[:n], a.kind), Series(b.units[:n], b.kind)
    idx = rng.integers(0, n, size=(BOOTSTRAP, n))
    lo, hi = np.quantile(a.resampled(idx) - b.resampled(idx), [0.025, 0.975])
    return a.value(), b.value(), a.value() - b.value(), float(lo), float(hi)


def _stderr(s: Series, rng: np.random.Generator) -> float:
    n = len(s.units)
    if n < 2:
        return float("nan")
    return float(np.std(s.resampled(rng.integers(0, n, size=(BOOTSTRAP, n))), ddof=1))


def _read(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def collect_series(
    eval_jsons: list[str | Path], train_logs: dict[tuple[str, str, str], Path]
) -> dict[tuple[str, str, str], dict[str, Series]]:
    """(claim, llm, plm) -> method -> Series, from the evaluation records and the training logs."""
    out: dict[tuple[str, str, str], dict[str, Series]] = {}
    xling: dict[tuple[str, str, str], list[np.ndarray]] = {}
    for path in map(Path, eval_jsons):
        record = _read(path)
        cell = record.get("cell") or {}
        if cell.get("stage") not in ("init", "cpt"):
            continue
        llm, plm, method, stage = cell["llm"], cell.get("plm", ""), cell.get("method", ""), cell["stage"]
        task = record.get("task") or path.stem
        per_doc = (record.get("details") or {}).get("per_document")
        if record.get("kind") == "bpb" and per_doc:
            claim = {
                ("init", "bpb_target"): "init_loss",
                ("cpt", "bpb_target"): "final_loss",
                ("cpt", "bpb_english"): "english",
            }.get((stage, task))
            if claim:
                out.setdefault((claim, llm, plm), {})[method] = Series(
                    np.array(per_doc, dtype=float), "ratio"
                )
        items = record.get("per_item") or {}
        if stage == "cpt" and task.startswith("xling") and items:
            scores = items.get("acc_norm") or items.get("acc")
            if scores:
                xling.setdefault((llm, plm, method), []).append(np.array(scores, dtype=float))
    for (llm, plm, method), parts in xling.items():
        out.setdefault(("cross_lingual", llm, plm), {})[method] = Series(np.concatenate(parts), "mean")
    for (llm, plm, method), log in train_logs.items():
        data = pd.read_csv(log)
        losses = data["loss"].dropna().to_numpy(dtype=float)
        if len(losses):
            out.setdefault(("convergence", llm, plm), {})[method] = Series(losses, "mean")
    return out


def check_claims(
    eval_jsons: list[str | Path],
    train_logs: dict[tuple[str, str, str], Path],
    method_of: dict[str, str],
) -> pd.DataFrame:
    """One row per (claim, llm, plm, SALT variant): the ranking, SALT vs the best other method and
    the verdict. `method_of` maps each cell's method name to its registered method (variants)."""
    rng = np.random.default_rng(SEED)
    series = collect_series(eval_jsons, train_logs)
    rows = []
    for claim in CLAIMS:
        for (name, llm, plm), by_method in sorted(series.items()):
            if name != claim.name:
                continue
            salts = [m for m in by_method if method_of.get(m, m) == "salt"]
            others = [m for m in by_method if method_of.get(m, m) != "salt"]
            if not salts or not others:
                continue
            values = {m: s.value() for m, s in by_method.items()}
            ranking = sorted(values, key=values.get, reverse=not claim.lower_is_better)
            errors = {m: _stderr(s, rng) for m, s in by_method.items()}
            best_other = ranking[[m in others for m in ranking].index(True)]
            for salt in salts:
                a, b, diff, lo, hi = _paired(by_method[salt], by_method[best_other], rng)
                better = (hi < 0) if claim.lower_is_better else (lo > 0)
                worse = (lo > 0) if claim.lower_is_better else (hi < 0)
                verdict = VERDICTS[0] if better else VERDICTS[1] if worse else VERDICTS[2]
                rows.append(
                    {
                        "claim": claim.name,
                        "statement": claim.statement,
                        "llm": llm,
                        "plm": plm,
                        "salt_variant": salt,
                        "salt_value": a,
                        "best_other": best_other,
                        "best_other_value": b,
                        "difference": diff,
                        "ci_low": lo,
                        "ci_high": hi,
                        "units": len(by_method[salt].units),
                        "salt_rank": ranking.index(salt) + 1,
                        "n_methods": len(ranking),
                        "ranking": "; ".join(f"{m} {values[m]:.4g} ± {errors[m]:.2g}" for m in ranking),
                        "verdict": verdict,
                    }
                )
    return pd.DataFrame(rows, columns=COLUMNS)


def claims_markdown(df: pd.DataFrame) -> str:
    """The claims section of tables.md."""
    lines = [
        "# The paper's claims, checked",
        "",
        "Per source LLM x PLM and SALT variant: SALT against the best other method, the difference with a 95%",
        "paired-bootstrap interval (over documents, task items or training steps), and the verdict. Rankings",
        "list every method best first, value ± bootstrap standard error. Lower is better for losses, higher",
        "for accuracy. `salt_transfer.claims` says how each claim is measured.",
        "",
    ]
    if df.empty:
        return "\n".join(
            lines + ["No claim could be checked (no SALT and baseline cells with per-unit scores).", ""]
        )
    for claim in CLAIMS:
        part = df[df["claim"] == claim.name]
        if part.empty:
            continue
        counts = part["verdict"].value_counts().to_dict()
        summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
        lines += [
            f"## {claim.name}: SALT gives the {claim.statement}",
            "",
            f"Verdicts: {summary}.",
            "",
            "| llm | plm | SALT variant | SALT | best other | difference [95% CI] | rank | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in part.itertuples(index=False):
            lines.append(
                f"| {r.llm} | {r.plm} | {r.salt_variant} | {r.salt_value:.4g} | {r.best_other} {r.best_other_value:.4g} "
                f"| {r.difference:+.3g} [{r.ci_low:+.3g}, {r.ci_high:+.3g}] | {r.salt_rank}/{r.n_methods} | **{r.verdict}** |"
            )
        lines += ["", "Rankings:", ""]
        for r in part.drop_duplicates(["llm", "plm"]).itertuples(index=False):
            lines.append(f"- {r.llm} / {r.plm}: {r.ranking}")
        lines.append("")
    return "\n".join(lines)
