"""Audit a results table: every number traced, by hash, to the artifacts it was computed from.

Usage:
    salt-transfer audit                                   # results/report/results.csv, dvc.lock if present
    salt-transfer audit results/report/results.csv --dvc-lock dvc.lock --out results/audit/manifest.tsv

For every row of results.csv the audit re-reads and re-hashes, never trusting a stored hash:

1. the evaluation JSON the row names (`source_json`): its sha256 equals the row's
   `source_json_sha256`, and the value it holds for the row's metric equals the row's `value`
   (as the report writes it, 6 significant digits), so an edited number is caught;
2. the model directory, the evaluated text and the fitted embeddings: their sha256 equal the row's
   `model_sha256`, `text_sha256` and `embeddings_sha256` (and what the JSON recorded);
3. the provenance chain: from each of those artifacts through the `*.meta.json` sidecars (the
   artifact's own hash and the hash of every input it was computed from) back to the downloaded
   inputs under `data/`, whose files are checked against their `manifest.json`. An artifact under
   `results/` without a sidecar breaks the chain and is reported; a local file the config names
   directly (`file:...`, outside results/ and data/) is an external input: its hash is checked
   where it is used, and it is listed in the summary as not versioned;
4. `dvc.lock`: every file of every stage output, against the md5 DVC recorded (directory listings
   are read from the DVC cache, which `dvc pull` fills).

A mismatch names the artifact, what was expected, what was found, and every results row whose
chain contains that artifact. A deleted artifact is reported as missing. Exit status 0 only when
everything matches, 1 otherwise, 2 when the table itself cannot be read. The audit never rewrites
what it checks: there is no --fix. The git commits, dirty flags and config hashes found along the
chains are listed, so a reviewer can check them against the repository and the config.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .provenance import META_SUFFIX, file_digest, sha256_tree
from .report import analysis_metrics, chain_input

MISSING = "missing"


@dataclass
class Finding:
    """One checked artifact (or one check of it) and the rows that depend on it."""

    artifact: str
    check: str  # what was compared: "sha256", "value", "md5 (dvc.lock)", "provenance", ...
    expected: str
    found: str
    rows: set[int] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.expected == self.found


@dataclass
class AuditReport:
    rows: list[dict[str, str]]
    findings: dict[tuple[str, str, str], Finding]
    commits: dict[str, set[str]]  # "git_sha (dirty)" / "config <hash>" -> artifacts

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings.values() if not f.ok]

    @property
    def ok(self) -> bool:
        return not self.failures


class _Hashes:
    """Memoized hashes of the working tree (one model directory is named by many rows)."""

    def __init__(self, root: Path):
        self.root = root
        self._sha: dict[str, str] = {}
        self._md5: dict[str, str] = {}

    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    def sha256(self, rel: str) -> str:
        if rel not in self._sha:
            p = self.path(rel)
            self._sha[rel] = sha256_tree(p) if p.exists() else MISSING
        return self._sha[rel]

    def md5(self, rel: str) -> str:
        if rel not in self._md5:
            p = self.path(rel)
            self._md5[rel] = file_digest(p, "md5") if p.is_file() else MISSING
        return self._md5[rel]


def _row_label(index: int, row: dict[str, str]) -> str:
    cell = "/".join(x for x in (row.get("llm"), row.get("plm"), row.get("method")) if x)
    return f"{index + 2}:{cell}:{row.get('stage')}:{row.get('task')}:{row.get('metric')}"  # CSV line


def _same_value(table_value: str, json_value: Any) -> bool:
    """The report writes values with 6 significant digits (report.write_report, float_format %.6g)."""
    try:
        written = float(table_value)
        computed = float(f"{float(json_value):.6g}")
    except (TypeError, ValueError):
        return False
    return written == computed or (math.isnan(written) and math.isnan(computed))


def _record_value(record: dict[str, Any], task: str, metric: str) -> Any:
    if record.get("kind") == "alignment":
        return next((v for t, m, v in analysis_metrics(record) if t == task and m == metric), None)
    return record.get("metrics", {}).get(metric)


def _record_inputs(record: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """role -> (path, sha256 recorded in the evaluation JSON) for the data it evaluated on."""
    inputs = {}
    if record.get("text"):
        inputs["text"] = (record["text"], record.get("text_sha256", ""))
    for role, path in (record.get("inputs") or {}).items():
        inputs[role] = (path, (record.get("inputs_sha256") or {}).get(role, ""))
    return inputs


class _Auditor:
    def __init__(self, root: Path):
        self.hashes = _Hashes(root)
        self.findings: dict[tuple[str, str, str], Finding] = {}
        self.commits: dict[str, set[str]] = defaultdict(set)
        self._chains: dict[str, set[str]] = {}  # artifact -> every artifact its chain reaches

    def check(self, artifact: str, check: str, expected: str, found: str, rows: Iterable[int]) -> None:
        key = (artifact, check, expected)
        finding = self.findings.setdefault(key, Finding(artifact, check, expected, found))
        finding.rows.update(rows)

    def read_json(self, rel: str, rows: Iterable[int]) -> dict[str, Any] | None:
        """The parsed file, or None after reporting it as unreadable (a damaged JSON is a finding)."""
        try:
            return json.loads(self.hashes.path(rel).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.check(rel, "readable JSON", "valid JSON", f"unreadable: {exc}", rows)
            return None

    # -- provenance chains ------------------------------------------------------------------
    def chain(self, artifact: str) -> set[str]:
        """Check the sidecars from `artifact` back to data/; returns every artifact reached.

        Checks are recorded without rows; `attach_rows` adds the rows once every chain is known."""
        if artifact in self._chains:
            return self._chains[artifact]
        reached = {artifact}
        self._chains[artifact] = reached  # guards against cycles
        meta_file = self.hashes.path(artifact + META_SUFFIX)
        meta = self.read_json(artifact + META_SUFFIX, ()) if meta_file.is_file() else None
        if meta is not None:
            found = self.hashes.sha256(artifact)
            self.check(artifact, "sha256 (its *.meta.json)", meta.get("artifact_sha256", ""), found, ())
            dirty = " (dirty)" if meta.get("git_dirty") else ""
            self.commits[f"git {meta.get('git_sha')}{dirty}"].add(artifact)
            self.commits[f"config {meta.get('config_hash')}"].add(artifact)
            for spec in (meta.get("inputs") or {}).values():
                if not spec:
                    continue
                self.check(
                    spec["path"],
                    f"sha256 (input of {artifact})",
                    spec["sha256"],
                    self.hashes.sha256(spec["path"]),
                    (),
                )
                reached |= self.chain(spec["path"])
        elif meta_file.is_file():
            pass  # an unreadable sidecar, reported by read_json
        elif self._downloaded(artifact):
            self._check_manifest(artifact)
        elif self._external(artifact):
            # A local file the config names directly (file:...): its hash is checked where it is
            # used, but it has no chain and DVC does not version it; listed in the summary.
            self.commits["external input (hash-checked, not versioned)"].add(artifact)
        else:
            state = MISSING if self.hashes.sha256(artifact) == MISSING else "no *.meta.json"
            self.check(artifact, "provenance", "*.meta.json", state, ())
        return reached

    @staticmethod
    def _downloaded(artifact: str) -> bool:
        return Path(artifact).parts[:1] == ("data",)

    def _external(self, artifact: str) -> bool:
        """Not a workflow artifact: every artifact lives under results/ (and downloads under data/)."""
        path, root = Path(artifact), self.hashes.root.resolve()
        if path.is_absolute() and path.resolve().is_relative_to(root):
            path = path.resolve().relative_to(root)
        return path.is_absolute() or path.parts[:1] not in (("results",), ("data",))

    def _check_manifest(self, artifact: str) -> None:
        """Downloaded inputs: files against the manifest.json of their folder (fetch writes one)."""
        path = self.hashes.path(artifact)
        folder, names = (path, None) if path.is_dir() else (path.parent, [path.name])
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            return  # inputs without a manifest (lexicon, parallel text) are checked by their consumers
        files = json.loads(manifest.read_text()).get("files") or {}
        if not isinstance(files, dict):
            return
        for name in names or sorted(files):
            if name in files:
                rel = str(Path(artifact) / name) if names is None else artifact
                self.check(rel, "sha256 (manifest.json)", files[name], self.hashes.sha256(rel), ())

    # -- rows -------------------------------------------------------------------------------
    def audit_row(self, index: int, row: dict[str, str]) -> set[str]:
        """Check one row; returns the artifacts it depends on."""
        source = row.get("source_json", "")
        depends = {source}
        found = self.hashes.sha256(source)
        self.check(
            source,
            "sha256 (results.csv)",
            row.get("source_json_sha256", "") or "(no hash in row)",
            found,
            [index],
        )
        if found == MISSING:
            return depends
        record = self.read_json(source, [index])
        if record is None:
            return depends
        value = _record_value(record, row.get("task", ""), row.get("metric", ""))
        self.check(
            f"results.csv line {index + 2}",
            f"value of {row.get('task')}/{row.get('metric')} in {source}",
            str(row.get("value")),
            str(row.get("value")) if _same_value(row.get("value", ""), value) else str(value),
            [index],
        )
        model = record.get("model")
        if model:
            self.check(
                model, "sha256 (results.csv)", row.get("model_sha256", ""), self.hashes.sha256(model), [index]
            )
            depends |= self.chain(model)
        inputs = _record_inputs(record)
        for role, (path, recorded) in inputs.items():
            expected = row.get("text_sha256", "") if role in ("text", "parallel") else recorded
            self.check(path, f"sha256 ({role})", expected or recorded, self.hashes.sha256(path), [index])
            depends |= self.chain(path)
        if row.get("embeddings_sha256"):
            found = chain_input(model, "embeddings", root=self.hashes.root) if model else None
            emb = str(found) if found is not None else f"(embeddings of {model}: no sidecar chain)"
            self.check(
                emb, "sha256 (results.csv)", row["embeddings_sha256"], self.hashes.sha256(emb), [index]
            )
            depends |= self.chain(emb)
        return depends

    # -- completeness -----------------------------------------------------------------------
    def audit_completeness(self, rows: list[dict[str, str]]) -> None:
        """Every evaluation record under the table's eval/ tree has its rows in the table: a table
        with rows dropped (or an evaluation the report never saw) is a finding, not "all match"."""
        in_table: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for row in rows:
            in_table[row.get("source_json", "")].add((row.get("task", ""), row.get("metric", "")))
        roots = set()
        for source in in_table:
            parts = Path(source).parts
            if "eval" in parts:
                roots.add(Path(*parts[: len(parts) - parts[::-1].index("eval")]))
        for eval_root in sorted(roots):
            for path in sorted(self.hashes.path(str(eval_root)).rglob("*.json")):
                rel = str(eval_root / path.relative_to(self.hashes.path(str(eval_root))))
                if path.name.endswith(META_SUFFIX):
                    continue
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    self.check(rel, "evaluation record", "JSON", "unreadable", [])
                    continue
                if record.get("kind") == "alignment":
                    expected = {(t, m) for t, m, _ in analysis_metrics(record)}
                else:
                    expected = {(record.get("task") or path.stem, m) for m in (record.get("metrics") or {})}
                missing = sorted(expected - in_table.get(rel, set()))
                self.check(
                    rel,
                    "rows in results.csv",
                    f"{len(expected)} rows",
                    f"{len(expected)} rows"
                    if not missing
                    else f"{len(expected) - len(missing)} rows (missing {missing[0][0]}/{missing[0][1]}"
                    + (f" and {len(missing) - 1} more)" if len(missing) > 1 else ")"),
                    [],
                )

    # -- dvc.lock ---------------------------------------------------------------------------
    def audit_dvc_lock(self, lock_path: Path, cache: Path) -> None:
        import yaml

        lock = yaml.safe_load(lock_path.read_text()) or {}
        for stage, spec in (lock.get("stages") or {}).items():
            for out in spec.get("outs") or []:
                path, md5 = out["path"], out.get("md5", "")
                if md5.endswith(".dir"):
                    listing = cache / "files" / "md5" / md5[:2] / md5[2:]
                    if not listing.is_file():
                        self.check(
                            path, f"dvc.lock listing ({stage})", md5, "not in the DVC cache: dvc pull", ()
                        )
                        continue
                    for entry in json.loads(listing.read_text()):
                        rel = str(Path(path) / entry["relpath"])
                        self.check(rel, "md5 (dvc.lock)", entry["md5"], self.hashes.md5(rel), ())
                else:
                    self.check(path, "md5 (dvc.lock)", md5, self.hashes.md5(path), ())

    def attach_rows(self, depends: list[set[str]]) -> None:
        """Every finding gets every row whose dependencies contain (or enclose) its artifact."""
        owners: dict[str, set[int]] = defaultdict(set)
        for index, artifacts in enumerate(depends):
            for artifact in artifacts:
                owners[artifact].add(index)
        for finding in self.findings.values():
            path = Path(finding.artifact)
            for candidate in (path, *path.parents):
                finding.rows |= owners.get(str(candidate), set())


def read_table(results_csv: str | Path) -> list[dict[str, str]]:
    path = Path(results_csv)
    if not path.is_file():
        raise InputError(f"results table {path}: no such file (run the report first: snakemake)")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"results table {path}: not a UTF-8 CSV ({exc})") from exc
    if not rows or "source_json" not in rows[0]:
        raise InputError(
            f"results table {path}: no rows with a source_json column (not a salt-transfer report?)"
        )
    return rows


def dvc_cache_dir(root: Path) -> Path:
    """The DVC cache: `cache.dir` of .dvc/config (relative to .dvc/) or .dvc/cache."""
    import configparser

    config = configparser.ConfigParser()
    config.read([root / ".dvc" / "config", root / ".dvc" / "config.local"])
    if config.has_option("cache", "dir"):
        return (root / ".dvc" / config.get("cache", "dir")).resolve()
    return root / ".dvc" / "cache"


def audit(results_csv: str | Path, dvc_lock: str | Path | None = None, root: str | Path = ".") -> AuditReport:
    """Check every row of `results_csv` (paths in it are relative to `root`) and `dvc_lock`."""
    root = Path(root)
    rows = read_table(results_csv)
    auditor = _Auditor(root)
    depends = [auditor.audit_row(i, row) for i, row in enumerate(rows)]
    table_rel = str(Path(results_csv))
    for artifacts in depends:
        artifacts.add(table_rel)
    auditor.audit_completeness(rows)
    if dvc_lock is not None:
        auditor.audit_dvc_lock(Path(dvc_lock), dvc_cache_dir(root))
    auditor.attach_rows(depends)
    return AuditReport(rows, auditor.findings, dict(auditor.commits))


def _rows_text(report: AuditReport, rows: set[int], limit: int = 6) -> str:
    labels = [_row_label(i, report.rows[i]) for i in sorted(rows)]
    if not labels:
        return "none"
    more = f" ... (+{len(labels) - limit})" if len(labels) > limit else ""
    return f"{len(labels)}: " + ", ".join(labels[:limit]) + more


def format_report(report: AuditReport) -> str:
    """The failures as a table (artifact, check, expected, found, rows affected), then a summary."""
    lines = []
    failures = sorted(report.failures, key=lambda f: (f.artifact, f.check))
    if failures:
        lines.append("artifact\tcheck\texpected\tfound\trows affected")
        for f in failures:
            lines.append(f"{f.artifact}\t{f.check}\t{f.expected}\t{f.found}\t{_rows_text(report, f.rows)}")
        lines.append("")
    checked = len({f.artifact for f in report.findings.values()})
    lines.append(
        f"audit: {len(report.rows)} rows, {checked} artifacts, {len(report.findings)} checks: "
        + ("all match" if report.ok else f"{len(failures)} FAILED")
    )
    for label, artifacts in sorted(report.commits.items()):
        lines.append(f"  {label}: {len(artifacts)} artifacts")
    return "\n".join(lines)


def write_manifest(report: AuditReport, path: str | Path) -> None:
    """Every check (ok or not) as TSV: artifact, check, expected, found, status, rows."""
    from .provenance import write_text_atomic

    out = ["artifact\tcheck\texpected\tfound\tstatus\trows"]
    for f in sorted(report.findings.values(), key=lambda f: (f.artifact, f.check)):
        rows = ",".join(str(i + 2) for i in sorted(f.rows))
        out.append(f"{f.artifact}\t{f.check}\t{f.expected}\t{f.found}\t{'ok' if f.ok else 'FAILED'}\t{rows}")
    write_text_atomic(path, "\n".join(out) + "\n")
