"""Text corpora: fetch, split into never-overlapping train/valid/test, and parallel test pairs.

Usage:
    salt-transfer fetch-corpus --source sword:spaRV1909eb --parallel sword:engWEB2015eb \
        --split '{"by": "book", "valid": ["Ruth", "Jonah"], "test": ["Mark", "James"]}' --out-dir data/corpora/es

Offline, the demo's target language is Spanish: the public-domain Reina-Valera 1909 (`sword-text-sparv`,
module spaRV1909eb), with the World English Bible (`sword-text-web`, engWEB2015eb) as its English
parallel. `mod2imp` (Debian `libsword-utils`) exports a module as `$$$Book C:V` headers followed by
OSIS markup; `parse_imp` turns that into {"Genesis 1:1": "plain text", ...}. On a cluster the
paper's corpora come from `datasets` (Wikipedia), streamed and split by a stable hash of the article.
"""

from __future__ import annotations

import hashlib
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


def parse_imp(lines, markup: bool = False) -> dict[str, str]:
    """Parse `mod2imp` output lines into {"Book C:V": plain text} (or the raw OSIS markup), in order."""
    verses: dict[str, str] = {}
    key = None
    for line in lines:
        if line.startswith("$$$"):
            key = line[3:].strip()
        elif key and _VERSE_KEY.search(key):
            verses[key] = verses.get(key, "") + line
    if markup:
        return verses
    return {k: t for k, v in verses.items() if (t := clean_osis(v))}


def export_sword_module(module: str, markup: bool = False) -> dict[str, str]:
    """Run `mod2imp MODULE` and parse it (needs Debian's libsword-utils and the module package)."""
    try:
        out = subprocess.run(["mod2imp", module], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError as exc:
        raise InputError("mod2imp not found: apt-get install libsword-utils") from exc
    except subprocess.CalledProcessError as exc:
        raise InputError(f"SWORD module {module}: mod2imp failed ({exc.stderr.strip()[:200]})") from exc
    verses = parse_imp(out.splitlines(keepends=True), markup=markup)
    if not verses:
        raise InputError(f"SWORD module {module}: no verses (is its Debian package installed?)")
    return verses


def check_text_file(path: str | Path, label: str = "text") -> Path:
    """`path` as a Path, checked to be an existing file of UTF-8 text: an InputError naming it and
    the byte offset of the first invalid byte otherwise (a binary or Latin-1 file)."""
    import codecs

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{label} {path}: no such file")
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{label} {path}: not UTF-8 text (invalid byte at offset {offset + exc.start}); "
                    "convert it, e.g. iconv -f latin1 -t utf-8"
                ) from None
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{label} {path}: not UTF-8 text (ends inside a character)") from None
    with open(path, "rb") as f:
        if b"\x00" in f.read(1 << 16):
            raise InputError(f"{label} {path}: a binary file (NUL bytes), not text")
    return path


def read_lines(path: str | Path, label: str = "corpus") -> list[str]:
    """The non-empty lines of a UTF-8 text file (an InputError naming it when it is not one)."""
    path = check_text_file(path, label)
    return [line.rstrip("\n") for line in path.open(encoding="utf-8") if line.strip()]


# ----------------------------------------------------------------------------------------------
# Fetch + split


def _stable_unit(key: str, seed: int) -> float:
    """A deterministic number in [0, 1) per document key (same on every machine and Python run)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def book_of(ref: str) -> str:
    """'II Kings 3:4' -> 'II Kings'."""
    return ref.rsplit(" ", 1)[0]


def _sentences(text: str) -> list[str]:
    """Split running text into sentences (period/question/exclamation mark followed by a capital)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-ZÀ-ÖØ-Þ\u0600-\u06FF])", text.strip())
    return [p.strip() for p in parts if len(p.strip()) > 1]


def read_source(source: str, max_docs: int | None = None) -> dict[str, str]:
    """Documents {key: text} of a corpus source, in source order.

    sword:MODULE                 verses of a SWORD module (Debian sword-text-*), keyed "Book C:V"
    file:PATH                    one document per non-empty line, keyed by line number
    hf-dataset:NAME@REV[:CONFIG] the `text` field of a datasets corpus (e.g. Wikipedia), streamed;
                                 one document per article, keyed by article index
    """
    kind, _, rest = source.partition(":")
    if kind == "sword":
        docs = export_sword_module(rest)
    elif kind == "file":
        docs = {str(i): line for i, line in enumerate(read_lines(rest))}
    elif kind == "hf-dataset":
        docs = _read_hf_dataset(rest, max_docs)
    else:
        raise InputError(
            f"corpus source {source!r}: use sword:MODULE, file:PATH or hf-dataset:NAME@REV[:CONFIG]"
        )
    if max_docs is not None:
        docs = dict(list(docs.items())[:max_docs])
    return docs


