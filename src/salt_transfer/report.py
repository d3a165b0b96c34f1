"""Collect every evaluation into a tidy table, paper-shaped pivots, and plots.

Usage:
    salt-transfer report --grid grid.json --out-dir results/report results/eval/*/.../*.json

Inputs are the evaluation JSONs the workflow lists explicitly. Each says which cell it belongs to
(the `cell` labels `salt-transfer evaluate --label` recorded: stage init/cpt/source, llm, plm,
method or language) and which model it scored; everything else is found by following the sidecar
chain from that model (`*.meta.json`: continual-pretrained model -> transferred model -> fitted
embeddings), never by re-deriving paths: the fitted embeddings each row's hash covers, and the
training log of each continually pretrained model. An `alignment` record (word/sentence retrieval,
CKA per layer) becomes rows of the tasks word_retrieval, sentence_retrieval and cka. The grid maps
each PLM to its language and architecture. Outputs:
  results.csv  one row per (llm, plm, method, stage, task, metric) with the value and the sha256 of
               the model directory, the evaluated text and the fitted embeddings it came from, and
               the path and sha256 of the evaluation JSON it was read from (`salt-transfer audit`
               checks all of them);
  metrics.json the evaluation metrics per model, for `dvc metrics show` (DVC keeps it in git);
  tables.md    methods x PLMs per (stage, task, metric), as the paper lays its tables out;
  plots/       training-loss curves per (llm, plm) with one line per method (the paper's
               convergence figure), one bar chart per (task, metric), and CKA and sentence
               retrieval by layer per (llm, plm).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError
from .provenance import atomic_path, meta_path, sha256_file, write_json_atomic, write_text_atomic

LOG = logging.getLogger(__name__)

LOWER_IS_BETTER = ("bpb", "loss", "nll")

COLUMNS = [
    "llm",
    "plm",
    "language",
    "architecture",
    "method",
    "stage",
    "task",
    "metric",
    "value",
    "stderr",
    "model_sha256",
    "text_sha256",
    "embeddings_sha256",
    "source_json",
    "source_json_sha256",
]


def analysis_metrics(record: dict) -> list[tuple[str, str, float]]:
    """(task, metric, value) rows of one alignment record; per-layer values as metrics layer_00, ..."""
    rows = []
    words = record.get("words", {})
    for key in ("p1_nn", "p1_csls", "p1_nn_procrustes", "p1_csls_procrustes"):
        if words.get(key) is not None:
            rows.append(("word_retrieval", key, words[key]))
    sentences = record.get("sentences", {})
    for task, key in (("sentence_retrieval", "sentence_p1"), ("cka", "cka")):
        values = sentences.get(key) or []
        if values:
            rows.append(
                (
                    task,
                    "best" if task == "sentence_retrieval" else "mean",
                    max(values) if task == "sentence_retrieval" else sum(values) / len(values),
                )
            )
            rows += [(task, f"layer_{i:02d}", v) for i, v in enumerate(values)]
    return rows


def cell_of(record: dict[str, Any], path: Path) -> dict[str, str]:
    """Grid coordinates of an evaluation record: the `cell` labels `evaluate --label` recorded."""
    cell = record.get("cell")
    if not isinstance(cell, dict) or "stage" not in cell or "llm" not in cell:
        raise InputError(
            f"evaluation {path}: no cell labels (stage, llm, ...); evaluate with --label stage=... --label llm=..."
        )
    if cell["stage"] == "source":
        return {
            "stage": "source",
            "llm": cell["llm"],
            "plm": "",
            "method": "source",
            "language": cell.get("language", ""),
        }
    return {
        "stage": cell["stage"],
        "llm": cell["llm"],
        "plm": cell.get("plm", ""),
        "method": cell.get("method", ""),
    }


def _sidecar(path: str | Path) -> dict[str, Any] | None:
    side = meta_path(path)
    if not side.is_file():
        return None
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def chain_input(artifact: str | Path, role: str, root: str | Path = ".", max_depth: int = 6) -> Path | None:
    """The first input named `role` met walking the sidecar chain up from `artifact` (through each
    sidecar's `model` input: continual-pretrained model -> transferred model -> ...), or None.
    Paths are returned as recorded (relative to the workflow folder); `root` is that folder."""
    current: str | Path | None = artifact
    for _ in range(max_depth):
        if current is None:
            return None
        record = _sidecar(Path(root) / current)
        if record is None:
            return None
        inputs = record.get("inputs") or {}
        if inputs.get(role):
            return Path(inputs[role]["path"])
        current = (inputs.get("model") or {}).get("path")
    return None


def chain_param(artifact: str | Path, key: str) -> Any:
    """A parameter recorded in `artifact`'s own sidecar (e.g. the train log of a pretrained model)."""
    record = _sidecar(artifact)
    return None if record is None else (record.get("params") or {}).get(key)


def _embeddings_sha(record: dict[str, Any], known: dict[str, str]) -> str:
    """sha256 of the fitted embeddings the evaluated model was built from (found through the
    sidecar chain of its model directory); `known` memoizes it (one model has many rows)."""
    model = record.get("model")
    if not model:
        return ""
    if model not in known:
        emb = chain_input(model, "embeddings")
        known[model] = sha256_file(emb) if emb is not None and emb.is_file() else ""
    return known[model]


def collect(eval_jsons: list[str | Path], grid: dict[str, Any]) -> pd.DataFrame:
    rows = []
    plms = grid.get("plms", {})
    hashes: dict[str, str] = {}
    for p in map(Path, eval_jsons):
        if not p.is_file():
            raise InputError(f"evaluation {p}: no such file")
        raw = p.read_bytes()
        try:
            record = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"evaluation {p}: not JSON ({exc})") from exc
        json_sha = hashlib.sha256(raw).hexdigest()  # of the exact bytes read: what the row came from
        cell = cell_of(record, p)
        cell["task"] = record.get("task") or p.stem
        meta = plms.get(cell["plm"], {})
        if record.get("kind") == "alignment":  # one record, many (task, metric) rows
            for task, metric, value in analysis_metrics(record):
                rows.append(
                    {
                        **cell,
                        "task": task,
                        "metric": metric,
                        "value": value,
                        "stderr": None,
                        "language": meta.get("language", ""),
                        "architecture": meta.get("architecture", ""),
                        "model_sha256": record.get("model_sha256", ""),
                        "text_sha256": record.get("inputs_sha256", {}).get("parallel", ""),
                        "embeddings_sha256": _embeddings_sha(record, hashes)
                        if cell["stage"] != "source"
                        else "",
                        "source_json": str(p),
                        "source_json_sha256": json_sha,
                    }
                )
            continue
        language = cell.pop("language", meta.get("language", ""))
        for metric, value in record["metrics"].items():
            rows.append(
                {
                    **cell,
                    "language": language,
                    "architecture": meta.get("architecture", ""),
                    "metric": metric,
                    "value": value,
                    "stderr": (record.get("stderr") or {}).get(metric),
                    "model_sha256": record.get("model_sha256", ""),
                    "text_sha256": record.get("text_sha256", ""),
                    "embeddings_sha256": _embeddings_sha(record, hashes) if cell["stage"] != "source" else "",
                    "source_json": str(p),
                    "source_json_sha256": json_sha,
                }
            )
    if not rows:
        raise InputError("no evaluation results to report")
    df = pd.DataFrame(rows)[COLUMNS]
    order = {m: i for i, m in enumerate(grid.get("methods", []))}
    df["_m"] = df["method"].map(lambda m: order.get(m, -1 if m == "source" else len(order)))
    df = df.sort_values(["llm", "language", "architecture", "plm", "stage", "task", "metric", "_m"]).drop(
        columns="_m"
    )
    return df.reset_index(drop=True)


