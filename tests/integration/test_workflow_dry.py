"""Fast workflow checks (marker `dry`): lint, dry runs of every config with the job counts each
config's grid implies, and config errors caught at validation with a short message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from workflow_helpers import ROOT, SNAKEMAKE, expected_jobs, job_counts, run_snakemake

pytestmark = [pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed"), pytest.mark.dry]

CONFIGS = sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "config").glob("*.yaml") if p.name != "schema.yaml"
)


@pytest.mark.parametrize("config", CONFIGS)
def test_lint_is_clean(config):
    proc = run_snakemake("--lint", "--configfile", config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("config", CONFIGS)
def test_dry_run_lists_the_grid_the_config_implies(tmp_path, config):
    proc = run_snakemake("-n", "--configfile", str(ROOT / config), "--directory", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    for rule, n in expected_jobs(ROOT / config).items():
        assert counts.get(rule) == n, (config, rule, counts)
    assert "analyze" not in counts  # alignment runs inside evaluate


def test_demo_is_the_default_config(tmp_path):
    default = job_counts(run_snakemake("-n", "--directory", str(tmp_path)).stdout)
    demo = job_counts(
        run_snakemake(
            "-n", "--configfile", str(ROOT / "config/demo.yaml"), "--directory", str(tmp_path)
        ).stdout
    )
    assert default == demo


def test_paper_dry_run_replaces_the_demo_config(tmp_path):
    proc = run_snakemake("-n", "--configfile", str(ROOT / "config/paper.yaml"), "--directory", str(tmp_path))
    assert proc.returncode == 0 and "smollm2" not in proc.stdout  # replaced, not merged


def write_config(path: Path, **changes) -> Path:
    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        ({"methods": {"salt": {}, "wechsel": {}}}, "wechsel"),
        ({"plms": {"x": {"language": "es", "architecture": "encoder"}}}, "'source' is a required property"),
        ({"seed": "zero"}, "'zero' is not of type 'integer'"),
        (
            {"plms": {"x": {"language": "fr", "architecture": "encoder", "source": "standin"}}},
            "plms.x.language",
        ),
        ({"methods": {"ofa": {"rnk": 5}}}, "methods.ofa: unknown rnk"),
        ({"methods": {"procrustes": {"kind": "banana"}}}, "choose one of ols, orthogonal"),
        ({"methods": {"capped": {"method": "salt", "norm_cap": "high"}}}, "expected float"),
        (
            {
                "plms": {
                    "x": {
                        "language": "es",
                        "architecture": "encoder",
                        "source": "standin",
                        "methods": ["fokus"],
                    }
                }
            },
            "plms.x.methods: ['fokus'] are not cells of `methods`",
        ),
        (
            {"evaluate": {"lm_eval_tasks": {"hs": "hellaswag_{lang}_nope"}}},
            "'hellaswag_es_nope' is not a task of the installed lm-evaluation-harness",
        ),
        (
            {"corpora": {"es": {"source": "file:/nonexistent/es.txt", "split": {"by": "hash"}}}},
            "corpora.es.source: no such file",
        ),
        ({"methodz": {"salt": {}}}, "methodz"),
    ],
)
def test_invalid_configs_fail_with_a_short_message(tmp_path, change, message):
    config = write_config(tmp_path / "bad.yaml", **change)
    proc = run_snakemake("-n", "--configfile", str(config), "--directory", str(tmp_path))
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert len((proc.stdout + proc.stderr).splitlines()) < 40  # the reason, not the whole schema


def test_a_key_written_twice_is_refused_with_its_line(tmp_path):
    text = (
        (ROOT / "config/demo.yaml")
        .read_text()
        .replace(
            "plms:\n",
            "plms:\n  es-t5:\n    language: es\n    architecture: encoder\n    source: standin\n",
            1,
        )
    )
    (tmp_path / "dup.yaml").write_text(text)
    proc = run_snakemake("-n", "--configfile", str(tmp_path / "dup.yaml"), "--directory", str(tmp_path))
    assert proc.returncode != 0
    assert re.search(r"dup\.yaml:\d+: key 'es-t5' appears twice", proc.stdout + proc.stderr)