def _read_hf_dataset(spec: str, max_docs: int | None) -> dict[str, str]:
    name, _, rest = spec.partition("@")
    revision, _, config = rest.partition(":")
    if not revision:
        raise InputError(
            f"hf-dataset:{spec}: pin a revision, e.g. hf-dataset:{name}@<commit>:{config or 'CONFIG'}"
        )
    import datasets

    stream = datasets.load_dataset(name, config or None, revision=revision, split="train", streaming=True)
    docs = {}
    for i, row in enumerate(stream):
        if max_docs is not None and i >= max_docs:
            break
        docs[str(i)] = row["text"]
    return docs


def split_documents(docs: dict[str, str], split: dict, seed: int = 0) -> dict[str, list[str]]:
    """Assign whole documents to train/valid/test so the splits never share a document.

    split = {"by": "book", "valid": [books], "test": [books]}   (SWORD Bibles)
          | {"by": "hash", "valid": 0.01, "test": 0.01}         (fractions of documents)
    """
    out: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    by = split.get("by", "hash")
    if by == "book":
        books = {book_of(k) for k in docs}
        for name in ("valid", "test"):
            unknown = sorted(set(split.get(name, [])) - books)
            if unknown:
                raise InputError(f"split {name}: unknown book(s) {unknown}; known: {sorted(books)[:8]}...")
        overlap = set(split.get("valid", [])) & set(split.get("test", []))
        if overlap:
            raise InputError(f"split: books {sorted(overlap)} are in both valid and test")
        for key in docs:
            book = book_of(key)
            part = (
                "valid"
                if book in split.get("valid", [])
                else "test"
                if book in split.get("test", [])
                else "train"
            )
            out[part].append(key)
    elif by == "hash":
        valid, test = float(split.get("valid", 0.01)), float(split.get("test", 0.01))
        if not (valid >= 0 and test >= 0 and valid + test < 1):
            raise InputError(
                f"split fractions valid={valid}, test={test}: need 0 <= each and valid + test < 1"
            )
        for key in docs:
            u = _stable_unit(key, seed)
            out["valid" if u < valid else "test" if u < valid + test else "train"].append(key)
    else:
        raise InputError(f"split by {by!r}: use 'book' or 'hash'")
    for name, keys in out.items():
        if not keys:
            raise InputError(f"split {name} is empty: adjust the split settings")
    return out


def fetch_corpus(
    source: str,
    out_dir: str | Path,
    split: dict,
    max_docs: int | None = None,
    sentences: bool = False,
    seed: int = 0,
) -> dict:
    """Write {train,valid,test}.txt (one document or sentence per line) and manifest.json."""
    from .provenance import file_hashes, write_json_atomic, write_text_atomic

    out_dir = Path(out_dir)
    docs = read_source(source, max_docs)
    parts = split_documents(docs, split, seed)
    counts = {}
    for name, keys in parts.items():
        lines = [s for k in keys for s in (_sentences(docs[k]) if sentences else [docs[k]])]
        lines = [" ".join(line.split()) for line in lines if line.strip()]
        write_text_atomic(out_dir / f"{name}.txt", "\n".join(lines) + "\n")
        counts[name] = {
            "documents": len(keys),
            "lines": len(lines),
            "bytes": sum(len(x.encode()) + 1 for x in lines),
        }
    manifest = {
        "source": source,
        "split": split,
        "seed": seed,
        "sentences": sentences,
        "max_docs": max_docs,
        "counts": counts,
        "files": {k: v for k, v in file_hashes(out_dir).items() if k in {f"{n}.txt" for n in parts}},
    }
    write_json_atomic(out_dir / "manifest.json", manifest)
    return manifest


def fetch_parallel(
    source: str, english: str, split: dict, out: str | Path, seed: int = 0, config_hash: str | None = None
) -> int:
    """Write a TSV (key, target text, English text) of the *test* documents both sources have.

    The split is recomputed from the target source with the same settings as `fetch_corpus`, so the
    pairs are never in the training text; parallel sentences feed the retrieval/CKA analyses and
    the cross-lingual tasks.
    """
    from .provenance import Meta, check_output, write_text_atomic

    check_output(out)
    docs = read_source(source)
    other = read_source(english)
    test = split_documents(docs, split, seed)["test"]
    pairs = [(k, docs[k], other[k]) for k in test if k in other]
    if not pairs:
        raise InputError(f"parallel source {english}: shares no test document key with {source}")
    clean = lambda t: " ".join(t.replace("\t", " ").split())  # noqa: E731
    meta = Meta(
        "fetch-parallel",
        params={"source": source, "english": english, "split": split, "pairs": len(pairs)},
        seed=seed,
        config_hash=config_hash,
    )
    write_text_atomic(out, "".join(f"{k}\t{clean(a)}\t{clean(b)}\n" for k, a, b in pairs), meta)
    return len(pairs)


