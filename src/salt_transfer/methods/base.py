"""What every transfer method receives (`TransferProblem`) and returns (`MethodResult`).

Vocabulary: the *target* vocabulary is the PLM's (it replaces the LLM's, paper Step 0); *shared*
tokens are target tokens matched to a source-LLM token by `salt-transfer overlap`; *new* tokens are
all other target ids; *rare* new tokens have no usable auxiliary vector. Rows live in the source
LLM's stored embedding space (no architecture scaling such as Gemma's sqrt(hidden) is applied).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError
from ..fasttext_vectors import AuxVectors
from ..weights import RowMatrix
from .support import SparseRows

LOG = logging.getLogger(__name__)

# Rows are streamed in blocks of this many for statistics (8192 x 4096 fp32 = 128 MiB).
_STATS_BLOCK = 8192


class SourceRows:
    """The source LLM matrix (input embedding or untied head): shared rows plus streamed statistics.

    One pass over the stored matrix gathers the shared rows, checks every row is finite, and sums
    the first two moments in float64. Covariance and Gram matrices (multivariate, OFA's low-rank
    variant) are computed by a further pass only when a method asks for them.
    """

    def __init__(self, matrix: RowMatrix, shared_ids: torch.Tensor, dtype: torch.dtype = torch.float32):
        self.matrix = matrix
        self.dim = matrix.dim
        self.n = matrix.n_rows
        if self.n < 2:
            raise InputError(f"{matrix.label}: needs at least 2 rows, has {self.n}")
        shared_ids = torch.as_tensor(shared_ids, dtype=torch.long)
        if len(shared_ids) and int(shared_ids.max()) >= self.n:
            raise InputError(
                f"{matrix.label}: overlap names source id {int(shared_ids.max())} but the matrix has "
                f"{self.n} rows; was the overlap computed with this model's tokenizer?"
            )
        order = torch.argsort(shared_ids)
        sorted_ids = shared_ids[order]
        self.shared = torch.empty(len(shared_ids), self.dim, dtype=dtype)
        # Per-block mean and centred sum of squares in float32, merged in float64 (Chan et al.'s
        # parallel variance): exact enough, and no float64 copy of each block.
        count, mean, m2 = (
            0,
            torch.zeros(self.dim, dtype=torch.float64),
            torch.zeros(self.dim, dtype=torch.float64),
        )
        for start, block in matrix.iter_blocks(_STATS_BLOCK):
            block = block.float()
            b_mean = block.mean(0)
            b_m2 = (block - b_mean).square_().sum(0)
            if not bool(torch.isfinite(b_m2).all()):
                bad = ~torch.isfinite(block).all(dim=1)
                if bad.any():
                    row = start + int(bad.nonzero()[0])
                    raise InputError(
                        f"{matrix.label}: row {row} is not finite (NaN or Inf); the weights are corrupt"
                    )
                b_m2 = (
                    (block.double() - b_mean.double()).square_().sum(0)
                )  # float32 overflow: redo this block
            n_b = len(block)
            delta = b_mean.double() - mean
            total = count + n_b
            mean = mean + delta * (n_b / total)
            m2 = m2 + b_m2.double() + delta.square() * (count * n_b / total)
            count = total
            lo = torch.searchsorted(sorted_ids, start)
            hi = torch.searchsorted(sorted_ids, start + n_b)
            if hi > lo:
                self.shared[order[lo:hi]] = block[sorted_ids[lo:hi] - start].to(dtype)
        self.mean = mean
        # Unbiased per-dimension std, as torch.std in FOCUS's N(mean, std) fallback.
        self.std = (m2 / (self.n - 1)).clamp(min=0).sqrt()
        self._second: dict[bool, torch.Tensor] = {}

    def second_moment(self, centered: bool) -> torch.Tensor:
        """Centered: biased covariance (1/n, Hewitt 2021). Uncentered: Gram E^T E. float64 [d, d]."""
        if centered not in self._second:
            acc = torch.zeros(self.dim, self.dim, dtype=torch.float64)
            for _, block in self.matrix.iter_blocks(_STATS_BLOCK):
                x = block.to(torch.float64)
                if centered:
                    x = x - self.mean
                acc += x.T @ x
            self._second[centered] = acc / self.n if centered else acc
        return self._second[centered]


@dataclass
class TransferProblem:
    """Inputs of a method, already aligned: index i of `shared_*` is one shared token."""

    n_target: int
    shared_target: torch.Tensor  # [S] target ids of shared tokens
    shared_source: torch.Tensor  # [S] their source ids
    source_in: SourceRows  # source input embedding
    source_out: SourceRows | None  # untied source LM head, None when tied
    aux: AuxVectors | None = None  # [n_target, d] fastText vectors of all target tokens
    plm: torch.Tensor | None = None  # [n_target, ht] PLM input embeddings
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    progress: bool = True

    def __post_init__(self):
        is_shared = torch.zeros(self.n_target, dtype=torch.bool)
        is_shared[self.shared_target] = True
        self.new_ids = (~is_shared).nonzero().squeeze(1)
        if self.aux is not None and self.aux.vectors.shape[0] != self.n_target:
            raise InputError(
                f"auxiliary vectors cover {self.aux.vectors.shape[0]} tokens, the target vocabulary has {self.n_target}"
            )
        if self.plm is not None and self.plm.shape[0] != self.n_target:
            raise InputError(
                f"PLM embedding has {self.plm.shape[0]} rows, the target vocabulary has {self.n_target}"
            )

    @property
    def hidden(self) -> int:
        return self.source_in.dim

    # -- the split aux-based methods use ------------------------------------------------------
    def aux_split(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(new ids with an aux vector, rare new ids, indices into shared of usable candidates)."""
        if self.aux is None:
            raise InputError("this method needs auxiliary vectors: pass --aux fasttext.bin")
        usable = self.aux.usable
        scored = self.new_ids[usable[self.new_ids]]
        rare = self.new_ids[~usable[self.new_ids]]
        candidates = usable[self.shared_target].nonzero().squeeze(1)
        if len(candidates) == 0:
            raise InputError(
                "no shared token has an auxiliary vector: the fastText model does not fit this tokenizer"
            )
        return scored, rare, candidates

    def generator(self, stream: int) -> torch.Generator:
        """A CPU generator per random stream, so results do not depend on the compute device."""
        return torch.Generator(device="cpu").manual_seed(self.seed * 1000 + stream)

    def normal_rows(self, n: int, source: SourceRows, stream: int) -> torch.Tensor:
        """N(mean, std) per dimension of the source rows (FOCUS's and the paper's rare-token init)."""
        if n == 0:
            return torch.empty(0, source.dim, dtype=self.dtype)
        g = self.generator(stream)
        z = torch.randn(n, source.dim, generator=g, dtype=torch.float64)
        return (source.mean + z * source.std).to(self.dtype)

    def assemble(
        self,
        fitted_ids: torch.Tensor,
        rows_in: Rows,
        rows_out: Rows | None,
        random_ids: torch.Tensor,
        copy_shared: bool = True,
        info: dict | None = None,
    ) -> MethodResult:
        """Full [n_target, hs] matrices: shared rows copied, fitted rows placed, the rest N(mean, std).

        Fitted rows are a dense tensor or a `LinearRows` product, written straight into the result.
        """
        n_random = len(random_ids)

        def build(source: SourceRows, rows: Rows, stream: int) -> torch.Tensor:
            out = torch.empty(self.n_target, source.dim, dtype=self.dtype)
            if copy_shared:
                out[self.shared_target] = source.shared.to(self.dtype)
            if isinstance(rows, LinearRows):
                rows.weights.matmul(rows.dense, dtype=self.dtype, out=out, out_rows=fitted_ids)
                if rows.offset is not None:
                    out[fitted_ids] += rows.offset.to(self.dtype)
            else:
                out[fitted_ids] = rows.to(device="cpu", dtype=self.dtype)
            out[random_ids] = self.normal_rows(n_random, source, stream)
            return out

        result_in = build(self.source_in, rows_in, stream=1)
        result_out = None
        if self.source_out is not None:
            if rows_out is None:
                raise RuntimeError("untied source head but the method produced no output rows")
            result_out = build(self.source_out, rows_out, stream=2)
        counts = {
            "n_fitted": len(fitted_ids),
            "n_random": n_random,
            "n_copied": len(self.shared_target) if copy_shared else 0,
        }
        return MethodResult(result_in, result_out, {**counts, **(info or {})})

    def cap_new_rows(self, result: MethodResult, factor: float, quantile: float) -> dict[str, Any]:
        """Not the paper (SALT option `norm_cap`): rescale every new row whose norm exceeds
        factor x the `quantile` quantile of the shared rows' norms down to that norm, in place.

        A fitted row far longer than any source row takes the softmax of every context under a tied
        head; the cap keeps a row's direction and bounds its length. Untied heads are capped
        against their own shared rows. Returns what was done, for fit.json.
        """
        if not 0 < quantile <= 1:
            raise InputError(f"norm_cap_quantile {quantile}: must be in (0, 1]")
        report = {"factor": factor, "quantile": quantile}
        for label, matrix, source in (
            ("input", result.input, self.source_in),
            ("output", result.output, self.source_out),
        ):
            if matrix is None or source is None or len(self.new_ids) == 0:
                continue
            shared_norms = torch.linalg.vector_norm(source.shared.double(), dim=1)
            cap = (
                factor * float(torch.quantile(shared_norms, quantile)) if len(shared_norms) else float("inf")
            )
            norms = torch.linalg.vector_norm(matrix[self.new_ids].double(), dim=1)
            over = norms > cap
            ids = self.new_ids[over]
            scale = (cap / norms[over]).to(matrix.dtype).unsqueeze(1)
            matrix[ids] = matrix[ids] * scale
            report[label] = {
                "cap": cap,
                "rows_capped": int(over.sum()),
                "largest_before": float(norms.max()),
            }
        return report


