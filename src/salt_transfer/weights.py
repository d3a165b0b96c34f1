"""Model weights: devices, loading saved models, and reading embedding matrices without loading whole models.

Embedding matrices are read through `RowMatrix`, which slices safetensors files row-block by
row-block: a 256k x 4096 source matrix (4 GiB in fp32) never has to be in memory at once.
`embedding_layout` finds a model's input embedding and (untied) LM head by parameter name.
Fetching models into local directories is `salt_transfer.fetch`.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import InputError

LOG = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Devices and saved models


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda` without a GPU is an input error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA device is available (use --device auto or cpu)")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise InputError(f"--device {name}: choose auto, cpu or cuda[:N]")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run natively on `device`: a GPU that supports them, or a CPU with
    AVX512-BF16 or AMX (elsewhere PyTorch emulates them, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = [
        getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    return any(check() for check in checks if check is not None)


def require_model_dir(model_dir: str | Path, label: str = "model") -> Path:
    """`model_dir` as a Path, checked: a saved model (config.json that is JSON) whose safetensors
    files are complete. An input error naming it otherwise."""
    model_dir = Path(model_dir)
    config = model_dir / "config.json"
    if not config.is_file():
        raise InputError(f"{label} {model_dir}: not a model directory (no config.json)")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{label} {model_dir}: config.json is not JSON ({exc})") from exc
    check_weights(model_dir, label=f"{label} {model_dir}")
    return model_dir


def check_weights(model_dir: str | Path, label: str) -> None:
    """Every *.safetensors file of `model_dir` has a readable header and all the bytes it announces
    (a truncated or foreign file is an input error here, not a traceback deep inside a load)."""
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        try:
            data_start, header = safetensors_header(file)
        except InputError as exc:
            raise InputError(f"{label}: {exc}") from None
        ends = [e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"]
        if file.stat().st_size < data_start + max(ends, default=0):
            raise InputError(f"{label}: {file.name} is truncated (fewer bytes than its header announces)")


def load_causal_lm(model_dir: str | Path, device: torch.device | str):
    """A saved causal LM in float32 on `device`, in eval mode, and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = require_model_dir(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    return model, tokenizer


def model_class_for(config):
    import transformers

    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls
    return transformers.AutoModel


# ----------------------------------------------------------------------------------------------
# Embedding matrices


_ST_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}


def safetensors_header(path: str | Path) -> tuple[int, dict]:
    """(byte offset where tensor data starts, header dict) of a safetensors file; an InputError
    naming the file when it is not one (too short, header length beyond the file, not JSON)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights {path}: no such file")
    size_on_disk = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise InputError(f"weights {path}: not a safetensors file (shorter than 8 bytes)")
        (size,) = struct.unpack("<Q", head)
        if size > size_on_disk - 8 or size > 100 * 1024**2:
            raise InputError(f"weights {path}: not a safetensors file (header length {size} is impossible)")
        try:
            header = json.loads(f.read(size))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"weights {path}: not a safetensors file (header is not JSON)") from exc
    if not isinstance(header, dict):
        raise InputError(f"weights {path}: not a safetensors file (header is not a JSON object)")
    return 8 + size, header


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

    Streamed blocks (`iter_blocks`) are private memory maps of one block's byte range each, dropped
    when the consumer moves on: a pass then reads the page cache in place instead of copying it into
    a fresh buffer first (a 2 GiB pass over the 128k x 4096 source took 2.0-2.7 s with positioned
    reads, 0.9-1.8 s mapped, statistics included). Mapping the whole file instead would keep every
    page it touched counted in the process's RSS for the whole pass (4 GiB for Gemma-3). The maps
    are copy-on-write, so a consumer that writes into a block changes only its own copy.
    `block` (a range the caller keeps) still reads into ordinary memory.
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

    def _map(self, f, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) as a tensor over a private map of their bytes (freed with the tensor)."""
        itemsize = self._dtype.itemsize
        first = self._offset + start * self.dim * itemsize
        length = (stop - start) * self.dim * itemsize
        if length == 0:
            return torch.empty(0, self.dim, dtype=self._dtype)
        aligned = first - first % mmap.ALLOCATIONGRANULARITY  # mmap offsets must be page multiples
        if first + length > self._file_size:
            raise InputError(f"{self.label}: {self.path} is truncated")
        mapped = mmap.mmap(f.fileno(), first + length - aligned, offset=aligned, access=mmap.ACCESS_COPY)
        # The tensor holds the buffer (and so the map) until it is freed; the map is then unmapped.
        flat = torch.frombuffer(mapped, dtype=self._dtype, offset=first - aligned, count=length // itemsize)
        return flat.view(stop - start, self.dim)

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
            self._file_size = os.fstat(f.fileno()).st_size
            for start in range(0, self.n_rows, rows_per_block):
                yield start, self._map(f, start, min(start + rows_per_block, self.n_rows))

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


# Checkpoint key endings of input embeddings in the common architectures (Llama/Gemma/Mistral/Qwen/
# XGLM `embed_tokens`, BERT `word_embeddings`, GPT-2 `wte`).
_INPUT_KEYS = ("embed_tokens.weight", "word_embeddings.weight", "wte.weight")


def _layout_from_checkpoint(model_dir: Path, causal_lm: bool) -> EmbeddingLayout | None:
    """The layout read from config.json and the safetensors headers alone (no transformers import,
    which costs a short command seconds), when they leave no doubt: exactly one input-embedding key,
    and for a causal LM a known tie flag or an LM head that is absent (so tied) or present and untied.
    None otherwise: `embedding_layout` then asks transformers."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    keys = _checkpoint_keys(model_dir)
    inputs = [k for k in keys if k.endswith(_INPUT_KEYS)]
    if len(inputs) != 1:
        return None
    input_key = inputs[0]
    output_key, tied = None, False
    if causal_lm:
        heads = [k for k in keys if k.endswith("lm_head.weight")]
        tie = text.get("tie_word_embeddings", config.get("tie_word_embeddings"))
        if len(heads) > 1 or (heads and tie is None) or (not heads and tie is False):
            return None
        tied = not heads or bool(tie)
        output_key = None if tied else heads[0]
    matrix = lambda key, label: RowMatrix(keys[key], key, label=f"{label} ({key} in {model_dir})")  # noqa: E731
    return EmbeddingLayout(
        input=matrix(input_key, "input embedding"),
        output=matrix(output_key, "LM head") if output_key else None,
        tied=tied,
        input_name=input_key,
        output_name=output_key,
    )


def embedding_layout(model_dir: str | Path, causal_lm: bool) -> EmbeddingLayout:
    """Locate the input embedding (and the LM head if untied) of a saved model without loading it.

    From the checkpoint's own key names when they are unambiguous; otherwise the model is
    instantiated on the meta device to learn parameter names, and the matching tensors are then read
    from the safetensors files. A checkpoint without safetensors is loaded whole instead.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise InputError(f"model {model_dir}: no config.json (fetch it with `salt-transfer fetch-model`)")
    if any(model_dir.glob("*.safetensors")):
        fast = _layout_from_checkpoint(model_dir, causal_lm)
        if fast is not None:
            return fast
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    cls = AutoModelForCausalLM if causal_lm else model_class_for(config)
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
