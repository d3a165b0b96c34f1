"""OMP: training-free tokenizer transplantation by Orthogonal Matching Pursuit (Goddard & Neto 2025,
"Training-Free Tokenizer Transplantation via Orthogonal Matching Pursuit", arXiv 2506.06607; the
default method of mergekit's `mergekit-tokensurgeon`).

For every new target token with donor (here: PLM) row e, OMP greedily picks k anchors among the shared
tokens in the donor space: at each step the shared token whose PLM row has the largest absolute inner
product with the current residual of e, then the least-squares coefficients of e on all anchors picked
so far (the residual is orthogonal to them). The final k coefficients are applied to the anchors' rows
in the source LLM's space: row = sum_j c_j B_j. Like SALT it transfers a sparse linear combination from
the PLM space to the LLM space; unlike SALT the support is chosen in the PLM space itself (no fastText)
and by reconstruction error, not by auxiliary-space similarity. Shared tokens copy their LLM row.

How it is computed: two exact ways, the same anchors up to rounding (both against textbook OMP in
float64 in tests/unit/test_omp.py).
- On the CPU, when the S x S Gram matrix of the shared PLM rows fits in 1 GiB (float64; S <= 11,585):
  Batch-OMP (Rubinstein, Zibulevsky & Elad 2008) in omp_kernel.py, compiled with numba. The residual
  is never formed; its correlations with all shared rows move by t x S multiply-adds at step t,
  against ht x S for the explicit product, and each token's loop runs from cache. On the bench's
  problem (8,705 shared rows, ht = 768, k = 64) this is about 1 ms a token against 7 ms before.
- Otherwise (a GPU, or more shared tokens): the explicit residuals, tokens in batches. Each step scores
  every shared row against each token's residual with one matrix product, residuals [B, ht] x
  atoms^T [ht, S] in float32 (the scores only rank candidates). The Cholesky factor L of the anchors'
  Gram matrix G[I, I] grows by one row per step in float64, y = L^-1 A_I e by one entry, and the
  residual moves along Q = L^-1 A_I, an orthonormal basis of the anchors' span kept in float32:
  r <- r - y_t q_t.
Both end with gamma = L^-T y in float64.

Departures from mergekit's `batch_omp`: coefficients through the Cholesky factor of G[I, I] in
float64 (mergekit: a QR basis in float32; on the CPU here the correlations are updated through the
Gram matrix, not recomputed from the residual), so near-ties between two anchors may resolve differently;
a token stops adding anchors when the next one is numerically dependent on those picked (mergekit
keeps going); the shared tokens are this suite's overlap (canonical byte forms, special tokens by
role), not mergekit's normalized vocabulary with byte and prefix matching; an untied LM head gets
the same coefficients applied to its rows.
"""

from __future__ import annotations

import time

import torch

from ..catalog import OmpOptions
from ..errors import InputError
from .base import LinearRows, MethodResult, TransferProblem, register, support_info
from .support import SparseRows

# On the CPU, the S x S Gram matrix of the shared PLM rows (float64) is formed when it fits in this many
# bytes, and the pursuit runs in the space of correlations (Batch-OMP, omp_kernel.py); otherwise, and on
# a GPU, on the explicit residuals (one matrix product per step, below).
_GRAM_BYTES = 1024**3
# Bytes of per-batch working memory (the correlations and targets of a batch; the residual pursuit's
# scores, bases and anchors): the batch size follows, within [_MIN_BATCH, _MAX_BATCH] tokens.
_BATCH_BYTES = 256 * 1024**2
_MIN_BATCH, _MAX_BATCH = 64, 2048
# A new anchor whose squared distance to the span of those picked is below this share of its own
# squared norm is dependent on them: the token stops there (its coefficients stay well defined).
_DEPENDENT = 1e-10


