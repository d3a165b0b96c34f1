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

Option `center` (ours, off by default): fit on mean-centred PLM and LLM rows and add the LLM mean
back, so a token whose coefficients do not sum to 1 keeps the component every LLM row shares (which
otherwise scales all of that token's logits; `fit.json` reports the distribution of the sums).

Departures and guesses (docs/paper.md, section 1): the sparsemax weights only select the support (the
regression is unweighted, as the text describes); the pinv cut-off is torch's default (the paper
gives none); untied LM heads reuse the same coefficients c on the head's rows (the paper's models
are tied; this is our extension); the auxiliary space is one target-language fastText for shared and
new tokens alike.
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from ..catalog import SaltOptions
from ..memory import release_freed_memory
from ..progress import track
from .base import LinearRows, MethodResult, TransferProblem, register, support_info
from .support import DEFAULT_CHUNK_BYTES, SparseRows, sparsemax_support

# float64 bytes per padded batch of support rows (B x k x ht x 8 B).
_BATCH_BYTES = 192 * 1024**2
# The same for batches of gathered k x k Gram blocks (global-Gram path): small enough that both
# workers' blocks stay in a 32 MiB L3 (measured at 213k tokens, k ~ 47: 16 MiB 9.5 s, 48 MiB 10.1 s,
# 192 MiB 12.9 s).
_GRAM_BATCH_BYTES = 16 * 1024**2
_MAX_BATCH = 4096
# Refinement steps with the shifted Cholesky factor, and the relative size of the last update
# below which a row counts as solved (float64 rounding is ~1e-16; 1e-10 leaves a wide margin).
_REFINE_STEPS = 2
_REFINE_TOL = 1e-10
# Largest Gram matrix of all candidate PLM rows formed at once, lower triangle only (about
# S^2 / 2 float64): S <= 16,380 at 1 GiB (multilingual-e5 against SmolLM2: 15.2k candidates).
_GRAM_BYTES = 1024**3
# Rows of the packed Gram matrix computed per matrix product.
_GRAM_BLOCK = 512


