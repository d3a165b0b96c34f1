"""FOCUS: Fast Overlapping Token Combinations Using Sparsemax (Dobler & de Melo, EMNLP 2023).

Each new target token is the sparsemax-weighted (hence convex) combination of the source-LLM rows of
the shared tokens, weighted by cosine similarity in the auxiliary fastText space:
row_t = sum_j p_j B_j, p = sparsemax(cos(a_t, a_shared)). Shared tokens copy their source row; tokens
without an auxiliary vector get N(mean, std) of the source rows per dimension (deepfocus does the
same, seeded).

Departures from the reference implementation (`konstantinjdobler/focus`, deepfocus 1.0.1): vectors
come from fastText's subword n-grams for every token (deepfocus drops tokens outside fastText's word
list, see `salt_transfer.aux`); sparsemax is exact but computed in chunks, batched
(`salt_transfer.methods.support`: a compiled threshold bound on the CPU, top-K windows elsewhere), instead
of one full-row sparsemax per token. Given
the same overlap and auxiliary vectors the rows agree with deepfocus to float32 rounding (bench/).
Untied LM heads get the same weights applied to the head's rows (deepfocus handles input rows only).
"""

from __future__ import annotations

import torch

from ..catalog import FocusOptions
from .base import LinearRows, MethodResult, TransferProblem, register, support_info
from .support import DEFAULT_CHUNK_BYTES, sparsemax_support


def focus_rows(
    aux_new: torch.Tensor,
    aux_shared: torch.Tensor,
    llm_shared: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    k_init: int = 128,
) -> torch.Tensor:
    """FOCUS rows [N, hs] (docs/design.md, the core math): sparsemax(cos(aux_new, aux_shared)) @ llm_shared."""
    device = llm_shared.device
    weights = sparsemax_support(aux_new.to(device), aux_shared.to(device), k_init=k_init)
    return weights.matmul(llm_shared, dtype=dtype)


@register("focus")
def fit(problem: TransferProblem, opts: FocusOptions) -> MethodResult:
    scored, rare, cand = problem.aux_split()
    dev = problem.device
    aux = problem.aux.vectors
    weights = sparsemax_support(
        aux[scored].to(dev),
        aux[problem.shared_target[cand]].to(dev),
        k_init=opts.k_init,
        chunk_bytes=opts.chunk_mb * 1024**2 or DEFAULT_CHUNK_BYTES,
        progress="similarities + sparsemax",
        bar=problem.progress,
    )
    rows_in = LinearRows(weights, problem.source_in.shared[cand].to(dev))
    rows_out = None
    if problem.source_out is not None:
        rows_out = LinearRows(weights, problem.source_out.shared[cand].to(dev))
    return problem.assemble(
        scored, rows_in, rows_out, rare, info={"n_candidates": len(cand), **support_info(weights)}
    )