def _residual_pursuit(
    e64: torch.Tensor, a64: torch.Tensor, a32_t: torch.Tensor, sq_norms: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """OMP for a batch of targets e64 [B, ht] on the explicit residuals (atoms too many for the Gram
    matrix); same returns as `_gram_pursuit`."""
    b, ht = e64.shape
    s = a64.shape[0]
    device = e64.device
    rows = torch.arange(b, device=device)
    residual = e64.float()
    picked = torch.zeros(b, k, dtype=torch.long, device=device)
    # L (lower, float64): the Cholesky factor of G[I, I]. Q = L^-1 A_I: an orthonormal basis of the
    # anchors' span, kept in float32 (it only moves the residual, which only ranks candidates).
    # y = L^-1 A_I e = Q e, by forward substitution one entry per step; gamma = L^-T y at the end.
    chol = torch.zeros(b, k, k, dtype=torch.float64, device=device)
    basis = torch.zeros(b, k, ht, dtype=torch.float32, device=device)
    y = torch.zeros(b, k, dtype=torch.float64, device=device)
    anchors64 = torch.zeros(b, k, ht, dtype=torch.float64, device=device)
    active = torch.ones(b, dtype=torch.bool, device=device)
    count = torch.zeros(b, dtype=torch.long, device=device)
    used = torch.zeros(b, s, dtype=torch.bool, device=device)
    for t in range(k):
        # Used anchors have correlation 0 with the residual (it is orthogonal to them), so they
        # are masked out only to break exact ties.
        new = (residual @ a32_t).abs_().masked_fill_(used, -1.0).argmax(dim=1)  # [B]
        a_new = a64[new]  # [B, ht]
        d_new = sq_norms[new]
        if t == 0:
            d2, w = d_new, None
        else:
            g_new = torch.bmm(anchors64[:, :t], a_new.unsqueeze(2))  # [B, t, 1]: G[I, new]
            w = torch.linalg.solve_triangular(chol[:, :t, :t], g_new, upper=False).squeeze(2)
            d2 = d_new - (w * w).sum(1)
        ok = active & (d2 > _DEPENDENT * d_new.clamp(min=1e-300))
        if not ok.any():
            break
        # Grow L, Q, y and the residual only for tokens still adding anchors.
        sel = slice(None) if bool(ok.all()) else ok
        diag = d2[sel].sqrt()
        rhs = (e64[sel] * a_new[sel]).sum(1)  # a_new . e
        direction = a64[new[sel]].float()
        if w is not None:
            w_sel = w[sel]
            chol[sel, t, :t] = w_sel
            rhs = rhs - (w_sel * y[sel, :t]).sum(1)
            direction = direction - torch.bmm(w_sel.float().unsqueeze(1), basis[sel, :t]).squeeze(1)
        chol[sel, t, t] = diag
        y_t = rhs / diag
        q_t = direction / diag.float().unsqueeze(1)
        y[sel, t] = y_t
        basis[sel, t] = q_t
        residual[sel] -= y_t.float().unsqueeze(1) * q_t
        picked[sel, t] = new[sel]
        anchors64[sel, t] = a_new[sel]
        used[rows[sel], new[sel]] = True
        count += ok.long()
        active &= ok
    return picked, chol, y, count


def _batch_size(n: int, batch_bytes: int, per_token: int) -> int:
    return max(1, min(n, _MAX_BATCH, max(_MIN_BATCH, batch_bytes // per_token)))


def pursuit_for(n_shared: int, device: torch.device) -> str:
    """Which pursuit omp_coefficients runs: "gram" (compiled Batch-OMP) or "residual"."""
    return "gram" if device.type == "cpu" and n_shared * n_shared * 8 <= _GRAM_BYTES else "residual"


def omp_coefficients(
    targets: torch.Tensor, atoms: torch.Tensor, k: int, batch_bytes: int = _BATCH_BYTES
) -> SparseRows:
    """For each row e of `targets` [N, ht]: k anchors among the rows of `atoms` [S, ht] picked by OMP
    and their least-squares coefficients, as CSR over the atoms (columns in the order picked).
    `batch_bytes`: working memory per batch of targets."""
    n, ht = targets.shape
    s = atoms.shape[0]
    if not 1 <= k <= s:
        raise InputError(f"omp k={k}: must be between 1 and the number of shared tokens ({s})")
    device = atoms.device
    a64 = atoms.to(torch.float64)
    picked_all = torch.zeros(n, k, dtype=torch.long)
    gamma_all = torch.zeros(n, k, dtype=torch.float64)
    count_all = torch.zeros(n, dtype=torch.long)
    if pursuit_for(s, device) == "gram":
        from .omp_kernel import gram_pursuit  # numba: imported only where OMP runs

        a32_t = atoms.to(torch.float32).T.contiguous()
        gram = (a64 @ a64.T).numpy()
        a64_np = a64.numpy()
        batch = _batch_size(n, batch_bytes, s * 4 + ht * 8)
        for start in range(0, n, batch):
            e = targets[start : start + batch]
            picked, gamma, count = gram_pursuit(
                (e.to(torch.float32) @ a32_t).numpy(),
                e.to(torch.float64).numpy(),
                a64_np,
                gram,
                k,
                _DEPENDENT,
                torch.get_num_threads(),
            )
            picked_all[start : start + batch] = torch.from_numpy(picked)
            gamma_all[start : start + batch] = torch.from_numpy(gamma)
            count_all[start : start + batch] = torch.from_numpy(count)
    else:
        a32_t = atoms.to(torch.float32).T.contiguous()  # [ht, S]: the correlation products
        sq_norms = (a64 * a64).sum(1)  # [S]: the diagonal of the Gram matrix
        batch = _batch_size(n, batch_bytes, 3 * s * 4 + k * ht * 12 + k * k * 8)
        for start in range(0, n, batch):
            e64 = targets[start : start + batch].to(device=device, dtype=torch.float64)
            picked, chol, y, count = _residual_pursuit(e64, a64, a32_t, sq_norms, k)
            # gamma = L^-T y; tokens that stopped early get ones on the rest of the diagonal (their y
            # is 0 there), which keeps the solve defined and their padded gamma zero.
            m = int(count.max())
            pad = torch.arange(m, device=device).unsqueeze(0) >= count.unsqueeze(1)
            upper = (chol[:, :m, :m] + torch.diag_embed(pad.to(torch.float64))).mT
            gamma = torch.linalg.solve_triangular(upper, y[:, :m].unsqueeze(2), upper=True).squeeze(2)
            picked_all[start : start + batch] = picked.cpu()
            gamma_all[start : start + batch, :m] = gamma.cpu()
            count_all[start : start + batch] = count.cpu()
    keep = torch.arange(k).unsqueeze(0) < count_all.unsqueeze(1)
    indptr = torch.zeros(n + 1, dtype=torch.long)
    indptr[1:] = count_all.cumsum(0)
    return SparseRows(indptr, picked_all[keep], gamma_all[keep], s)


@register("omp")
def fit(problem: TransferProblem, opts: OmpOptions) -> MethodResult:
    if problem.plm is None:
        raise InputError("omp needs the PLM's embeddings: pass --plm DIR")
    dev = problem.device
    new_ids = problem.new_ids
    clock = time.perf_counter()
    coeffs = omp_coefficients(
        problem.plm[new_ids].to(dev),
        problem.plm[problem.shared_target].to(dev),
        min(opts.k, len(problem.shared_target)),
    )
    phases = {"omp_s": time.perf_counter() - clock}
    rows_in = LinearRows(coeffs, problem.source_in.shared.to(dev))
    rows_out = (
        LinearRows(coeffs, problem.source_out.shared.to(dev)) if problem.source_out is not None else None
    )
    c_abs = coeffs.values.abs()
    info = {
        "n_candidates": len(problem.shared_target),
        # "gram": Batch-OMP through the shared rows' Gram matrix (CPU); "residual": explicit residuals.
        "pursuit": pursuit_for(len(problem.shared_target), torch.device(dev)),
        **support_info(coeffs),
        "coefficients": {
            "mean_abs": float(c_abs.mean()) if len(c_abs) else None,
            "max_abs": float(c_abs.max()) if len(c_abs) else None,
        },
    }
    clock = time.perf_counter()
    result = problem.assemble(new_ids, rows_in, rows_out, torch.empty(0, dtype=torch.long), info=info)
    phases["assemble_s"] = time.perf_counter() - clock
    result.info["phases"] = {k: round(v, 3) for k, v in phases.items()}
    return result