@dataclass
class PackedGram:
    """The lower triangle of table @ table.T (float64), in row blocks: block b holds rows
    [b B, (b + 1) B) against columns [0, (b + 1) B), so storage is about n^2 / 2 + n B / 2 numbers
    and entry (i, j), i >= j, sits at row_start[i] + j."""

    storage: torch.Tensor
    row_start: torch.Tensor  # [n] int64

    @classmethod
    def of(cls, table: torch.Tensor, block: int = _GRAM_BLOCK) -> PackedGram:
        n = table.shape[0]
        block_end = (torch.arange(n, device=table.device) // block + 1) * block
        width = block_end.clamp(max=n)  # columns stored for each row: up to the end of its block
        row_start = torch.zeros(n, dtype=torch.long, device=table.device)
        row_start[1:] = width[:-1].cumsum(0)
        storage = torch.empty(int(width.sum()), dtype=table.dtype, device=table.device)
        for r0 in range(0, n, block):
            r1 = min(n, r0 + block)
            out = storage[int(row_start[r0]) : int(row_start[r0]) + (r1 - r0) * r1].view(r1 - r0, r1)
            torch.mm(table[r0:r1], table[:r1].T, out=out)
        return cls(storage, row_start)

    @staticmethod
    def nbytes(n: int, block: int = _GRAM_BLOCK) -> int:
        return (n * (n + 1) // 2 + n * block // 2) * 8

    def gather(self, cols: torch.Tensor) -> torch.Tensor:
        """[B, k, k] Gram blocks of the column lists `cols` [B, k], each ascending."""
        lower = self.row_start[cols].unsqueeze(2) + cols.unsqueeze(1)  # (p, q) right for p >= q
        k = cols.shape[1]
        below = torch.ones(k, k, dtype=torch.bool, device=cols.device).tril()
        flat = torch.where(below, lower, lower.transpose(1, 2)).view(-1)
        return self.storage.index_select(0, flat).view(*cols.shape, k)


@dataclass
class SolveStats:
    cholesky_rows: int = 0
    eigh_rows: int = 0
    global_gram: bool = False


def _pinv_solve_eigh(gram: torch.Tensor, rhs: torch.Tensor, rtol: torch.Tensor) -> torch.Tensor:
    """x = gram^+ rhs with eigenvalues <= rtol^2 * lambda_max dropped (pinv's cut-off on sigma)."""
    lam, q = torch.linalg.eigh(gram)
    lam_max = lam[:, -1:].clamp(min=0)
    keep = lam > (rtol.unsqueeze(1) ** 2) * lam_max
    inv = torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
    projected = (q.transpose(1, 2) @ rhs.unsqueeze(2)).squeeze(2) * inv
    return (q @ projected.unsqueeze(2)).squeeze(2)


def _cholesky_solve(factor: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(L L^T)^-1 rhs by two triangular solves (faster than torch.cholesky_solve on small batches)."""
    y = torch.linalg.solve_triangular(factor, rhs, upper=False)
    return torch.linalg.solve_triangular(factor.mT, y, upper=True)


def _solve_gram(
    gram: torch.Tensor,
    rhs: torch.Tensor,
    rtol: torch.Tensor,
    real: torch.Tensor,
    stats: SolveStats,
    ridge: torch.Tensor | None = None,
) -> torch.Tensor:
    """Solve gram^+ rhs per batch row with pinv's cut-off. `gram` is zero on padded rows/columns
    (`real` [B, m] marks real positions) and is modified in place. With `ridge` [B] (option
    `ridge`, not the paper), (gram + ridge I) is solved instead.

    One Cholesky factorization of the shifted matrix G - theta I both proves that every eigenvalue
    of G exceeds the cut-off theta (it succeeds only then) and serves as a preconditioner: solving
    G x = r by iterative refinement with it contracts the error by theta / (lambda_min - theta)
    per step. Rows that fail the proof or do not converge take the eigendecomposition path.
    """
    diag = gram.diagonal(dim1=1, dim2=2)  # a view: writing to it edits gram
    zero = torch.zeros((), dtype=gram.dtype, device=gram.device)
    if ridge is not None:
        diag.add_(torch.where(real, ridge.unsqueeze(1), zero))
    real_diag = torch.where(real, diag, zero)
    trace = real_diag.sum(1)
    row_sums = gram.abs().sum(2).amax(1)  # padded rows are zero
    lam_upper = torch.minimum(trace, row_sums)  # lambda_max <= trace and <= max absolute row sum
    theta = (rtol**2 * lam_upper).unsqueeze(1)
    # Padded positions get a positive diagonal so the real block is factorized on its own.
    pad = torch.where(real, zero, real_diag.amax(1, keepdim=True).clamp(min=1e-300))
    diag.add_(pad - theta)
    chol, info = torch.linalg.cholesky_ex(gram)  # factor of G_padded - theta I
    diag.add_(theta)  # gram is now G_padded
    proven = (info == 0) & (lam_upper > 0)
    out = torch.zeros_like(rhs)
    converged = torch.zeros_like(proven)
    if proven.any():
        every = bool(proven.all())
        idx = proven.nonzero().squeeze(1)
        # Index copies only when some rows failed: usually all pass and the views are used as is.
        g, factor, r = (gram, chol, rhs) if every else (gram[idx], chol[idx], rhs[idx])
        r = r.unsqueeze(2)
        x = _cholesky_solve(factor, r)
        for _ in range(_REFINE_STEPS):
            step = _cholesky_solve(factor, r - g @ x)
            x += step
        x, step = x.squeeze(2), step.squeeze(2)
        done = step.norm(dim=1) <= _REFINE_TOL * x.norm(dim=1)
        if every and bool(done.all()):
            out, converged = x, done
        else:
            out[idx[done]] = x[done]
            converged[idx[done]] = True
    if not converged.all():
        todo = ~converged
        plain = gram[todo]
        plain.diagonal(dim1=1, dim2=2).sub_(pad[todo])  # back to zero-padded
        out[todo] = _pinv_solve_eigh(plain, rhs[todo], rtol[todo])
    n_fast = int(converged.sum())
    stats.cholesky_rows += n_fast
    stats.eigh_rows += len(converged) - n_fast
    return out


# Rows of the new tokens' PLM matrix turned to float64 at a time for the right-hand sides.
_RHS_ROWS = 16384


def _support_products(
    indptr: torch.Tensor, indices: torch.Tensor, plm_new: torch.Tensor, p64: torch.Tensor
) -> torch.Tensor:
    """<plm_shared[j], plm_new[t]> in float64 for every (t, j) of the support pattern, in CSR order:
    one sampled dense-dense product per block of rows (no float64 copy of all new rows)."""
    n_rows = len(indptr) - 1
    out = torch.empty(len(indices), dtype=torch.float64, device=p64.device)
    for r0 in range(0, n_rows, _RHS_ROWS):
        r1 = min(n_rows, r0 + _RHS_ROWS)
        lo, hi = int(indptr[r0]), int(indptr[r1])
        if hi == lo:
            continue
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            pattern = torch.sparse_csr_tensor(
                indptr[r0 : r1 + 1] - lo,
                indices[lo:hi],
                torch.zeros(hi - lo, dtype=torch.float64, device=p64.device),
                size=(r1 - r0, p64.shape[0]),
                check_invariants=False,
            )
            block = plm_new[r0:r1].to(device=p64.device, dtype=torch.float64)
            out[lo:hi] = torch.sparse.sampled_addmm(pattern, block, p64.T, beta=0.0).values()
    return out


def _batches(sorted_sizes: torch.Tensor, ht: int, rows_per_batch) -> list[tuple[int, int]]:
    """Split tokens sorted by support size into padded batches of `rows_per_batch(k_max)` tokens at
    most, never mixing the two Gram orientations (k <= ht, k > ht)."""
    batches, start, n = [], 0, len(sorted_sizes)
    while start < n:
        k_max = int(sorted_sizes[min(n - 1, start + _MAX_BATCH - 1)])
        stop = min(n, start + max(1, min(_MAX_BATCH, rows_per_batch(max(1, k_max)))))
        side = sorted_sizes[start] > ht
        crossing = ((sorted_sizes[start:stop] > ht) != side).nonzero()
        if len(crossing):
            stop = start + int(crossing[0])
        batches.append((start, stop))
        start = stop
    return batches


def min_norm_coefficients(
    support: SparseRows,
    plm_new: torch.Tensor,
    plm_shared: torch.Tensor,
    rtol_dtype: torch.dtype = torch.float32,
    progress: str | None = None,
    bar: bool = True,
    batch_bytes: int = _BATCH_BYTES,
    gram_batch_bytes: int = _GRAM_BATCH_BYTES,
    gram_bytes: int = _GRAM_BYTES,
    pinv_rtol: float = 0.0,
    ridge: float = 0.0,
) -> tuple[SparseRows, SolveStats]:
    """Coefficients c_t = plm_new[t] pinv(plm_shared[support_t]) for every row t, as CSR (float64).

    Not the paper, off by default: `pinv_rtol` > 0 replaces pinv's cut-off max(k, ht) eps with a
    relative one of your choosing; `ridge` > 0 solves c (A A^T + lambda I) = e A^T instead, with
    lambda = ridge x the mean squared norm of the support's PLM rows (scale-free).

    When the lower triangle of the Gram matrix of all S candidate PLM rows fits in `gram_bytes`
    (about S^2 / 2 x 8 B, `PackedGram`), it is formed once by block matrix products and every
    token's k x k Gram is gathered from it (supports list their columns in ascending order, so the
    lower triangle of each is a direct read), and the right-hand sides <A_j, e_t> come from sampled
    dense-dense products over the support pattern, a block of rows at a time; otherwise each token's
    rows are gathered and multiplied in batches. Both give the same numbers to float64 rounding (sums
    in another order).
    """
    device = plm_shared.device
    n_shared, ht = plm_shared.shape
    eps = torch.finfo(rtol_dtype).eps
    p64 = plm_shared.to(torch.float64)
    # An extra zero row: padded support slots point at it and contribute nothing.
    table = torch.cat([p64, torch.zeros(1, ht, dtype=torch.float64, device=device)])
    indptr, indices = support.indptr.to(device), support.indices.to(device)
    nnz = len(indices)
    sizes = indptr[1:] - indptr[:-1]
    values = torch.zeros(nnz, dtype=torch.float64, device=device)
    stats = SolveStats()
    order = torch.argsort(sizes, stable=True)
    sorted_sizes = sizes[order]
    # Columns ascend within each support (CSR from `sparsemax_support`); the packed Gram relies on it.
    ascending = True
    if nnz > 1:
        starts = torch.zeros(nnz, dtype=torch.bool, device=device)
        starts[indptr[:-1][sizes > 0]] = True
        ascending = bool(((indices[1:] > indices[:-1]) | starts[1:]).all())
    use_gram = (
        PackedGram.nbytes(n_shared + 1) <= gram_bytes and nnz > 0 and ascending and bool((sizes <= ht).any())
    )
    if use_gram:
        # Through the zero row of `table`, row and column S of the Gram are zero: padded slots
        # (column S, the largest, so they stay in ascending order) gather zeros without masking.
        gram_all = PackedGram.of(table)
        rhs_all = _support_products(indptr, indices, plm_new, p64)
        rhs_all = torch.cat([rhs_all, torch.zeros(1, dtype=torch.float64, device=device)])  # slot nnz: 0

    def rows_per_batch(k: int) -> int:
        # Gathered rows dominate the per-token path; the Gram path keeps a few k x k copies only,
        # and its batches are cut to stay in cache (the solves read each Gram block 3 times).
        if use_gram and k <= ht:
            return gram_batch_bytes // (6 * k * k * 8)
        return batch_bytes // (k * ht * 8)

    def solve_batch(bounds: tuple[int, int]) -> SolveStats:
        rows = order[bounds[0] : bounds[1]]
        k = sizes[rows]
        k_max = int(k.max())
        slots = torch.arange(k_max, device=device)
        real = slots.unsqueeze(0) < k.unsqueeze(1)  # [B, k_max]
        pos = indptr[rows].unsqueeze(1) + slots
        safe_pos = pos.clamp(max=max(nnz - 1, 0))
        if pinv_rtol > 0:
            rtol = torch.full(k.shape, pinv_rtol, dtype=torch.float64, device=device)
        else:
            rtol = torch.clamp(k, min=ht).to(torch.float64) * eps
        cols = torch.where(real, indices[safe_pos], torch.full_like(pos, n_shared))  # padding -> zero row
        local = SolveStats()

        def lam(gram):  # ridge: lambda per token, relative to the mean squared row norm of its support
            if ridge <= 0:
                return None
            return ridge * gram.diagonal(dim1=1, dim2=2).sum(1) / k.to(torch.float64)

        if k_max <= ht and use_gram:
            gram = gram_all.gather(cols)
            rhs = rhs_all[torch.where(real, pos, torch.full_like(pos, nnz))]
            c = _solve_gram(gram, rhs, rtol, real, local, lam(gram))
        else:
            a = table.index_select(0, cols.view(-1)).view(len(rows), k_max, ht)
            e = plm_new[rows].to(device=device, dtype=torch.float64)  # [B, ht]
            if k_max <= ht:
                gram = a @ a.transpose(1, 2)
                c = _solve_gram(gram, (a @ e.unsqueeze(2)).squeeze(2), rtol, real, local, lam(gram))
            else:
                gram = a.transpose(1, 2) @ a  # zero rows of A add nothing: no padding to mask
                all_real = torch.ones(len(rows), ht, dtype=torch.bool, device=device)
                # (A^T A + lambda I)^-1 A^T = A^T (A A^T + lambda I)^-1: the same ridge solution.
                c = (a @ _solve_gram(gram, e, rtol, all_real, local, lam(gram)).unsqueeze(2)).squeeze(2)
        values[pos[real]] = c[real]  # batches own disjoint positions: safe from parallel workers
        return local

    batches = _batches(sorted_sizes, ht, rows_per_batch)
    # Gathers and tiny LAPACK calls run on one core each; batches are independent, so on CPU they
    # run on as many worker threads as torch uses (torch releases the GIL inside its kernels).
    workers = 1 if device.type == "cuda" else max(1, torch.get_num_threads())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = pool.map(solve_batch, batches)
        for local in track(done, progress, total=len(batches), bar=bar, unit="batch") if progress else done:
            stats.cholesky_rows += local.cholesky_rows
            stats.eigh_rows += local.eigh_rows
    stats.global_gram = use_gram
    return support.with_values(values.cpu()), stats


def salt_coefficients(
    aux_new: torch.Tensor,
    aux_shared: torch.Tensor,
    plm_new: torch.Tensor,
    plm_shared: torch.Tensor,
    opts: SaltOptions | None = None,
    progress: bool = False,
) -> tuple[SparseRows, SolveStats, dict[str, float]]:
    """Sparsemax supports and SALT coefficients for every new token (CSR over the shared tokens),
    the solver's statistics and the seconds each phase took. The one code path of SALT: the
    registered method and `salt_rows` both call it."""
    opts = opts or SaltOptions()
    clock = time.perf_counter()
    support = sparsemax_support(
        aux_new,
        aux_shared,
        k_init=opts.k_init,
        chunk_bytes=opts.chunk_mb * 1024**2 or DEFAULT_CHUNK_BYTES,
        progress="similarities + sparsemax",
        bar=progress,
    )
    phases = {"neighbours_s": time.perf_counter() - clock}
    release_freed_memory()
    clock = time.perf_counter()
    coeffs, stats = min_norm_coefficients(
        support,
        plm_new,
        plm_shared,
        rtol_dtype=plm_shared.dtype,
        progress="least squares",
        bar=progress,
        pinv_rtol=opts.pinv_rtol,
        ridge=opts.ridge,
    )
    phases["least_squares_s"] = time.perf_counter() - clock
    release_freed_memory()  # the workers' per-batch temporaries (about 1 GB of RSS otherwise)
    return coeffs, stats, phases


def salt_rows(
    aux_new: torch.Tensor,
    aux_shared: torch.Tensor,
    plm_new: torch.Tensor,
    plm_shared: torch.Tensor,
    llm_shared: torch.Tensor,
    dtype: torch.dtype | None = None,
    k_init: int = 128,
) -> torch.Tensor:
    """SALT rows [N, hs] for N new tokens (paper eq. 3, exactly; tensors in, tensor out, any device).

    aux_new [N, d], aux_shared [S, d]: auxiliary vectors; plm_new [N, ht], plm_shared [S, ht]: PLM
    rows; llm_shared [S, hs]: source LLM rows of the same S shared tokens. Computation runs on
    llm_shared's device; the output has `dtype`, by default llm_shared's.
    """
    device = llm_shared.device
    coeffs, _, _ = salt_coefficients(
        aux_new.to(device),
        aux_shared.to(device),
        plm_new.to(device),
        plm_shared.to(device),
        SaltOptions(k_init=k_init),
    )
    return coeffs.matmul(llm_shared, dtype=dtype or llm_shared.dtype)


# Tokens sampled (seeded) for the condition-number distribution in fit.json: svdvals of every
# support would cost as much as the fit itself.
_COND_SAMPLE = 2000
_LARGEST = 12  # the largest new rows listed in fit.json


# cond(A) from the eigenvalues of the Gram matrix is accurate to ~1e-15 (relative) while
# lambda_min / lambda_max stays above this; below it the token's singular values are computed.
_GRAM_COND_FLOOR = 1e-12


def support_conditioning(
    coeffs: SparseRows, plm_cand: torch.Tensor, rows: torch.Tensor
) -> list[float | None]:
    """cond(A) = sigma_max / sigma_min of the PLM rows of each listed token's support (None: singular).

    Tokens with the same support size are done together, through the eigenvalues of the smaller
    Gram matrix (A A^T or A^T A, float64): sigma = sqrt(lambda), 0.3 ms a token at k = 47, ht = 768,
    against about 1 ms for one SVD per token at ht = 384 (22 ms in torch's batched SVD). Supports too
    ill-conditioned for the squared spectrum (lambda_min / lambda_max < 1e-12) get their singular
    values computed directly."""
    rows = rows.cpu()
    out: list[float | None] = [None] * len(rows)
    sizes = coeffs.sizes()[rows]
    for k in sizes.unique().tolist():
        if k == 0:
            continue
        at = (sizes == k).nonzero().squeeze(1)
        starts = coeffs.indptr[rows[at]].unsqueeze(1) + torch.arange(k)
        a = plm_cand[coeffs.indices[starts].to(plm_cand.device)].double()  # [n, k, ht]
        gram = a @ a.mT if k <= a.shape[2] else a.mT @ a
        lam = torch.linalg.eigvalsh(gram)  # ascending
        cond = (lam[:, -1] / lam[:, 0]).sqrt()
        direct = (~(lam[:, 0] > _GRAM_COND_FLOOR * lam[:, -1])).nonzero().squeeze(1)
        values = cond.cpu().tolist()
        for d in direct.tolist():  # one by one: torch's batched svdvals is far slower (22 ms a token)
            sigma = torch.linalg.svdvals(a[d]).cpu()
            values[d] = float(sigma[0] / sigma[-1]) if float(sigma[-1]) > 0 else None
        for j, i in enumerate(at.tolist()):
            out[i] = values[j]
    return out


def _quantiles(values: list[float], qs=(0.5, 0.9, 0.99)) -> dict[str, float] | None:
    if not values:
        return None
    t = torch.tensor(values, dtype=torch.float64)
    got = torch.quantile(t, torch.tensor(qs, dtype=torch.float64)).tolist()
    return {**{f"p{round(q * 100):02d}": v for q, v in zip(qs, got)}, "max": float(t.max())}


@register("salt")
def fit(problem: TransferProblem, opts: SaltOptions) -> MethodResult:
    scored, rare, cand = problem.aux_split()
    dev = problem.device
    aux, plm = problem.aux.vectors, problem.plm
    plm_new, plm_cand = plm[scored], plm[problem.shared_target[cand]]
    if opts.center:
        plm_mean = plm.double().mean(0).to(plm.dtype)
        plm_new, plm_cand = plm_new - plm_mean, plm_cand - plm_mean
    coeffs, stats, phases = salt_coefficients(
        aux[scored].to(dev),
        aux[problem.shared_target[cand]].to(dev),
        plm_new.to(dev),
        plm_cand.to(dev),
        opts,
        progress=problem.progress,
    )

    def rows_of(source):
        rows = source.shared[cand].to(dev)
        if not opts.center:
            return LinearRows(coeffs, rows)
        mean = source.mean.to(device=dev, dtype=rows.dtype)
        return LinearRows(coeffs, rows - mean, offset=mean)

    rows_in = rows_of(problem.source_in)
    rows_out = rows_of(problem.source_out) if problem.source_out is not None else None
    c_abs = coeffs.values.abs()
    # Sum of each token's coefficients: FOCUS's weights sum to 1, SALT's are unconstrained. A sum far
    # from 1 scales the component all LLM rows share (their mean), which moves every logit of that
    # token; the distribution is the first thing to look at when SALT rows behave badly.
    row_of = torch.repeat_interleave(torch.arange(coeffs.n_rows), coeffs.sizes())
    sums = torch.zeros(coeffs.n_rows, dtype=torch.float64).index_add_(0, row_of, coeffs.values.double())
    max_abs = torch.zeros(coeffs.n_rows, dtype=torch.float64).scatter_reduce_(
        0, row_of, c_abs.double(), reduce="amax", include_self=True
    )
    info = {
        "n_candidates": len(cand),
        **support_info(coeffs),
        "solver": {
            "cholesky_rows": stats.cholesky_rows,
            "eigh_rows": stats.eigh_rows,
            "global_gram": stats.global_gram,
            "pinv_rtol": opts.pinv_rtol or "max(k, ht) x eps (torch's default, eq. 3)",
            "ridge": opts.ridge,
        },
        "coefficients": {
            "mean_abs": float(c_abs.mean()) if len(c_abs) else None,
            "max_abs": float(c_abs.max()) if len(c_abs) else None,
            "row_sum_quantiles": dict(
                zip(
                    ("p01", "p10", "p50", "p90", "p99"),
                    torch.quantile(
                        sums, torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99], dtype=torch.float64)
                    ).tolist(),
                )
            )
            if len(sums)
            else None,
        },
    }
    clock = time.perf_counter()
    result = problem.assemble(scored, rows_in, rows_out, rare, info=info)
    phases["assemble_s"] = time.perf_counter() - clock

    # Diagnostics of the tail (fit.json): which tokens got the longest rows and how ill-conditioned
    # their supports are, before any norm cap.
    clock = time.perf_counter()
    if len(scored):
        # Norms of all rows, then the fitted ones: indexing first would copy 0.5 GB at 213k x 576.
        # In the rows' float32 (relative error ~1e-7, plenty for a diagnostic): torch's float64
        # `dtype=` path is 50x slower (0.7 s at 32k x 4096).
        norms = torch.linalg.vector_norm(result.input, dim=1).double()[scored]
        g = problem.generator(7)
        sample = torch.randperm(len(scored), generator=g)[:_COND_SAMPLE]
        conds = [c for c in support_conditioning(coeffs, plm_cand, sample) if c is not None]
        top = norms.topk(min(_LARGEST, len(norms))).indices
        top_cond = support_conditioning(coeffs, plm_cand, top)
        sizes = coeffs.sizes()
        result.info["conditioning"] = {
            "what": "cond(A) = sigma_max / sigma_min of each support's PLM rows (A: k x ht)",
            "sampled_tokens": len(sample),
            "quantiles": _quantiles(conds),
            "singular": len(sample) - len(conds),
        }
        result.info["largest_rows"] = [
            {
                "target_id": int(scored[i]),
                "norm": float(norms[i]),
                "k": int(sizes[i]),
                "cond": top_cond[j],
                "coef_max_abs": float(max_abs[i]),
                "coef_sum": float(sums[i]),
            }
            for j, i in enumerate(top.tolist())
        ]
    if opts.norm_cap > 0:
        result.info["norm_cap"] = problem.cap_new_rows(result, opts.norm_cap, opts.norm_cap_quantile)
    phases["diagnostics_s"] = time.perf_counter() - clock
    result.info["phases"] = {k: round(v, 3) for k, v in phases.items()}
    return result