def read_parallel(path: str | Path) -> list[tuple[str, str, str]]:
    """(key, target text, English text) rows of a parallel.test.tsv."""
    path = check_text_file(path, "parallel text")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("\t")
        if len(parts) != 3:
            raise InputError(
                f"parallel text {path}: line {number} has {len(parts)} fields, expected 3 (key, target, English)"
            )
        rows.append((parts[0], parts[1], parts[2]))
    return rows


# ----------------------------------------------------------------------------------------------
# Bilingual lexicon from Strong's numbers

_STRONG_SPAN = re.compile(r'<w [^>]*lemma="strong:([HG]\d+)[^"]*"[^>]*>(.*?)</w>', re.S)


def _strong_heads(markup: str) -> dict[str, list[str]]:
    """Strong's number -> the head (last) word of each span tagged with it, lowercased, letters only."""
    out: dict[str, list[str]] = {}
    for number, span in _STRONG_SPAN.findall(re.sub(r"<note.*?</note>", "", markup, flags=re.S)):
        words = [
            w for w in re.findall(r"\w+", html.unescape(re.sub(r"<[^>]+>", "", span)).lower()) if w.isalpha()
        ]
        if words:
            key = number[0] + (number[1:].lstrip("0") or "0")  # H0430 and H430 are the same entry
            out.setdefault(key, []).append(words[-1])
    return out


def strongs_lexicon(
    target: str, english: str, min_count: int = 3, min_share: float = 0.5
) -> list[tuple[str, str, int]]:
    """(target word, English word, count) from two Strong's-tagged SWORD Bibles.

    Words tagged with the same Strong's number in the same verse co-occur; a target word's
    translation is its most frequent English co-occurrent, kept if seen at least `min_count` times
    and in at least `min_share` of that word's co-occurrences (the head of a multi-word span, e.g.
    "tierra" of "y la tierra", stands for the span).
    """
    kind_t, _, mod_t = target.partition(":")
    kind_e, _, mod_e = english.partition(":")
    if kind_t != "sword" or kind_e != "sword":
        raise InputError(f"Strong's lexicon needs two sword: sources, got {target!r} and {english!r}")
    tgt, eng = export_sword_module(mod_t, markup=True), export_sword_module(mod_e, markup=True)
    lexicon = lexicon_from_markup(tgt, eng, min_count, min_share)
    if not lexicon:
        raise InputError(f"no lexicon pairs from {target} and {english}: are both Strong's-tagged?")
    return lexicon


def lexicon_from_markup(
    tgt: dict[str, str], eng: dict[str, str], min_count: int = 3, min_share: float = 0.5
) -> list[tuple[str, str, int]]:
    """The lexicon from verse markup of both Bibles ({key: OSIS}); see `strongs_lexicon`."""
    from collections import Counter

    pairs: Counter = Counter()
    for key in tgt.keys() & eng.keys():
        a, b = _strong_heads(tgt[key]), _strong_heads(eng[key])
        for number in a.keys() & b.keys():
            for wa in a[number]:
                for wb in b[number]:
                    pairs[(wa, wb)] += 1
    by_target: dict[str, Counter] = {}
    for (wa, wb), n in pairs.items():
        by_target.setdefault(wa, Counter())[wb] += n
    lexicon = []
    for wa, counter in by_target.items():
        wb, n = counter.most_common(1)[0]
        if n >= min_count and n / sum(counter.values()) >= min_share:
            lexicon.append((wa, wb, n))
    return sorted(lexicon, key=lambda r: (-r[2], r[0]))


def write_lexicon(
    rows: list[tuple[str, str, int]],
    out: str | Path,
    source: dict | None = None,
    config_hash: str | None = None,
) -> None:
    """The lexicon TSV (target word, English word, count) with its sidecar (`source`: how it was built)."""
    from .provenance import Meta, write_text_atomic

    meta = Meta("build-lexicon", params={**(source or {}), "pairs": len(rows)}, config_hash=config_hash)
    write_text_atomic(out, "".join(f"{a}\t{b}\t{n}\n" for a, b, n in rows), meta)


MUSE_URL = "https://dl.fbaipublicfiles.com/arrival/dictionaries/{lang}-en.txt"


def muse_lexicon(lang: str, url: str | None = None) -> list[tuple[str, str, int]]:
    """A MUSE bilingual dictionary LANG-en (Conneau et al. 2018), as (word, English word, 1) rows."""
    import urllib.request

    url = url or MUSE_URL.format(lang=lang)
    try:
        with urllib.request.urlopen(url) as response:  # noqa: S310 (https, or file:// for tests)
            text = response.read().decode("utf-8")
    except (OSError, ValueError) as exc:
        raise InputError(f"MUSE dictionary {url}: cannot be downloaded ({exc})") from exc
    rows = [tuple(line.split()[:2]) for line in text.splitlines() if len(line.split()) >= 2]
    if not rows:
        raise InputError(f"MUSE dictionary {url}: no word pairs")
    return [(a, b, 1) for a, b in rows]
