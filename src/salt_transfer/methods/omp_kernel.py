"""Batch-OMP on the CPU: one compiled loop per token (numba), parallel over tokens.

Rubinstein, Zibulevsky & Elad 2008 ("Efficient Implementation of the K-SVD Algorithm using Batch
Orthogonal Matching Pursuit", Technion CS-2008-08) run OMP in the space of correlations: with the atoms'
Gram matrix G = A A^T precomputed, the residual r is never formed. Its correlations A r move along
A q_t = (G[:, new] - sum_{j<t} w_j A q_j) / L_tt when anchor t joins (q_t: the new orthonormal direction
of the anchors' span, w = L^-1 G[I, new], L the Cholesky factor of G[I, I]), which costs t x S
multiply-adds per step against ht x S for A r. The anchors and coefficients are those of textbook OMP
(explicit residuals); only rounding differs, so near-ties between two anchors may resolve differently.

Precision: the Cholesky factor, y = L^-1 A_I e and the coefficients gamma = L^-T y are float64 (the
float64 Gram matrix; a_new . e as a float64 dot product); the correlations and the A q_j, which only
rank candidates, are float32. A token's loop is sequential and independent of the others, so the
result does not depend on the number of threads.

Why compiled: a step is about 25 small operations per token. As batched torch operations their fixed
cost, and a batch's k x S working set that leaves the cache beyond about 10 tokens, kept this at
3.2 ms a token (S = 8,705 atoms, k = 64, 2-core EPYC); compiled, one token's loop streams its own
rows from cache: about 1 ms a token on the same problem (bench/bench_omp.py), against 7 ms for the
explicit residuals.

This module imports numba at import: import it only where OMP runs (the CLI's start-up stays light).
"""

from __future__ import annotations

import numba
import numpy as np

# float32 entries of the S axis per block: 2 KiB; measured 512 against 256, 1,024 and 2,048 (1,000 tokens,
# S = 8,705, k = 64): 512 was fastest or within the noise of the fastest.
_BLOCK = 512


