"""Sparsemax of each row of a similarity chunk on the CPU without a top-K window (numba).

The windowed path (support.py) takes torch.topk of K + 1 entries per row and runs sparsemax on them;
at multilingual scale the top-k alone cost 6.4 s of a 15.5 s neighbour search. Here a row is read a
few times, in loops the compiler vectorises or predicts:
1. a lower bound of the row's sparsemax threshold tau: the sparsemax threshold of the maxima of its
   64-entry groups (Michelot's fixed point on those few hundred values). It is a bound because
   tau = max_j (S_j - 1) / j over the sums S_j of the j largest entries, and any j entries sum to at
   most S_j;
2. every entry at or above the bound (all of the support: its entries exceed tau), counted, then
   collected; on fastText similarities about the support itself (44 entries for a support of 42);
3. those entries sorted, and on them the arithmetic of `support.sparsemax_sorted` on torch's window:
   prefix sums accumulated in float64 and rounded to float32 at each step (torch's CPU cumsum), the
   test 1 + j z_j > cumsum_j, tau = (cumsum_k - 1) / k and the weights z - tau in float32. Entries
   not collected lie below tau, so the weights are the same bytes as the windowed path's (tests,
   ties included; on the multilingual bench, a digest of all fitted rows).
A row is left to the windowed path (k = -1) when more than 8 x `width` entries reach the bound or
more than `width` weights are positive.

This module imports numba at import: import it only where a neighbour search runs.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

# Entries per group for the lower bound of tau.
_GROUP = 64


@numba.njit(inline="always", fastmath=True, cache=True)
def _max_of(x):  # pragma: no cover - compiled
    """max(x) as a vectorised reduction (fastmath only reorders a max: exact for finite x)."""
    best = x[0]
    for i in range(1, x.shape[0]):
        best = max(best, x[i])
    return np.float64(best)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=False)
def _sparsemax_rows(sims, width, out_idx, out_p, out_k, out_kept):  # pragma: no cover - compiled
    n_rows, n = sims.shape
    for r in numba.prange(n_rows):
        row = sims[r]
        out_k[r] = -1
        out_kept[r] = 0
        # A lower bound of tau: for any set J of entries, (sum_J z - 1) / |J| <= tau (the sum of the
        # |J| largest entries is at least sum_J), here over subsets of the maxima of 64-entry groups.
        n_groups = (n + _GROUP - 1) // _GROUP
        maxima = np.empty(n_groups, dtype=np.float64)
        for g in range(n_groups):
            maxima[g] = _max_of(row[g * _GROUP : min(g * _GROUP + _GROUP, n)])
        # The sparsemax threshold of the maxima themselves (Michelot's fixed point: it rises to it
        # from max - 1): max_J over their subsets J of (sum_J - 1) / |J|.
        bound = maxima.max() - 1.0
        for _ in range(n_groups):
            total = 0.0
            count = 0
            for g in range(n_groups):
                if maxima[g] > bound:
                    total += maxima[g]
                    count += 1
            new_bound = (total - 1.0) / count
            if new_bound <= bound:
                break
            bound = new_bound
        # Every support entry is >= low (a little below the bound, against rounding).
        low = np.float32(bound - 1e-6 * (1.0 + abs(bound)))
        count = 0
        for i in range(n):
            if row[i] >= low:
                count += 1
        if count > 8 * width:
            continue  # a support this wide, or a loose bound: left to the windowed path
        vals = np.empty(count, dtype=np.float32)
        idx = np.empty(count, dtype=np.int64)
        count = 0
        for i in range(n):
            if row[i] >= low:
                vals[count] = row[i]
                idx[count] = i
                count += 1
        order = np.argsort(-vals, kind="mergesort")
        # support.sparsemax_sorted on this prefix, in the same arithmetic.
        acc = 0.0
        k = 0
        csum_k = np.float32(0.0)
        for j in range(count):
            z = vals[order[j]]
            acc += np.float64(z)
            csum = np.float32(acc)
            if np.float32(1.0) + np.float32(j + 1) * z > csum:
                k = j + 1
                csum_k = csum
        k = max(k, 1)
        if k == 1:
            csum_k = np.float32(vals[order[0]])
        tau32 = (csum_k - np.float32(1.0)) / np.float32(k)
        # Like the windowed path, every collected entry with a positive weight is kept (entries not
        # collected lie below tau).
        kept = 0
        for j in range(count):
            p = vals[order[j]] - tau32
            if p > 0:
                if kept == width:
                    kept = -1
                    break
                out_idx[r, kept] = idx[order[j]]
                out_p[r, kept] = p
                kept += 1
        if kept >= 0:
            out_k[r] = k
            out_kept[r] = kept


def sparsemax_rows(
    sims: torch.Tensor, width: int, threads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each row of `sims` [rows, n] (float32, CPU, finite): its sparsemax support. Returns
    (k [rows]: the support size, -1 where the row is left to the windowed path; kept [rows]: how many
    weights are positive; indices [rows, width]; weights [rows, width] float32), entries past `kept`
    unused."""
    rows = sims.shape[0]
    out_idx = np.zeros((rows, width), dtype=np.int64)
    out_p = np.zeros((rows, width), dtype=np.float32)
    out_k = np.zeros(rows, dtype=np.int64)
    out_kept = np.zeros(rows, dtype=np.int64)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _sparsemax_rows(sims.contiguous().numpy(), width, out_idx, out_p, out_k, out_kept)
    return (
        torch.from_numpy(out_k),
        torch.from_numpy(out_kept),
        torch.from_numpy(out_idx),
        torch.from_numpy(out_p),
    )
