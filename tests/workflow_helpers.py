"""Running Snakemake on this workflow from tests, and what a config's grid should contain."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")


def run_snakemake(*args: str, cwd: Path = ROOT, timeout: int = 1500, env: dict | None = None):
    full_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    return subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_counts(output: str) -> dict[str, int]:
    """The job-stats table of a Snakemake dry run."""
    counts, table = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            table = True
            continue
        if table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
            elif counts:
                break
    return counts


def expected_jobs(config_path: Path) -> dict[str, int]:
    """Jobs a config's grid implies, computed from the config itself (not hard-coded)."""
    config = yaml.safe_load(Path(config_path).read_text())
    from salt_transfer.catalog import method_entries

    llms, plms = config["llms"], config["plms"]
    entries = method_entries(config["methods"])
    methods_of = {
        p: [m for m in entries if s.get("methods") in (None, []) or m in s["methods"]]
        for p, s in plms.items()
    }
    cells = len(llms) * sum(len(m) for m in methods_of.values())
    standin = [p for p, s in plms.items() if s["source"] == "standin"]
    trimmed = [p for p, s in plms.items() if s.get("trim")]
    langs = {s["language"] for s in plms.values()}
    pretrained = config.get("aux", {}).get("pretrained", {})
    # fastText vectors are trained only for PLMs with a cell whose method reads them.
    needs_aux = [p for p, ms in methods_of.items() if any("aux" in entries[m].info.needs for m in ms)]
    out = {
        "fit": cells,
        "transplant": cells,
        "pretrain": cells,
        "evaluate_init": cells,
        "evaluate_cpt": cells,
        "overlap": len(llms) * len(plms),
        "fetch_model": len(llms) + len(plms) - len(standin),
        "standin_plm": len(standin),
        "trim_plm": len(trimmed),
        "fasttext": sum(1 for p in needs_aux if not pretrained.get(plms[p]["language"])),
        "fetch_fasttext": len(
            {plms[p]["language"] for p in needs_aux if pretrained.get(plms[p]["language"]) == "cc"}
        ),
    }
    if config.get("evaluate", {}).get("source_baseline", True):
        out["evaluate_source"] = len(llms) * len(langs)
    return {k: v for k, v in out.items() if v}