@numba.njit(inline="always", fastmath=True, cache=True)
def _sub_combination8(n, a, x0, x1, x2, x3, x4, x5, x6, x7, y):  # pragma: no cover - compiled
    """y[:n] -= sum_m a[m] * x_m[:n] over 8 rows: one pass over y for 8 rows streamed in parallel."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    for i in range(n):
        y[i] -= (
            a0 * x0[i]
            + a1 * x1[i]
            + a2 * x2[i]
            + a3 * x3[i]
            + a4 * x4[i]
            + a5 * x5[i]
            + a6 * x6[i]
            + a7 * x7[i]
        )


@numba.njit(inline="always", fastmath=True, cache=True)
def _sub_scaled(n, a, x, y):  # pragma: no cover - compiled
    """y[:n] -= a * x[:n]."""
    for i in range(n):
        y[i] -= a * x[i]


@numba.njit(inline="always", fastmath=True, cache=True)
def _max_abs(x):  # pragma: no cover - compiled
    """max |x| (a reduction the compiler vectorises; fastmath only reorders a max, which is exact)."""
    best = np.float32(0.0)
    for i in range(x.shape[0]):
        best = max(best, abs(x[i]))
    return best


@numba.njit(parallel=True, cache=True, nogil=True)
def _pursue(corr_in, e64, a64, gram, k, dependent, picked, gamma, count):  # pragma: no cover - compiled
    b_total, s = corr_in.shape
    ht = e64.shape[1]
    for b in numba.prange(b_total):
        corr = corr_in[b].copy()
        # A q_j, block-major: [block, j, :] holds entries [block * _BLOCK, ...) of A q_j, so the t rows
        # one block of a step reads are contiguous (one stream for the prefetcher).
        n_blocks = (s + _BLOCK - 1) // _BLOCK
        proj = np.zeros((n_blocks, k, _BLOCK), dtype=np.float32)
        chol = np.zeros((k, k), dtype=np.float64)
        y = np.zeros(k, dtype=np.float64)
        w = np.zeros(k, dtype=np.float64)
        w32 = np.zeros(k, dtype=np.float32)
        block = np.empty(_BLOCK, dtype=np.float32)
        n_picked = 0
        for t in range(k):
            # The next anchor: the first index of the largest |correlation| (the picked anchors hold
            # an exact 0, and a maximum of 0 picks index 0 like argmax would).
            best = _max_abs(corr)
            new = 0
            while abs(corr[new]) != best:
                new += 1
            row = gram[new]
            d_new = row[new]
            rhs = 0.0
            for i in range(ht):
                rhs += e64[b, i] * a64[new, i]
            # w = L^-1 G[I, new] by forward substitution; d2: the new anchor's squared distance to the
            # span of those picked; rhs: a_new . e - w . y.
            d2 = d_new
            for j in range(t):
                acc = row[picked[b, j]]
                for m in range(j):
                    acc -= chol[j, m] * w[m]
                w[j] = acc / chol[j, j]
                d2 -= w[j] * w[j]
                rhs -= w[j] * y[j]
            if not d2 > dependent * max(d_new, 1e-300):
                break  # dependent on the anchors picked: the token stops here
            diag = np.sqrt(d2)
            for j in range(t):
                chol[t, j] = w[j]
                w32[j] = np.float32(w[j])
            chol[t, t] = diag
            y[t] = rhs / diag
            inv = np.float32(1.0 / diag)
            y32 = np.float32(y[t])
            # A q_t = (G[new] - sum_j w_j A q_j) / diag, and the correlations move by -y_t A q_t.
            for blk in range(n_blocks):
                lo = blk * _BLOCK
                n = min(_BLOCK, s - lo)
                rows = proj[blk]
                for i in range(n):
                    block[i] = np.float32(row[lo + i])
                j = 0
                while j + 8 <= t:
                    r = rows[j : j + 8]
                    _sub_combination8(
                        n, w32[j : j + 8], r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], block
                    )
                    j += 8
                while j < t:
                    _sub_scaled(n, w32[j], rows[j], block)
                    j += 1
                out = rows[t]
                part = corr[lo : lo + n]
                for i in range(n):
                    p = block[i] * inv
                    out[i] = p
                    part[i] -= y32 * p
            picked[b, t] = new
            n_picked = t + 1
            for j in range(n_picked):
                corr[picked[b, j]] = 0.0
        # gamma = L^-T y by back substitution.
        for j in range(n_picked - 1, -1, -1):
            acc = y[j]
            for m in range(j + 1, n_picked):
                acc -= chol[m, j] * gamma[b, m]
            gamma[b, j] = acc / chol[j, j]
        count[b] = n_picked


def gram_pursuit(
    corr: np.ndarray,
    e64: np.ndarray,
    a64: np.ndarray,
    gram: np.ndarray,
    k: int,
    dependent: float,
    threads: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OMP for each target e64[b] (float64 [B, ht]) over the atoms a64 (float64 [S, ht]), given
    corr = A e (float32 [B, S]) and gram = A A^T (float64 [S, S]). A token stops early when its next
    anchor's squared distance to the span of those picked is below `dependent` x its squared norm.

    Returns (picked [B, k] int64, gamma [B, k] float64, count [B] int64): the anchors in the order
    picked, their least-squares coefficients, and how many anchors each token took (the rest is 0)."""
    b = corr.shape[0]
    picked = np.zeros((b, k), dtype=np.int64)
    gamma = np.zeros((b, k), dtype=np.float64)
    count = np.zeros(b, dtype=np.int64)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _pursue(
        np.ascontiguousarray(corr, dtype=np.float32),
        np.ascontiguousarray(e64, dtype=np.float64),
        np.ascontiguousarray(a64, dtype=np.float64),
        np.ascontiguousarray(gram, dtype=np.float64),
        k,
        dependent,
        picked,
        gamma,
        count,
    )
    return picked, gamma, count
