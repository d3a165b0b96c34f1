"""Workflow files stay in step with the package: conda env pins, option defaults, the method catalog."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from salt_transfer.methods import REGISTRY

ROOT = Path(__file__).resolve().parents[2]


def test_conda_env_matches_pyproject_dependencies():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "envs" / "salt-transfer.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    norm = lambda s: re.sub(r"\s+", "", s).lower()  # noqa: E731
    assert sorted(map(norm, pip)) == sorted(map(norm, deps))


def test_every_catalog_method_has_code_and_every_registered_method_is_in_the_catalog():
    from salt_transfer.catalog import METHODS

    assert set(REGISTRY) == set(METHODS)
    for name, spec in REGISTRY.items():
        assert spec.options is METHODS[name].options and spec.needs == METHODS[name].needs
        assert spec.doc and spec.reference == METHODS[name].reference


@pytest.mark.parametrize(
    "section,cls",
    [
        ("aux", "FastTextOptions"),
        ("standin_plm", "StandinOptions"),
        ("pretrain", "TrainArguments"),
        ("trim", "TrimOptions"),
    ],
)
def test_schema_defaults_are_the_dataclass_defaults(section, cls):
    """Defaults live in the option dataclasses; the schema repeats them for documentation only."""
    from salt_transfer import settings
    from salt_transfer.options import defaults

    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    props = schema["properties"][section]["properties"]
    truth = defaults(getattr(settings, cls))
    in_schema = {k: v["default"] for k, v in props.items() if k in truth}
    assert in_schema, section
    assert in_schema == {k: truth[k] for k in in_schema}


def test_lr_schedulers_are_transformers_scheduler_names():
    from transformers.trainer_utils import SchedulerType

    from salt_transfer.settings import LR_SCHEDULERS

    assert set(LR_SCHEDULERS) <= {s.value for s in SchedulerType}


def test_paper_lm_eval_tasks_exist_in_the_pinned_harness():
    """Every lm-eval task the paper config names, for each of its languages, is in lm-eval's registry."""
    from lm_eval.tasks import TaskManager

    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    langs = {spec["language"] for spec in config["plms"].values()}
    names = {
        task.format(lang=lang) for task in config["evaluate"]["lm_eval_tasks"].values() for lang in langs
    }
    assert len(names) == 7 * 3
    from salt_transfer.mlqa import is_mlqa_task, lm_eval_task_yaml

    ours = {n for n in names if is_mlqa_task(n)}
    assert len(ours) == 3 * 3  # MLQA through the workflow's converted release: lm-eval's own task beneath
    registry = set(TaskManager().all_tasks)
    assert not names - ours - registry
    for name in ours:
        context, question = name.split("_")[2:]
        assert f"mlqa_{context}_{question}" in registry and lm_eval_task_yaml(context, question)


def _profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def _gpu_rules() -> set[str]:
    """Rules whose declaration asks for a GPU (`resources: gpu=...`)."""
    rules = set()
    for smk in (ROOT / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule )", smk.read_text()):
            name = re.match(r"rule (\w+):", block)
            if name and re.search(r"resources:\s*\n\s*gpu=", block):
                rules.add(name.group(1))
    return rules


def test_the_local_slurm_profile_has_the_keys_of_the_cluster_profile():
    """profiles/slurm-local is profiles/slurm sized for slurm-local.sh: same settings, same rules."""
    cluster, local = _profile("slurm"), _profile("slurm-local")
    extra_local = {"slurm-init-seconds-before-status-checks"}  # fast polling
    assert set(local) - extra_local == set(cluster)
    assert set(local["set-resources"]) == set(cluster["set-resources"])
    for rule, resources in cluster["set-resources"].items():
        assert set(local["set-resources"][rule]) == set(resources), rule
    assert local["set-threads"].keys() == cluster["set-threads"].keys()


