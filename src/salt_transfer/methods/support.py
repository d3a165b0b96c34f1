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

from dataclasses import dataclass

import torch

from ..catalog import CHUNK_MB
from ..progress import track

# Similarity chunks are sized to about this many bytes (float32 rows x shared tokens). Small
# chunks stay in cache between the matrix product and the passes over it (measured at 213k x 15.2k
# on 2 cores with a 32 MiB L3: a row copy of a 32 MiB chunk is 9x slower than of an 8 MiB one, the
# product 1.4x; earlier, 32 MiB was 1.6x faster than 256 MiB at 23k x 8.5k).
DEFAULT_CHUNK_BYTES = CHUNK_MB * 1024**2


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
        self,
        dense: torch.Tensor,
        dtype: torch.dtype | None = None,
        out: torch.Tensor | None = None,
        out_rows: torch.Tensor | None = None,
        tile: int = 512,
    ) -> torch.Tensor:
        """self @ dense, as weighted sums of dense rows (`embedding_bag`), never gathering nnz x dim.

        The product runs over `tile`-column slices of `dense`: one slice of all candidate rows
        (S x 512 x 4 B, 17 MiB at S = 8.5k) stays in cache while every output row reads from it,
        2.4x faster than a CSR kernel over full rows (measured at 23k x 8.5k x 4096, 2 cores).
        With `out` and `out_rows`, row i of the product is written to out[out_rows[i]] (any
        device), so callers assembling a larger matrix need no intermediate copy.
        """
        dtype = dtype or dense.dtype
        width = dense.shape[1]
        if out is None:
            out = torch.empty(self.n_rows, width, dtype=dtype, device=dense.device)
            out_rows = None
        if self.n_rows == 0:
            return out
        offsets = self.indptr[:-1].to(dense.device)
        indices = self.indices.to(dense.device)
        weights = self.values.to(device=dense.device, dtype=dtype)
        for col in range(0, width, tile):
            part = dense[:, col : col + tile].to(dtype).contiguous()
            product = torch.nn.functional.embedding_bag(
                indices, part, offsets, mode="sum", per_sample_weights=weights
            )
            if out_rows is None:
                out[:, col : col + tile] = product
            else:
                out[out_rows, col : col + tile] = product.to(device=out.device, dtype=out.dtype)
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


