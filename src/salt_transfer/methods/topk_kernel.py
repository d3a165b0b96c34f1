"""The m largest entries of each row, sorted, on the CPU: one compiled pass per row (numba).

torch.topk on the CPU cost 6.4 s of a 15.5 s neighbour search at multilingual scale (213,617 rows x
15,188 candidates, m = 129; bench/bench_multilingual.py). Here a row is read three times, each pass
a loop the compiler vectorises or predicts: the maxima of groups of up to 64 entries, of which the
m-th largest is a lower bound for the row's m-th largest entry (m distinct entries reach it); the
count of entries at or above the bound; their collection. Only those (a few hundred at m = 129 with
64-entry groups on cosine similarities) are sorted. A min-heap of the m best, tried first, lost to
torch: its sift-downs branch unpredictably (68 us a row against torch's 57).

Same values as torch.topk(sorted=True), so callers that use only the values and the set of indices
(sparsemax over the window) get the same bytes. Among equal values the order is by index; torch's
CPU order among ties is unspecified. NaN rows are the caller's to avoid (see `top_window`).

This module imports numba at import: import it only where a neighbour search runs.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

# Entries per group for the lower bound: larger groups make fewer maxima to sort and a lower bound
# (more entries to collect).
_GROUP = 64


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _top_rows(sims, m, out_vals, out_idx):  # pragma: no cover - compiled
    n_rows, n = sims.shape
    # Groups of the row: at least m of them, so their maxima (m distinct entries) bound the m-th
    # largest entry from below.
    size = max(1, min(_GROUP, n // m))
    n_groups = (n + size - 1) // size
    for r in numba.prange(n_rows):
        row = sims[r]
        maxima = np.empty(n_groups, dtype=np.float32)
        for g in range(n_groups):
            lo = g * size
            best = row[lo]
            for i in range(lo + 1, min(lo + size, n)):
                best = max(best, row[i])
            maxima[g] = best
        bound = np.partition(maxima, n_groups - m)[n_groups - m]  # the m-th largest group maximum
        count = 0
        for i in range(n):
            if row[i] >= bound:
                count += 1
        vals = np.empty(count, dtype=np.float32)
        idx = np.empty(count, dtype=np.int64)
        count = 0
        for i in range(n):
            if row[i] >= bound:
                vals[count] = row[i]
                idx[count] = i
                count += 1
        # Decreasing values, then each run of equal values in increasing index order.
        order = np.argsort(-vals)
        vals = vals[order]
        idx = idx[order]
        j = 0
        while j < m:
            end = j + 1
            while end < count and vals[end] == vals[j]:
                end += 1
            if end - j > 1:
                idx[j:end] = np.sort(idx[j:end])
            j = end
        out_vals[r] = vals[:m]
        out_idx[r] = idx[:m]


def top_rows(sims: torch.Tensor, m: int, threads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the m largest entries of each row of `sims` [rows, n] (float32, CPU,
    no NaN), decreasing; equal values by increasing index."""
    rows = sims.shape[0]
    out_vals = np.empty((rows, m), dtype=np.float32)
    out_idx = np.empty((rows, m), dtype=np.int64)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _top_rows(sims.contiguous().numpy(), m, out_vals, out_idx)
    return torch.from_numpy(out_vals), torch.from_numpy(out_idx)
