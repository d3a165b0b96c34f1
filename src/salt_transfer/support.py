"""Neighbour selection in the auxiliary space: exact sparsemax via top-K, and top-k softmax.

For every new token we need the shared tokens it is built from (its *support*) and a weight per
support token. Both come from cosine similarities in the auxiliary (fastText) space, computed in row
chunks so the dense N_new x N_shared matrix never exists as a whole (at 50k x 30k that would be
6 GB in float32).

**Exact sparsemax from a top-K (Martins & Astudillo 2016).** With scores sorted decreasingly,
sparsemax keeps the k(z) largest, where k(z) = max{j : 1 + j z_(j) > sum_{i<=j} z_(i)}, and
p_i = max(z_i - tau, 0) with tau = (sum_{i<=k} z_(i) - 1) / k. The test function
g(j) = 1 + j z_(j) - sum_{i<=j} z_(i) is non-increasing in j (g(j+1) - g(j) = j (z_(j+1) - z_(j)) <= 0),
so once it fails it fails for good. We therefore take the top-(K+1) scores of a row and run sparsemax
on them: if the support found has at most K elements, g failed inside the window and the result is
the sparsemax of the *full* row (tau lies above the (K+1)-th score). Otherwise the row is recomputed
with a 4x larger window, up to the whole row. `Support.enlarged` counts the rows that needed it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from tqdm import tqdm

# Similarity chunks are sized to about this many bytes (float32 rows x shared tokens).
DEFAULT_CHUNK_BYTES = 256 * 1024**2


@dataclass
class SparseRows:
    """A CSR matrix [n_rows, n_cols]: row i uses columns indices[indptr[i]:indptr[i+1]] with values."""

    indptr: torch.Tensor  # [n_rows + 1] int64
    indices: torch.Tensor  # [nnz] int64, columns index the shared-token list
    values: torch.Tensor  # [nnz] weights or coefficients
    n_cols: int
    enlarged: int = 0  # rows whose top-K window had to grow (sparsemax only)

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def sizes(self) -> torch.Tensor:
        return self.indptr[1:] - self.indptr[:-1]

    def with_values(self, values: torch.Tensor) -> SparseRows:
        return SparseRows(self.indptr, self.indices, values, self.n_cols, self.enlarged)

    def matmul(
        self, dense: torch.Tensor, dtype: torch.dtype | None = None, rows_per_block: int = 4096
    ) -> torch.Tensor:
        """self @ dense, computed in row blocks with a CSR kernel (no gather of nnz x dim rows)."""
        dtype = dtype or dense.dtype
        dense = dense.to(dtype)
        out = torch.empty(self.n_rows, dense.shape[1], dtype=dtype, device=dense.device)
        indptr = self.indptr.to(dense.device)
        indices = self.indices.to(dense.device)
        values = self.values.to(device=dense.device, dtype=dtype)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            for start in range(0, self.n_rows, rows_per_block):
                stop = min(start + rows_per_block, self.n_rows)
                lo, hi = int(indptr[start]), int(indptr[stop])
                # Invariants hold by construction (sorted indptr, in-range columns): skip the O(nnz) check.
                block = torch.sparse_csr_tensor(
                    indptr[start : stop + 1] - lo,
                    indices[lo:hi],
                    values[lo:hi],
                    size=(stop - start, self.n_cols),
                    dtype=dtype,
                    device=dense.device,
                    check_invariants=False,
                )
                out[start:stop] = block @ dense
        return out


def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """Unit-length rows; zero rows stay zero (callers exclude them as rare beforehand)."""
    norms = x.norm(dim=1, keepdim=True)
    return x / torch.where(norms > 0, norms, torch.ones_like(norms))


def sparsemax_sorted(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparsemax of rows already sorted decreasingly -> (probabilities, support size per row)."""
    ks = torch.arange(1, z.shape[1] + 1, device=z.device, dtype=z.dtype)
    cumsum = z.cumsum(dim=1)
    in_support = 1 + ks * z > cumsum
    # g(j) is non-increasing, so the support is a prefix; count it with max-index for robustness.
    k = (in_support * ks).amax(dim=1).clamp(min=1).long()
    tau = (cumsum.gather(1, (k - 1).unsqueeze(1)).squeeze(1) - 1) / k.to(z.dtype)
    return (z - tau.unsqueeze(1)).clamp(min=0), k