def test_gpu_rules_get_gpus_and_pretrain_a_checkpoint_signal_in_both_slurm_profiles():
    from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options

    assert {"fit", "pretrain"} <= _gpu_rules()
    for name in ("slurm", "slurm-local"):
        profile = _profile(name)
        assert profile["executor"] == "slurm" and profile["retries"] >= 1 and profile["slurm-logdir"]
        # sacct's "CANCELLED by <uid>" hangs plugin 2.8.0 on a scancel'ed job (profiles/slurm says more)
        assert profile["slurm-status-command"] == "squeue"
        for rule in _gpu_rules():
            resources = profile["set-resources"][rule]
            assert resources["gpu"] >= 1 and resources["cpus_per_gpu"] >= 1, (name, rule)
        # URG, which the trainer turns into a checkpoint (and the processes above it ignore).
        assert re.fullmatch(r"--signal=URG@\d+", profile["set-resources"]["pretrain"]["slurm_extra"])
        for resources in profile["set-resources"].values():
            for pattern in get_forbidden_slurm_options():  # what the plugin would reject at submit time
                assert not re.search(pattern, resources.get("slurm_extra", "")), (name, pattern)


def test_site_settings_stay_out_of_rules_and_config():
    """Partitions, accounts, constraints and GPU types live only in profiles/ (house style 2 and 6)."""
    site_keys = re.compile(r"\b(slurm_partition|slurm_account|constraint|gpu_model|gres)\b")
    for path in [*ROOT.glob("rules/*.smk"), ROOT / "Snakefile", *ROOT.glob("config/*.yaml")]:
        assert not site_keys.search(path.read_text()), path


def test_no_reference_points_outside_the_repository():
    """Users have the repository, not the developers' notes: docs/ holds what the README points to."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".py", ".md", ".yaml", ".smk", ".sh", ".toml"} or path.name == "Snakefile":
            text = path.read_text(encoding="utf-8", errors="replace")
            if "../shared" in text or "paper-notes" in text:
                offenders.append(name)
    assert offenders in ([], ["tests/unit/test_workflow_files.py"])
    for doc in ("docs/paper.md", "docs/design.md", "docs/offline-assets.md"):
        assert (ROOT / doc).is_file()


def test_convergence_config_runs_the_demo_cells_longer():
    """config/convergence.yaml is the demo's grid with longer training and larger tasks: nothing
    else may drift (it is a full copy because a --configfile replaces the demo, see Snakefile)."""
    demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    long = yaml.safe_load((ROOT / "config" / "convergence.yaml").read_text())
    assert {k for k in demo.keys() | long.keys() if demo.get(k) != long.get(k)} == {"pretrain", "evaluate"}
    assert long["pretrain"]["max_steps"] >= 200 and long["pretrain"]["heldout"]
    assert long["evaluate"]["demo_tasks"] >= 50
    assert long["pretrain"]["max_train_tokens"] >= (
        long["pretrain"]["max_steps"] * long["pretrain"]["batch_size"] * long["pretrain"]["seq_len"]
    )


def test_schema_fasttext_url_is_the_librarys():
    from salt_transfer.downloads import CC_URL

    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    assert schema["properties"]["aux"]["properties"]["fasttext_url"]["default"] == CC_URL


def test_schema_mlqa_url_is_the_librarys():
    from salt_transfer.mlqa import MLQA_URL

    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    assert schema["properties"]["evaluate"]["properties"]["mlqa_url"]["default"] == MLQA_URL


def test_config_readme_keys_are_generated_from_the_schema():
    """Each key's type, default and description live in config/schema.yaml only; config/README.md's
    key list is rendered from it (`python -m salt_transfer.configdoc --write` after a schema edit)."""
    from salt_transfer import configdoc

    readme = (ROOT / "config" / "README.md").read_text()
    block = configdoc.render()
    assert block in readme, "config/README.md is out of date: run `python -m salt_transfer.configdoc --write`"
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    for key in schema["properties"]["pretrain"]["properties"]:
        assert f"`pretrain.{key}`" in block


@pytest.mark.parametrize("caption", sorted((ROOT / "report").glob("*.rst")), ids=lambda p: p.name)
def test_report_captions_are_valid_restructuredtext(caption):
    """Snakemake renders the captions with docutils; an error shows up as a "System Message" box."""
    import io

    import docutils.core

    messages = io.StringIO()
    docutils.core.publish_parts(
        caption.read_text(),
        writer_name="html",
        settings_overrides={"warning_stream": messages, "report_level": 2},
    )
    assert messages.getvalue() == ""