def _fmt(v: float) -> str:
    return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"


def plm_language(grid: dict[str, Any], plm: str) -> str:
    return grid.get("plms", {}).get(plm, {}).get("language", "")


def source_value(df: pd.DataFrame, llm: str, task: str, metric: str, language: str) -> float | None:
    """The untouched source LLM's value on the same task and language (a reference line)."""
    hit = df[
        (df["stage"] == "source")
        & (df["llm"] == llm)
        & (df["task"] == task)
        & (df["metric"] == metric)
        & (df["language"] == language)
    ]
    return float(hit["value"].iloc[0]) if len(hit) else None


def tables_markdown(df: pd.DataFrame, grid: dict[str, Any]) -> str:
    """One methods x PLMs table per (llm, stage, task, metric); the source LLM as a reference line."""
    lines = [
        "# Results",
        "",
        "Generated by `salt-transfer report` from results/eval/; every value traces to "
        "results.csv (with the sha256 of its model, text and embeddings).",
        "",
    ]
    cells = df[(df["stage"] != "source") & ~df["metric"].str.startswith("layer_")]
    for (llm, task, metric), part in cells.groupby(["llm", "task", "metric"], sort=False):
        for stage in ("init", "cpt"):
            sub = part[part["stage"] == stage]
            if sub.empty:
                continue
            pivot = sub.pivot_table(index="method", columns="plm", values="value", aggfunc="first")
            errors = sub.pivot_table(
                index="method", columns="plm", values="stderr", aggfunc="first", dropna=False
            )
            methods = [m for m in grid.get("methods", pivot.index) if m in pivot.index]
            pivot = pivot.loc[methods]
            plm_cols = list(pivot.columns)
            header = [
                f"{p} ({grid.get('plms', {}).get(p, {}).get('language', '?')}, "
                f"{grid.get('plms', {}).get(p, {}).get('architecture', '?')})"
                for p in plm_cols
            ]
            lower_better = metric in LOWER_IS_BETTER
            lines += [
                f"## {task} · {metric} · {stage} · source {llm}"
                + (" (lower is better)" if lower_better else ""),
                "",
                "| method | " + " | ".join(header) + " |",
                "|---" * (len(plm_cols) + 1) + "|",
            ]
            best = pivot.min() if lower_better else pivot.max()

            def cell(method, column, v, best=best, errors=errors):
                if pd.isna(v):
                    return "-"
                text = f"**{_fmt(v)}**" if v == best[column] else _fmt(v)
                err = (
                    errors.at[method, column] if method in errors.index and column in errors.columns else None
                )
                return f"{text} ± {_fmt(err)}" if err is not None and pd.notna(err) else text

            for method, row in pivot.iterrows():
                vals = [cell(method, c, v) for c, v in row.items()]
                lines.append(f"| {method} | " + " | ".join(vals) + " |")
            reference = [source_value(df, llm, task, metric, plm_language(grid, p)) for p in plm_cols]
            if any(v is not None for v in reference):
                lines.append(
                    f"| *source {llm}, its own tokenizer* | "
                    + " | ".join(_fmt(v) if v is not None else "-" for v in reference)
                    + " |"
                )
            lines.append("")
    return "\n".join(lines)


