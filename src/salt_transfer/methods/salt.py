"""SALT: Semantic Aware Linear Transfer (Lee, Hong, Moon, Lim; Findings of ACL 2025, arXiv 2505.10945).

For every target token not shared with the source LLM (paper §3):
  1. cosine similarities of its fastText vector to the fastText vectors of all shared tokens (Eq. 1-2);
  2. sparsemax over them; the non-zero entries are its "dynamic top-k" support K (Step 3);
  3. the minimum-norm least-squares map X = pinv(A) B from the PLM rows A (k x ht) of K to their LLM
     rows B (k x hs) (Eq. 3), applied to the token's own PLM row: row = e pinv(A) B (Step 4).
Shared tokens copy their LLM row (Step 2); tokens without an auxiliary vector get N(mean, std) of
the LLM rows (Step 1).

**How it is computed (exactly the same numbers, without the ht x hs matrix).** row = c B with
c = e pinv(A), the 1 x k minimum-norm least-squares coefficients that rebuild the token's PLM row
from its neighbours' PLM rows. With m = min(k, ht) we use the m x m Gram matrix:
  k <= ht:  pinv(A) = A^T (A A^T)^+      so c = (A e^T)^T G^+,  G = A A^T
  k >  ht:  pinv(A) = (A^T A)^+ A^T      so c = A (H^+ e^T),    H = A^T A
Gram matrices are formed in float64 (squaring singular values squares the condition number).
torch.linalg.pinv drops singular values below rtol * sigma_max with rtol = max(k, ht) * eps(dtype); we
keep exactly those semantics: a Cholesky factorization of G - theta I with theta = rtol^2 * (an upper
bound of lambda_max) succeeding proves every eigenvalue is above the cut-off (Sylvester's inertia),
so pinv equals the inverse and a Cholesky solve is exact. Tokens that fail the proof (near-collinear
supports, or k > ht with rank < ht) are solved by eigendecomposition with the pinv cut-off. Rows are
sorted by k and solved in padded batches; c is stored sparsely and applied to the LLM rows (and to
an untied LM head) with one CSR product.

Departures and guesses (paper-notes §1.3-1.6): the sparsemax weights only select the support (the
regression is unweighted, as the text describes); the pinv cut-off is torch's default (the paper
gives none); untied LM heads reuse the same coefficients c on the head's rows (the paper's models
are tied; this is our extension); the auxiliary space is one target-language fastText for shared and
new tokens alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from ..support import DEFAULT_CHUNK_BYTES, SparseRows, sparsemax_support
from .base import MethodResult, TransferProblem, register, support_info

# float64 bytes per padded batch of support rows (B x k x ht x 8 B).
_BATCH_BYTES = 192 * 1024**2
_MAX_BATCH = 2048


@dataclass(frozen=True)
class SaltOptions:
    k_init: int = 128  # initial top-K window for exact sparsemax (grown per row when too small)
    chunk_mb: int = 256  # similarity chunk size in MiB


@dataclass
class SolveStats:
    cholesky_rows: int = 0
    eigh_rows: int = 0


def _pinv_solve_eigh(gram: torch.Tensor, rhs: torch.Tensor, rtol: torch.Tensor) -> torch.Tensor:
    """x = gram^+ rhs with eigenvalues <= rtol^2 * lambda_max dropped (pinv's cut-off on sigma)."""
    lam, q = torch.linalg.eigh(gram)
    lam_max = lam[:, -1:].clamp(min=0)
    keep = lam > (rtol.unsqueeze(1) ** 2) * lam_max
    inv = torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
    projected = (q.transpose(1, 2) @ rhs.unsqueeze(2)).squeeze(2) * inv
    return (q @ projected.unsqueeze(2)).squeeze(2)


def _solve_gram(
    gram: torch.Tensor, rhs: torch.Tensor, rtol: torch.Tensor, real: torch.Tensor, stats: SolveStats
) -> torch.Tensor:
    """Solve gram^+ rhs per batch row; `real` masks the unpadded positions ([B, m] bool)."""
    b, m, _ = gram.shape
    eye = torch.eye(m, dtype=gram.dtype, device=gram.device)
    diag = gram.diagonal(dim1=1, dim2=2)
    real_diag = torch.where(real, diag, torch.zeros_like(diag))
    trace = real_diag.sum(1)
    row_sums = torch.where(real, gram.abs().sum(2), torch.zeros_like(diag)).amax(1)
    lam_upper = torch.minimum(trace, row_sums)  # lambda_max <= trace and <= max absolute row sum
    theta = rtol**2 * lam_upper
    # Padded positions get a positive diagonal so the real block can be factorized on its own.
    pad_value = real_diag.amax(1).clamp(min=1e-300)
    padded = gram + torch.diag_embed(
        torch.where(real, torch.zeros_like(diag), pad_value.unsqueeze(1).expand(b, m))
    )
    _, info_shifted = torch.linalg.cholesky_ex(padded - theta.view(b, 1, 1) * eye)
    chol, info = torch.linalg.cholesky_ex(padded)
    proven = (info_shifted == 0) & (info == 0) & (lam_upper > 0)
    out = torch.zeros_like(rhs)
    if proven.any():
        out[proven] = torch.cholesky_solve(rhs[proven].unsqueeze(2), chol[proven]).squeeze(2)
    if (~proven).any():
        unproven = ~proven
        plain = torch.where(real.unsqueeze(2) & real.unsqueeze(1), gram, torch.zeros_like(gram))[unproven]
        out[unproven] = _pinv_solve_eigh(plain, rhs[unproven], rtol[unproven])
    stats.cholesky_rows += int(proven.sum())
    stats.eigh_rows += int((~proven).sum())
    return out


def min_norm_coefficients(
    support: SparseRows,
    plm_new: torch.Tensor,
    plm_shared: torch.Tensor,
    rtol_dtype: torch.dtype = torch.float32,
    progress: str | None = None,
    batch_bytes: int = _BATCH_BYTES,
) -> tuple[SparseRows, SolveStats]:
    """Coefficients c_t = plm_new[t] pinv(plm_shared[support_t]) for every row t, as CSR (float64)."""
    device = plm_shared.device
    ht = plm_shared.shape[1]
    eps = torch.finfo(rtol_dtype).eps
    # An extra zero row: padded support slots point at it and contribute nothing.
    table = torch.cat([plm_shared.to(torch.float64), torch.zeros(1, ht, dtype=torch.float64, device=device)])
    zero_row = table.shape[0] - 1
    indptr, indices = support.indptr.to(device), support.indices.to(device)
    sizes = indptr[1:] - indptr[:-1]
    values = torch.zeros(len(indices), dtype=torch.float64, device=device)
    stats = SolveStats()
    order = torch.argsort(sizes, stable=True)
    sorted_sizes = sizes[order]
    batches = []
    start = 0
    while start < len(order):
        k_max = int(sorted_sizes[min(len(order) - 1, start + _MAX_BATCH - 1)])
        per_row = max(1, k_max) * ht * 8
        stop = min(len(order), start + max(1, min(_MAX_BATCH, batch_bytes // per_row)))
        # Keep the two Gram orientations (k <= ht, k > ht) in separate batches.
        side = sorted_sizes[start] > ht
        crossing = ((sorted_sizes[start:stop] > ht) != side).nonzero()
        if len(crossing):
            stop = start + int(crossing[0])
        batches.append((start, stop))
        start = stop
    iterator = tqdm(batches, desc=progress, unit="batch", mininterval=2) if progress else batches
    for start, stop in iterator:
        rows = order[start:stop]
        k = sizes[rows]
        k_max = int(k.max())
        slots = torch.arange(k_max, device=device)
        real = slots.unsqueeze(0) < k.unsqueeze(1)  # [B, k_max]
        pos = indptr[rows].unsqueeze(1) + slots
        cols = torch.where(
            real, indices[pos.clamp(max=max(len(indices) - 1, 0))], torch.full_like(pos, zero_row)
        )
        a = table[cols]  # [B, k_max, ht]
        e = plm_new[rows].to(device=device, dtype=torch.float64)  # [B, ht]
        rtol = torch.clamp(k, min=ht).to(torch.float64) * eps
        if k_max <= ht:
            gram = a @ a.transpose(1, 2)
            c = _solve_gram(gram, (a @ e.unsqueeze(2)).squeeze(2), rtol, real, stats)
        else:
            gram = a.transpose(1, 2) @ a  # zero rows of A add nothing: no padding to mask
            w = _solve_gram(gram, e, rtol, torch.ones(len(rows), ht, dtype=torch.bool, device=device), stats)
            c = (a @ w.unsqueeze(2)).squeeze(2)
        values[pos[real]] = c[real]
    return support.with_values(values.cpu()), stats


def salt_coefficients(
    aux_new: torch.Tensor,
    aux_shared: torch.Tensor,
    plm_new: torch.Tensor,
    plm_shared: torch.Tensor,
    k_init: int = 128,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = False,
) -> tuple[SparseRows, SolveStats]:
    """Sparsemax supports and SALT coefficients for every new token (CSR over the shared tokens)."""
    support = sparsemax_support(
        aux_new,
        aux_shared,
        k_init=k_init,
        chunk_bytes=chunk_bytes,
        progress="similarities + sparsemax" if progress else None,
    )
    return min_norm_coefficients(
        support,
        plm_new,
        plm_shared,
        rtol_dtype=plm_shared.dtype,
        progress="least squares" if progress else None,
    )


def salt_rows(
    aux_new: torch.Tensor,
    aux_shared: torch.Tensor,
    plm_new: torch.Tensor,
    plm_shared: torch.Tensor,
    llm_shared: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    k_init: int = 128,
) -> torch.Tensor:
    """SALT rows [N, hs] for N new tokens (DESIGN.md contract; tensors in, tensor out, any device).

    aux_new [N, d], aux_shared [S, d]: auxiliary vectors; plm_new [N, ht], plm_shared [S, ht]: PLM
    rows; llm_shared [S, hs]: source LLM rows of the same S shared tokens. Computation runs on
    llm_shared's device; `dtype` is the output dtype (float32 or float64).
    """
    device = llm_shared.device
    coeffs, _ = salt_coefficients(
        aux_new.to(device), aux_shared.to(device), plm_new.to(device), plm_shared.to(device), k_init=k_init
    )
    return coeffs.matmul(llm_shared, dtype=dtype)


@register(
    "salt", SaltOptions, needs={"aux", "plm"}, reference="Lee et al., Findings ACL 2025 (arXiv 2505.10945)"
)
def fit(problem: TransferProblem, opts: SaltOptions) -> MethodResult:
    scored, rare, cand = problem.aux_split()
    dev = problem.device
    aux, plm = problem.aux.vectors, problem.plm
    coeffs, stats = salt_coefficients(
        aux[scored].to(dev),
        aux[problem.shared_target[cand]].to(dev),
        plm[scored].to(dev),
        plm[problem.shared_target[cand]].to(dev),
        k_init=opts.k_init,
        chunk_bytes=opts.chunk_mb * 1024**2,
        progress=problem.progress,
    )
    rows_in = coeffs.matmul(problem.source_in.shared[cand].to(dev), dtype=problem.dtype)
    rows_out = None
    if problem.source_out is not None:
        rows_out = coeffs.matmul(problem.source_out.shared[cand].to(dev), dtype=problem.dtype)
    c_abs = coeffs.values.abs()
    info = {
        "n_candidates": len(cand),
        **support_info(coeffs),
        "solver": {"cholesky_rows": stats.cholesky_rows, "eigh_rows": stats.eigh_rows},
        "coefficients": {
            "mean_abs": float(c_abs.mean()) if len(c_abs) else None,
            "max_abs": float(c_abs.max()) if len(c_abs) else None,
        },
    }
    return problem.assemble(scored, rows_in, rows_out, rare, info=info)