def _chunked(
    aux_new: torch.Tensor, aux_shared: torch.Tensor, chunk_bytes: int, desc: str | None, bar: bool = True
):
    """Yield (start, cosine similarity chunk [rows, n_shared] float32).

    Every chunk is written into one buffer (valid until the next chunk is asked for), so the
    product does not touch fresh pages for each chunk.
    """
    a_new, a_shared = normalize_rows(aux_new.float()), normalize_rows(aux_shared.float())
    shared_t = a_shared.T.contiguous()
    rows = max(1, chunk_bytes // (4 * max(1, a_shared.shape[0])))
    buffer = torch.empty(min(rows, a_new.shape[0]), a_shared.shape[0], device=a_new.device)
    starts = range(0, a_new.shape[0], rows)
    iterator = track(starts, desc, bar=bar, unit="chunk") if desc else starts
    for start in iterator:
        part = a_new[start : start + rows]
        yield start, torch.mm(part, shared_t, out=buffer[: len(part)])


def _to_csr(
    rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, n_rows: int, n_cols: int, enlarged: int
) -> SparseRows:
    """CSR from (row, column, value) triples in any order; columns ascend within each row."""
    rows, cols, vals = rows.cpu(), cols.cpu(), vals.cpu()
    order = torch.argsort(rows * max(n_cols, 1) + cols)
    indptr = torch.zeros(n_rows + 1, dtype=torch.long)
    indptr[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    return SparseRows(indptr, cols[order], vals[order], n_cols, enlarged)


def _empty(n_rows: int, n_cols: int) -> SparseRows:
    empty = torch.empty(0, dtype=torch.long)
    return _to_csr(empty, empty, torch.empty(0), n_rows, n_cols, 0)


# Widest support the compiled path writes out; wider rows take the windowed path.
_KERNEL_WIDTH = 512


def sparsemax_support(
    aux_new: torch.Tensor,
    aux_shared: torch.Tensor,
    k_init: int = 128,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: str | None = None,
    bar: bool = True,
    compiled: bool = True,
) -> SparseRows:
    """Exact sparsemax over cosine similarities of each new token to all shared tokens (`progress`:
    what to call the step in a progress bar, or with `bar` off in log lines every 30 s).

    On the CPU each row goes first through the compiled threshold bound (sparsemax_kernel.py: the
    same weights, byte for byte); rows it leaves, and every row on a GPU or with `compiled` off, take
    torch.topk windows of K + 1 scores, grown 4x until the support provably ends inside."""
    n_new, n_shared = aux_new.shape[0], aux_shared.shape[0]
    triples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    enlarged = 0
    # Cosines of finite vectors are finite (normalize_rows maps zero rows to zero): the compiled path
    # needs no per-chunk check (one cost 0.7 s per 40,000 rows x 15,707 candidates).
    compiled = (
        compiled
        and aux_new.device.type == "cpu"
        and bool(torch.isfinite(aux_new).all())
        and bool(torch.isfinite(aux_shared).all())
    )
    for start, sims in _chunked(aux_new, aux_shared, chunk_bytes, progress, bar):
        pending = torch.arange(sims.shape[0], device=sims.device)
        if compiled:
            from .sparsemax_kernel import sparsemax_rows  # numba: imported only where it runs

            k, kept, idx, p = sparsemax_rows(sims, _KERNEL_WIDTH, torch.get_num_threads())
            done = k >= 0
            keep = torch.arange(_KERNEL_WIDTH).unsqueeze(0) < kept.unsqueeze(1)
            row = (torch.arange(len(k)) + start).unsqueeze(1).expand_as(idx)
            triples.append((row[keep], idx[keep], p[keep]))
            # What the windowed path counts: rows whose support fills its first window.
            if k_init + 1 < n_shared:
                enlarged += int((done & (k >= k_init + 1)).sum())
            pending = (~done).nonzero().squeeze(1)
        window = k_init + 1  # K + 1 scores: the (K+1)-th proves the support ends inside the window
        first = True
        while len(pending):
            m = min(window, n_shared)
            # The first window covers every row of the chunk: no copy of it (a row copy of a chunk
            # cost as much as its top-k).
            rows = sims if len(pending) == len(sims) else sims[pending]
            z, idx = rows.topk(m, dim=1, sorted=True)
            p, k = sparsemax_sorted(z)
            exact = (k < m) | (m == n_shared)
            keep = (p > 0) & exact.unsqueeze(1)
            row = (pending + start).unsqueeze(1).expand_as(idx)
            triples.append((row[keep], idx[keep], p[keep]))
            if first:
                enlarged += int((~exact).sum())
                first = False
            pending = pending[~exact]
            window *= 4
    if not triples:
        return _empty(n_new, n_shared)
    rows, cols, vals = (torch.cat(t) for t in zip(*triples))
    return _to_csr(rows, cols, vals, n_new, n_shared, enlarged)


def topk_softmax_support(
    aux_new: torch.Tensor,
    aux_shared: torch.Tensor,
    k: int = 10,
    temperature: float = 0.1,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: str | None = None,
    bar: bool = True,
) -> SparseRows:
    """Top-k cosine neighbours with softmax(similarity / temperature) weights (OFA)."""
    n_new, n_shared = aux_new.shape[0], aux_shared.shape[0]
    k = min(k, n_shared)
    rows, cols, vals = [], [], []
    for start, sims in _chunked(aux_new, aux_shared, chunk_bytes, progress, bar):
        z, idx = sims.topk(k, dim=1, sorted=True)
        rows.append(torch.arange(start, start + len(z), device=z.device).repeat_interleave(k))
        cols.append(idx.reshape(-1))
        vals.append(torch.softmax(z / temperature, dim=1).reshape(-1))
    if not rows:
        return _empty(n_new, n_shared)
    return _to_csr(torch.cat(rows), torch.cat(cols), torch.cat(vals), n_new, n_shared, 0)