def _log_scale_if_wide(ax, values) -> None:
    """Log y axis when one value is 5x another: one diverged method must not flatten the others."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    positive = [float(v) for v in values if v == v and float(v) > 0]
    if positive and max(positive) / min(positive) > 5:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 2, 5, 10, 20 rather than 2x10^0
        ax.yaxis.set_minor_formatter(NullFormatter())


def plot_all(
    df: pd.DataFrame, train_logs: dict[tuple[str, str, str], Path], out_dir: Path, grid: dict[str, Any]
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    methods = list(grid.get("methods", []))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}

    def save(fig, name: str) -> None:
        target = out_dir / name
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(target)

    # Convergence (the paper's Figure 2): one figure per (llm, plm), one line per method; training
    # loss against tokens on the left, held-out bits per byte (the valid split) on the right.
    by_pair: dict[tuple[str, str], list[tuple[str, pd.DataFrame]]] = {}
    for (llm, plm, method), log in sorted(train_logs.items()):
        data = pd.read_csv(log)
        if not data.empty:
            by_pair.setdefault((llm, plm), []).append((method, data))
    for (llm, plm), runs in sorted(by_pair.items()):
        heldout = any("heldout_bpb" in d and d["heldout_bpb"].notna().any() for _, d in runs)
        fig, axes = plt.subplots(1, 2 if heldout else 1, figsize=(11 if heldout else 6, 4), squeeze=False)
        ax = axes[0][0]
        losses = []
        for method, data in sorted(runs, key=lambda r: methods.index(r[0]) if r[0] in methods else 99):
            rows = data[data["loss"].notna()]
            x = rows["tokens_seen"] if rows["tokens_seen"].notna().all() else rows["step"]
            ax.plot(x, rows["loss"], label=method, color=colors.get(method), linewidth=1.3)
            losses += list(rows["loss"])
            if heldout and "heldout_bpb" in data:
                points = data[data["heldout_bpb"].notna()]
                axes[0][1].plot(
                    points["tokens_seen"], points["heldout_bpb"], "o-", color=colors.get(method), label=method
                )
        meta = grid.get("plms", {}).get(plm, {})
        fig.suptitle(
            f"Continual pretraining: {llm} with {plm} ({meta.get('language', '?')}, {meta.get('architecture', '?')})",
            fontsize=10,
        )
        ax.set_xlabel("tokens seen")
        ax.set_ylabel("training loss (nats per target token)")
        _log_scale_if_wide(ax, losses)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        if heldout:
            axes[0][1].set_xlabel("tokens seen")
            axes[0][1].set_ylabel("held-out bits per byte (valid split; lower is better)")
            _log_scale_if_wide(
                axes[0][1], [v for _, d in runs if "heldout_bpb" in d for v in d["heldout_bpb"].dropna()]
            )
            axes[0][1].grid(alpha=0.3)
        save(fig, f"loss_{llm}_{plm}.png")

    # Bars: one figure per (llm, task, metric): groups = PLMs, bars = methods, init vs cpt hatched.
    cells = df[df["stage"].isin(["init", "cpt"]) & ~df["metric"].str.startswith("layer_")]
    for (llm, task, metric), part in cells.groupby(["llm", "task", "metric"]):
        plms = list(dict.fromkeys(part["plm"]))
        stages = [s for s in ("init", "cpt") if s in set(part["stage"])]
        present = [m for m in methods if m in set(part["method"])]
        fig, axes = plt.subplots(
            1, len(stages), figsize=(4.5 * len(stages) + 1, 3.8), squeeze=False, sharey=True
        )
        width = 0.8 / max(1, len(present))
        for ax, stage in zip(axes[0], stages):
            for j, method in enumerate(present):
                vals = [
                    part[(part.plm == p) & (part.method == method) & (part.stage == stage)]["value"]
                    for p in plms
                ]
                heights = [float(v.iloc[0]) if len(v) else float("nan") for v in vals]
                ax.bar(
                    [i + j * width for i in range(len(plms))],
                    heights,
                    width,
                    label=method,
                    color=colors.get(method),
                )
            for i, p in enumerate(plms):
                ref = source_value(df, llm, task, metric, plm_language(grid, p))
                if ref is not None:
                    ax.hlines(
                        ref,
                        i - width / 2,
                        i + 0.8 - width / 2,
                        colors="black",
                        linestyles="--",
                        linewidth=1,
                        label=f"source {llm}" if i == 0 else None,
                    )
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(plms))], plms, fontsize=8)
            ax.set_title(f"{stage}", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        _log_scale_if_wide(axes[0][0], list(part["value"]))
        axes[0][0].set_ylabel(
            f"{task}: {metric}" + (" (lower is better)" if metric in LOWER_IS_BETTER else "")
        )
        axes[0][-1].legend(fontsize=7, loc="best")
        fig.suptitle(f"{task} · {metric} · source {llm}", fontsize=10)
        save(fig, f"bars_{llm}_{task}_{metric}.png")

    # By layer: CKA and sentence-retrieval P@1, one figure per (llm, plm), a line per method,
    # solid after continual pretraining, dashed before (Conneau/Wu 2020's figures 6-7 layout).
    layers = df[df["metric"].str.startswith("layer_")]
    for (llm, plm), part in layers.groupby(["llm", "plm"]):
        tasks = [t for t in ("cka", "sentence_retrieval") if t in set(part["task"])]
        fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.8), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            for method in [m for m in methods if m in set(part["method"])]:
                for stage, style in (("init", "--"), ("cpt", "-")):
                    sub = part[(part.task == task) & (part.method == method) & (part.stage == stage)]
                    if len(sub):
                        x = [int(m.split("_")[1]) for m in sub["metric"]]
                        ax.plot(
                            x,
                            sub["value"],
                            style,
                            color=colors.get(method),
                            linewidth=1.5,
                            label=f"{method} ({stage})",
                        )
            ax.set_xlabel("layer (0 = embeddings)")
            ax.set_ylabel("linear CKA" if task == "cka" else "sentence retrieval P@1")
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=6, ncol=2)
        meta = grid.get("plms", {}).get(plm, {})
        fig.suptitle(
            f"{llm} on English vs transferred model on {meta.get('language', '?')}: {plm} "
            f"({meta.get('architecture', '?')})",
            fontsize=10,
        )
        save(fig, f"layers_{llm}_{plm}.png")
    return written


def headline_metrics(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The evaluation metrics per model, for `dvc metrics show/diff`: {llm/plm/method/stage: {task/metric:
    value}} (alignment rows' per-layer values are left to results.csv)."""
    out: dict[str, dict[str, float]] = {}
    for row in df.itertuples(index=False):
        if row.metric.startswith("layer_"):
            continue
        key = "/".join(str(x) for x in (row.llm, row.plm or row.language, row.method, row.stage))
        out.setdefault(key, {})[f"{row.task}/{row.metric}"] = float(f"{row.value:.6g}")
    return out