def _chunked(aux_new: torch.Tensor, aux_shared: torch.Tensor, chunk_bytes: int, desc: str | None):
    """Yield (start, cosine similarity chunk [rows, n_shared] float32)."""
    a_new, a_shared = normalize_rows(aux_new.float()), normalize_rows(aux_shared.float())
    rows = max(1, chunk_bytes // (4 * max(1, a_shared.shape[0])))
    starts = range(0, a_new.shape[0], rows)
    iterator = tqdm(starts, desc=desc, unit="chunk", mininterval=2) if desc else starts
    for start in iterator:
        yield start, a_new[start : start + rows] @ a_shared.T


def _assemble(
    parts: list[tuple[torch.Tensor, torch.Tensor]], n_rows: int, n_cols: int, enlarged: int
) -> SparseRows:
    """Concatenate per-row (indices, values) lists into CSR."""
    sizes = torch.tensor([len(i) for i, _ in parts], dtype=torch.long)
    indptr = torch.zeros(n_rows + 1, dtype=torch.long)
    indptr[1:] = sizes.cumsum(0)
    indices = torch.cat([i for i, _ in parts]) if parts else torch.empty(0, dtype=torch.long)
    values = torch.cat([v for _, v in parts]) if parts else torch.empty(0)
    return SparseRows(indptr, indices.cpu(), values.cpu(), n_cols, enlarged)


def _rows_to_parts(
    idx: torch.Tensor, val: torch.Tensor, keep: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    counts = keep.sum(dim=1).tolist()
    flat_idx, flat_val = idx[keep], val[keep]  # row-major: each row's kept entries stay in score order
    return list(zip(flat_idx.split(counts), flat_val.split(counts)))


def sparsemax_support(
    aux_new: torch.Tensor,
    aux_shared: torch.Tensor,
    k_init: int = 128,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: str | None = None,
) -> SparseRows:
    """Exact sparsemax over cosine similarities of each new token to all shared tokens."""
    n_new, n_shared = aux_new.shape[0], aux_shared.shape[0]
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    enlarged = 0
    for _, sims in _chunked(aux_new, aux_shared, chunk_bytes, progress):
        chunk_parts: list = [None] * sims.shape[0]
        pending = torch.arange(sims.shape[0], device=sims.device)
        window = k_init + 1  # K + 1 scores: the (K+1)-th proves the support ends inside the window
        while len(pending):
            m = min(window, n_shared)
            z, idx = sims[pending].topk(m, dim=1, sorted=True)
            p, k = sparsemax_sorted(z)
            exact = (k < m) | (m == n_shared)
            keep = p > 0
            for row, part in zip(pending[exact].tolist(), _rows_to_parts(idx[exact], p[exact], keep[exact])):
                chunk_parts[row] = part
            if window == k_init + 1:
                enlarged += int((~exact).sum())
            pending = pending[~exact]
            window *= 4
        parts.extend(chunk_parts)
    return _assemble(parts, n_new, n_shared, enlarged)


def topk_softmax_support(
    aux_new: torch.Tensor,
    aux_shared: torch.Tensor,
    k: int = 10,
    temperature: float = 0.1,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: str | None = None,
) -> SparseRows:
    """Top-k cosine neighbours with softmax(similarity / temperature) weights (OFA)."""
    n_new, n_shared = aux_new.shape[0], aux_shared.shape[0]
    k = min(k, n_shared)
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    for _, sims in _chunked(aux_new, aux_shared, chunk_bytes, progress):
        z, idx = sims.topk(k, dim=1, sorted=True)
        w = torch.softmax(z / temperature, dim=1)
        parts.extend(_rows_to_parts(idx, w, torch.ones_like(w, dtype=torch.bool)))
    return _assemble(parts, n_new, n_shared, 0)
