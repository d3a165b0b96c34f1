"""Workflow files stay in step with the package: conda env pins and the methods' needs."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import yaml

from salt_transfer.methods import REGISTRY

ROOT = Path(__file__).resolve().parents[2]


def test_conda_env_matches_pyproject_dependencies():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "envs" / "salt-transfer.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    norm = lambda s: re.sub(r"\s+", "", s).lower()  # noqa: E731
    assert sorted(map(norm, pip)) == sorted(map(norm, deps))


def test_method_needs_in_common_smk_match_the_registry():
    text = (ROOT / "rules" / "common.smk").read_text()
    block = re.search(r"METHOD_NEEDS = (\{.*?\n\})", text, re.S).group(1)
    needs = {k: set(v) for k, v in ast.literal_eval(block.replace("set()", "[]")).items()}
    assert needs == {name: set(spec.needs) for name, spec in REGISTRY.items()}


def test_schema_lists_every_registered_method():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    assert set(schema["properties"]["methods"]["propertyNames"]["enum"]) == set(REGISTRY)


def test_paper_lm_eval_tasks_exist_in_the_pinned_harness():
    """Every lm-eval task the paper config names, for each of its languages, is in lm-eval's registry."""
    from lm_eval.tasks import TaskManager

    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    langs = {spec["language"] for spec in config["plms"].values()}
    names = {
        task.format(lang=lang) for task in config["evaluate"]["lm_eval_tasks"].values() for lang in langs
    }
    assert len(names) == 7 * 3
    assert not names - set(TaskManager().all_tasks)