@dataclass
class LinearRows:
    """Rows given as a sparse combination of dense rows, weights @ dense (+ offset), computed when placed."""

    weights: SparseRows
    dense: torch.Tensor
    offset: torch.Tensor | None = None  # [hs] added to every row (e.g. a mean removed before fitting)


Rows = torch.Tensor | LinearRows


@dataclass
class MethodResult:
    input: torch.Tensor  # [n_target, hs]
    output: torch.Tensor | None  # [n_target, hs] when the source head is untied
    info: dict[str, Any]


@dataclass(frozen=True)
class MethodSpec:
    """A catalog entry (`salt_transfer.catalog`: name, inputs, paper, options) with its code."""

    name: str
    fit: Callable[[TransferProblem, Any], MethodResult]
    options: type
    needs: frozenset[str]  # subset of {"aux", "plm"}
    reference: str  # paper the method comes from
    doc: str  # module docstring: what it does and where it departs from the paper


REGISTRY: dict[str, MethodSpec] = {}


def register(name: str):
    """Decorator: attach `fit(problem, options) -> MethodResult` to the catalog's method `name`."""

    def wrap(fn):
        import sys

        from ..catalog import METHODS

        if name in REGISTRY:
            raise RuntimeError(f"method {name!r} registered twice")
        if name not in METHODS:
            raise RuntimeError(f"method {name!r} is not in salt_transfer.catalog.METHODS")
        info = METHODS[name]
        doc = (sys.modules[fn.__module__].__doc__ or "").strip()
        REGISTRY[name] = MethodSpec(name, fn, info.options, info.needs, info.reference, doc)
        return fn

    return wrap


def support_info(support: SparseRows) -> dict[str, Any]:
    """Distribution of support sizes k, for fit.json (the paper gives none; worth logging)."""
    sizes = support.sizes()
    if len(sizes) == 0:
        return {"k": None}
    s = sizes.double()
    q = torch.quantile(s, torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64)).tolist()
    edges = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    hist = {}
    for lo, hi in zip(edges, edges[1:] + [None]):
        n = int(((sizes >= lo) & (sizes < hi)).sum()) if hi else int((sizes >= lo).sum())
        if n:
            hist[f"{lo}-{hi - 1}" if hi else f">={lo}"] = n
    return {
        "k": {
            "min": int(sizes.min()),
            "median": q[0],
            "p90": q[1],
            "p99": q[2],
            "max": int(sizes.max()),
            "mean": float(s.mean()),
            "histogram": hist,
            "topk_window_enlarged_rows": support.enlarged,
        }
    }
