"""Offline text corpora: SWORD Bible modules from Debian (`sword-text-*`) as aligned verses.

The demo's target language is Spanish: the public-domain Reina-Valera 1909 (`sword-text-sparv`,
module spaRV1909eb), with the World English Bible (`sword-text-web`, engWEB2015eb) as its English
parallel. `mod2imp` (Debian `libsword-utils`) exports a module as `$$$Book C:V` headers followed by
OSIS markup; `read_imp` turns that into {"Genesis 1:1": "plain text", ...}.
"""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

from .errors import InputError

_VERSE_KEY = re.compile(r" [1-9]\d*:[1-9]\d*$")


def clean_osis(markup: str) -> str:
    """OSIS verse markup -> plain text (notes dropped, word tags unwrapped, whitespace collapsed)."""
    text = re.sub(r"<note.*?</note>", "", markup, flags=re.S)
    text = re.sub(r"</w>\s*(?=<w)", "</w> ", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def parse_imp(lines) -> dict[str, str]:
    """Parse `mod2imp` output lines into {"Book C:V": plain text}, in canonical order."""
    verses: dict[str, str] = {}
    key = None
    for line in lines:
        if line.startswith("$$$"):
            key = line[3:].strip()
        elif key and _VERSE_KEY.search(key):
            verses[key] = verses.get(key, "") + line
    return {k: t for k, v in verses.items() if (t := clean_osis(v))}


def export_sword_module(module: str) -> dict[str, str]:
    """Run `mod2imp MODULE` and parse it (needs Debian's libsword-utils and the module package)."""
    try:
        out = subprocess.run(["mod2imp", module], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError as exc:
        raise InputError("mod2imp not found: apt-get install libsword-utils") from exc
    except subprocess.CalledProcessError as exc:
        raise InputError(f"SWORD module {module}: mod2imp failed ({exc.stderr.strip()[:200]})") from exc
    verses = parse_imp(out.splitlines(keepends=True))
    if not verses:
        raise InputError(f"SWORD module {module}: no verses (is its Debian package installed?)")
    return verses


def read_lines(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"corpus {path}: no such file")
    return [line.rstrip("\n") for line in path.open(encoding="utf-8") if line.strip()]
