"""Model cards: a Hugging Face `README.md` in every transferred and continually pretrained model directory.

The YAML header follows the Hub's model-card metadata (`base_model`, `language`, `library_name`,
`tags`, `license`); the body says how the model was made: method and its options, PLM, overlap counts,
training steps and tokens, the evaluation numbers known at that point (held-out bits per byte during
continual pretraining), and the sha256 of the inputs. Everything in it is derived from the content of
the inputs (no paths, no times), so the same inputs give the same card, byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Known source models and their licenses (config `license:` overrides; unknown sources get none).
_LICENSES = {"smollm2": "apache-2.0", "gemma": "gemma", "xglm": "mit"}


def _yaml_scalar(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ":#{}[],&*?|-<>=!%@`'\"") or text.strip() != text:
        return json.dumps(text, ensure_ascii=False)
    return text


def _header(meta: dict[str, Any]) -> str:
    lines = ["---"]
    for key in ("base_model", "language", "library_name", "license", "pipeline_tag"):
        if meta.get(key):
            lines.append(f"{key}: {_yaml_scalar(meta[key])}")
    if meta.get("tags"):
        lines.append("tags:")
        lines += [f"- {_yaml_scalar(t)}" for t in meta["tags"]]
    lines.append("---")
    return "\n".join(lines)


def license_id(text: str | None) -> str | None:
    """A Hub license identifier for a free-text license ("Apache-2.0" -> apache-2.0)."""
    if not text:
        return None
    low = text.strip().lower()
    if "gemma" in low:
        return "gemma"
    return {"apache-2.0": "apache-2.0", "apache 2.0": "apache-2.0", "mit": "mit"}.get(low, "other")


def model_card(
    *,
    title: str,
    base_model: str | None,
    language: str | None,
    license: str | None,
    method: str,
    sections: dict[str, dict[str, Any]],
    tags: list[str] | None = None,
) -> str:
    """The card's text: header, a title, and one table per section (name -> {field: value})."""
    header = _header(
        {
            "base_model": base_model,
            "language": language,
            "library_name": "transformers",
            "license": license_id(license),
            "pipeline_tag": "text-generation",
            "tags": ["salt-transfer", "cross-lingual-vocabulary-transfer", method, *(tags or [])],
        }
    )
    body = [header, "", f"# {title}", ""]
    body.append(
        "Made with [salt-transfer](https://arxiv.org/abs/2505.10945) (SALT: Lee et al., Findings of ACL 2025, "
        "and its baselines). The numbers below come from the run that produced this directory."
    )
    for name, fields in sections.items():
        body += ["", f"## {name}", "", "| | |", "|---|---|"]
        for key, value in fields.items():
            if value is None or value == "":
                continue
            body.append(f"| {key} | {value} |")
    return "\n".join(body) + "\n"


def _read_json(path: Path | None) -> dict[str, Any]:
    if path is None or not Path(path).is_file():
        return {}
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}


def transfer_sections(
    record: dict[str, Any], fit_report: dict[str, Any], overlap_stats: dict[str, Any], hashes: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """The card sections of a transferred (not yet trained) model."""
    method = fit_report.get("method") or record.get("method")
    return {
        "Transfer": {
            "method": f"`{fit_report.get('name') or method}` ({method}; {fit_report.get('reference', '')})",
            "method options": json.dumps(fit_report.get("options", {}), sort_keys=True)
            if fit_report
            else None,
            "target vocabulary": record.get("vocab_size"),
            "shared tokens (copied)": fit_report.get("n_copied"),
            "new tokens fitted": fit_report.get("n_fitted"),
            "new tokens random (no auxiliary vector)": fit_report.get("n_random"),
            "tied LM head": record.get("tied_head"),
            "overlap: target tokens shared": overlap_stats.get("n_shared"),
            "overlap: coverage of the target vocabulary": (
                f"{100 * overlap_stats['target_coverage']:.1f}%"
                if "target_coverage" in overlap_stats
                else None
            ),
            "seed": fit_report.get("seed"),
        },
        "Provenance (sha256)": hashes,
    }
