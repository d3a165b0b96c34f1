"""Exact sparsemax from a top-K window, and top-k softmax neighbours."""

from __future__ import annotations

import pytest
import torch

from salt_transfer.methods import support
from salt_transfer.methods.support import (
    SparseRows,
    sparsemax_sorted,
    sparsemax_support,
    topk_softmax_support,
)


def full_sparsemax(z: torch.Tensor) -> torch.Tensor:
    """Textbook sparsemax of one row (Martins & Astudillo 2016, Alg. 1)."""
    zs, _ = z.sort(descending=True)
    ks = torch.arange(1, len(z) + 1, dtype=z.dtype)
    k = int((1 + ks * zs > zs.cumsum(0)).nonzero().max()) + 1
    tau = (zs[:k].sum() - 1) / k
    return (z - tau).clamp(min=0)


def dense(rows: SparseRows) -> torch.Tensor:
    out = torch.zeros(rows.n_rows, rows.n_cols, dtype=rows.values.dtype)
    for i in range(rows.n_rows):
        lo, hi = int(rows.indptr[i]), int(rows.indptr[i + 1])
        out[i, rows.indices[lo:hi]] = rows.values[lo:hi]
    return out


def cosine(a, b):
    return torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T


def test_sparsemax_sorted_matches_textbook():
    torch.manual_seed(0)
    z = torch.randn(20, 50).sort(dim=1, descending=True).values
    p, k = sparsemax_sorted(z)
    for i in range(20):
        ref = full_sparsemax(z[i])
        torch.testing.assert_close(p[i], ref)
        assert int(k[i]) == int((ref > 0).sum())
    torch.testing.assert_close(p.sum(1), torch.ones(20))


def test_windowed_sparsemax_is_exact_even_when_the_window_grows():
    torch.manual_seed(1)
    # Crowded space (all cosines close): supports far larger than the initial window of 2.
    base = torch.randn(1, 8)
    aux_shared = base + 0.05 * torch.randn(300, 8)
    aux_new = base + 0.05 * torch.randn(40, 8)
    rows = sparsemax_support(aux_new, aux_shared, k_init=2, chunk_bytes=4 * 300 * 7)  # 7-row chunks
    assert rows.enlarged > 0
    sims = cosine(aux_new, aux_shared)
    expected = torch.stack([full_sparsemax(s) for s in sims])
    torch.testing.assert_close(dense(rows), expected)
    assert int(rows.sizes().max()) > 2


def test_support_is_the_nonzero_set_and_weights_sum_to_one():
    torch.manual_seed(2)
    rows = sparsemax_support(torch.randn(30, 6), torch.randn(80, 6), k_init=4)
    assert (rows.values > 0).all()
    sums = torch.zeros(30).index_add_(0, torch.repeat_interleave(torch.arange(30), rows.sizes()), rows.values)
    torch.testing.assert_close(sums, torch.ones(30))


def test_topk_softmax_weights():
    torch.manual_seed(3)
    a_new, a_shared = torch.randn(10, 5), torch.randn(40, 5)
    rows = topk_softmax_support(a_new, a_shared, k=4, temperature=0.1)
    assert (rows.sizes() == 4).all()
    sims = cosine(a_new, a_shared)
    top, idx = sims.topk(4, dim=1)
    weights = torch.softmax(top / 0.1, dim=1)
    order = idx.argsort(dim=1)  # CSR stores each row's columns in ascending order
    torch.testing.assert_close(rows.indices.view(10, 4), idx.gather(1, order))
    torch.testing.assert_close(rows.values.view(10, 4), weights.gather(1, order))


def test_csr_matmul_equals_dense_product():
    torch.manual_seed(4)
    rows = sparsemax_support(torch.randn(25, 6), torch.randn(60, 6))
    b = torch.randn(60, 9, dtype=torch.float64)
    torch.testing.assert_close(rows.matmul(b, tile=4), dense(rows).double() @ b)  # 9 columns: 3 tiles
    out = torch.zeros(30, 9, dtype=torch.float64)
    rows.matmul(b, out=out, out_rows=torch.arange(25) + 5)
    torch.testing.assert_close(out[5:], dense(rows).double() @ b)
    assert not out[:5].any()


@pytest.mark.parametrize(
    "n_new,n_shared,dim,k_init",
    [(400, 900, 12, 8), (300, 2000, 30, 128), (200, 300, 4, 2), (60, 50, 8, 128)],
    ids=["windows-grow", "wide-window", "crowded", "fewer-shared-than-window"],
)
def test_compiled_sparsemax_is_the_same_bytes_as_the_windowed_path(n_new, n_shared, dim, k_init):
    """The compiled threshold search against torch.topk windows: same supports, weights and count of
    rows whose support fills the first window; exact ties included (duplicated rows)."""
    g = torch.Generator().manual_seed(n_new + dim)
    aux_shared = torch.randn(n_shared, dim, generator=g)
    aux_new = torch.randn(n_new, dim, generator=g)
    aux_new[:20] = aux_shared[:20]
    aux_shared[30:40] = aux_shared[40:50]  # equal similarities for every new token
    chunk = 4 * n_shared * 37  # 37-row chunks, the last one partial
    ours = sparsemax_support(aux_new, aux_shared, k_init=k_init, chunk_bytes=chunk)
    theirs = sparsemax_support(aux_new, aux_shared, k_init=k_init, chunk_bytes=chunk, compiled=False)
    assert torch.equal(ours.indptr, theirs.indptr) and torch.equal(ours.indices, theirs.indices)
    assert torch.equal(ours.values, theirs.values) and ours.enlarged == theirs.enlarged


def test_compiled_sparsemax_leaves_rows_it_cannot_bound_to_the_windows(monkeypatch):
    """Supports wider than the compiled path's output go to the windowed path; so does a NaN input."""
    monkeypatch.setattr(support, "_KERNEL_WIDTH", 4)
    torch.manual_seed(4)
    base = torch.randn(1, 8)
    aux_shared, aux_new = base + 0.05 * torch.randn(300, 8), base + 0.05 * torch.randn(40, 8)
    rows = sparsemax_support(aux_new, aux_shared, k_init=2)
    expected = torch.stack([full_sparsemax(s) for s in cosine(aux_new, aux_shared)])
    torch.testing.assert_close(dense(rows), expected)
    assert int(rows.sizes().max()) > 4
    aux_new[3, 0] = float("nan")
    with_nan = sparsemax_support(aux_new, aux_shared, k_init=2)
    torch.testing.assert_close(dense(with_nan)[4:], expected[4:])
