"""The key reference of config/README.md, rendered from config/schema.yaml.

The schema is the one home of every key's type, default, allowed values and description; the README's
"Keys" section is generated from it (`python -m salt_transfer.configdoc --write`), and a test fails when
the two differ, so a default is never written in two places. Light: yaml only, no torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schema.yaml"
README = ROOT / "config" / "README.md"
BEGIN = "<!-- keys: generated from config/schema.yaml by `python -m salt_transfer.configdoc --write` -->"
END = "<!-- end of generated keys -->"


def _type(node: dict) -> str:
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    kinds = node.get("type")
    if kinds is None and "oneOf" in node:
        return " or ".join(_type(alt) for alt in node["oneOf"])
    if isinstance(kinds, list):
        return " or ".join(kinds)
    if kinds == "array" and "items" in node:
        return f"list of {_type(node['items'])}"
    return kinds or "any"


def _default(node: dict) -> str:
    return "" if "default" not in node else f", default `{json.dumps(node['default'])}`"


def _bounds(node: dict) -> str:
    parts = []
    for key, sign in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            parts.append(f"{sign} {node[key]}")
    return f", {' and '.join(parts)}" if parts else ""


def _describe(node: dict) -> str:
    text = " ".join(str(node.get("description", "")).split())
    return text


def _resolve(node: dict, schema: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        target: Any = schema
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _entries(node: dict, path: str, schema: dict, depth: int) -> list[str]:
    node = _resolve(node, schema)
    lines = [
        f"{'  ' * depth}- **`{path}`** ({_type(node)}{_bounds(node)}{_default(node)}). {_describe(node)}".rstrip()
    ]
    children = node.get("properties")
    named = node.get("additionalProperties")
    if isinstance(named, dict) and named.get("properties"):
        # A map from a user-chosen name (an LLM, a PLM, a language) to a spec.
        children, path = named["properties"], f"{path}.NAME"
    for key, child in (children or {}).items():
        lines += _entries(child, f"{path}.{key}", schema, depth + 1)
    return lines


def render(schema_path: Path = SCHEMA) -> str:
    """The generated block: one bullet per key, nested as in the config."""
    schema = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    lines = [BEGIN, ""]
    for key, node in schema["properties"].items():
        lines += _entries(node, key, schema, 0)
    return "\n".join([*lines, "", END])


def updated(readme_text: str, block: str) -> str:
    """The README with its generated block replaced (appended when it has none)."""
    if BEGIN in readme_text and END in readme_text:
        head, rest = readme_text.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    return readme_text.rstrip("\n") + "\n\n" + block + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {README.relative_to(ROOT)} in place")
    args = parser.parse_args(argv)
    block = render()
    if args.write:
        README.write_text(updated(README.read_text(encoding="utf-8"), block), encoding="utf-8")
    else:
        sys.stdout.write(block + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
