"""OFA: One For All subword-embedding initialization (Liu, Lin, Wang & Schütze; NAACL Findings 2024, arXiv 2311.08849).

Each new target token is the softmax(similarity / temperature)-weighted average of the source rows
of its top-k most similar tokens in an auxiliary space (reference code `cisnlp/ofa`,
`create_target_embeddings`: neighbors=10, temperature=0.1). With `rank` set, OFA's factorization is
applied: the source matrix E = U S V^T is kept as coordinates U_r and primitives S_r V_r^T, new
tokens average coordinates, and every row (shared ones too, since the whole factorized matrix
replaces the embedding) becomes its rank-r reconstruction, i.e. its projection on the top-r right
singular subspace of E. Tokens without an auxiliary vector get N(mean, std) of the source rows, as
in OFA's random fallback.

Departures: OFA looks up neighbours among *all* source subwords in multilingual (ColexNet+) word
vectors; here, as in the SALT paper's setting, there is one target-language fastText space, so the
neighbours are the shared tokens (which have vectors in that space). The SVD comes from the
uncentered Gram matrix E^T E (streamed, float64) instead of a full SVD of E. Untied heads get the
same weights (and their own projection) applied to the head's rows.
"""

from __future__ import annotations

import torch

from ..catalog import OfaOptions
from ..errors import InputError
from .base import LinearRows, MethodResult, SourceRows, TransferProblem, register, support_info
from .support import topk_softmax_support


def _top_subspace(source: SourceRows, rank: int) -> torch.Tensor:
    """Top-`rank` right singular vectors of the source matrix, [hs, rank] float64."""
    if not 0 < rank <= source.dim:
        raise InputError(f"ofa rank {rank}: must be between 1 and the hidden size {source.dim}")
    _, vecs = torch.linalg.eigh(source.second_moment(centered=False))
    return vecs[:, -rank:]


def _project(rows: torch.Tensor, basis: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    b = basis.to(rows.device)
    return ((rows.to(torch.float64) @ b) @ b.T).to(dtype)


@register("ofa")
def fit(problem: TransferProblem, opts: OfaOptions) -> MethodResult:
    scored, rare, cand = problem.aux_split()
    dev = problem.device
    aux = problem.aux.vectors
    weights = topk_softmax_support(
        aux[scored].to(dev),
        aux[problem.shared_target[cand]].to(dev),
        k=opts.neighbors,
        temperature=opts.temperature,
        chunk_bytes=opts.chunk_mb * 1024**2,
        progress="similarities + top-k",
        bar=problem.progress,
    )
    rows_in = LinearRows(weights, problem.source_in.shared[cand].to(dev))
    rows_out = None
    if problem.source_out is not None:
        rows_out = LinearRows(weights, problem.source_out.shared[cand].to(dev))
    info = {"n_candidates": len(cand), **support_info(weights), "rank": opts.rank or None}
    result = problem.assemble(scored, rows_in, rows_out, rare, info=info)
    if opts.rank:
        # OFA factorizes the whole matrix, random-fallback rows included (they are rows of it too).
        result.input = _project(result.input, _top_subspace(problem.source_in, opts.rank), problem.dtype)
        if result.output is not None:
            result.output = _project(
                result.output, _top_subspace(problem.source_out, opts.rank), problem.dtype
            )
    return result