def markdown_to_html(text: str, title: str = "salt-transfer report") -> str:
    """Our own generated markdown (headings, paragraphs, bullet lists, pipe tables, **bold**) as one
    self-contained HTML page, so Snakemake's report (which does not render markdown) shows the tables."""
    import html
    import re

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        s = re.sub(r"\*(.+?)\*", r"<i>\1</i>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    out, table, items = [], [], []

    def flush() -> None:
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|(\s*-+\s*\|)+", r.replace("---", "-"))]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            out.append("<table>")
            out.append("<tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells[0]) + "</tr>")
            for row in cells[1:]:
                out.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>")
            out.append("</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- "):
            items.append(line[2:])
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    style = (
        "body{font-family:sans-serif;margin:1.5em;max-width:70em} table{border-collapse:collapse;margin:.5em 0 1.5em}"
        " td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right} td:first-child,th:first-child"
        "{text-align:left} h2{font-size:1.05em;margin-top:1.6em}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


def training_logs(eval_jsons: list[str | Path]) -> dict[tuple[str, str, str], Path]:
    """(llm, plm, method) -> train_log.csv of each continually pretrained model evaluated, found
    through the model's sidecar (the pretraining run recorded where it wrote its log)."""
    logs = {}
    for p in map(Path, eval_jsons):
        record = json.loads(p.read_text(encoding="utf-8"))
        cell = record.get("cell") or {}
        if cell.get("stage") != "cpt" or not record.get("model"):
            continue
        log = chain_param(record["model"], "log_csv")
        if log and Path(log).is_file():
            logs[(cell["llm"], cell.get("plm", ""), cell.get("method", ""))] = Path(log)
    return logs


def write_report(
    eval_jsons: list[str | Path],
    grid: dict[str, Any],
    out_dir: str | Path,
    plots: bool = True,
) -> pd.DataFrame:
    from .claims import check_claims, claims_markdown
    from .provenance import check_output

    out_dir = Path(out_dir)
    for name in ("results.csv", "claims.csv", "tables.md", "tables.html", "metrics.json"):
        check_output(out_dir / name, label="--out-dir")
    df = collect(eval_jsons, grid)
    logs = training_logs(eval_jsons)
    claims = check_claims(eval_jsons, logs, grid.get("method_of", {}))
    with atomic_path(out_dir / "results.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_dir / "claims.csv") as tmp:
        claims.to_csv(tmp, index=False, float_format="%.6g")
    tables = claims_markdown(claims) + "\n" + tables_markdown(df, grid)
    write_text_atomic(out_dir / "tables.md", tables)
    write_text_atomic(out_dir / "tables.html", markdown_to_html(tables, "salt-transfer: claims and tables"))
    write_json_atomic(out_dir / "metrics.json", headline_metrics(df))
    if plots:
        plot_all(df, logs, out_dir / "plots", grid)
    return df
