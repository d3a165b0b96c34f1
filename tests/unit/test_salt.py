"""SALT's per-token minimum-norm least squares against a plain per-token pinv reference."""

from __future__ import annotations

import pytest
import torch

from salt_transfer.methods.salt import min_norm_coefficients, salt_rows
from salt_transfer.methods.support import SparseRows, sparsemax_support


def reference_rows(aux_new, aux_shared, plm_new, plm_shared, llm_shared):
    """The paper's formula token by token: X = pinv(A) B (ht x hs), row = e X."""
    a_new = torch.nn.functional.normalize(aux_new, dim=1)
    a_shared = torch.nn.functional.normalize(aux_shared, dim=1)
    rows, sizes = [], []
    for i in range(len(a_new)):
        z = a_shared @ a_new[i]
        zs, order = z.sort(descending=True)
        ks = torch.arange(1, len(zs) + 1, dtype=zs.dtype)
        k = int((1 + ks * zs > zs.cumsum(0)).nonzero().max()) + 1
        support = order[:k]
        x = torch.linalg.pinv(plm_shared[support]) @ llm_shared[support]
        rows.append(plm_new[i] @ x)
        sizes.append(k)
    return torch.stack(rows), torch.tensor(sizes)


def relative_error(a, b):
    return float(((a - b).norm(dim=1) / b.norm(dim=1).clamp(min=1e-30)).max())


def mixed_supports(n_single: int, n_crowded: int, s: int, seed: int):
    """Aux vectors giving supports of size 1 (a shared token's own one-hot direction) and large
    supports (new tokens inside a tight cluster of shared tokens)."""
    g = torch.Generator().manual_seed(seed)
    d = n_single + 6
    aux_shared = torch.zeros(s, d)
    aux_shared[:n_single, :n_single] = torch.eye(n_single)  # cos = 1 with itself, 0 with all others
    centre = torch.randn(6, generator=g)
    aux_shared[n_single:, n_single:] = centre + 0.15 * torch.randn(s - n_single, 6, generator=g)
    aux_new = torch.zeros(n_single + n_crowded, d)
    aux_new[:n_single] = aux_shared[:n_single]
    aux_new[n_single:, n_single:] = centre + 0.15 * torch.randn(n_crowded, 6, generator=g)
    return aux_new, aux_shared


@pytest.mark.parametrize("ht", [4, 12, 40])
def test_salt_rows_equal_the_per_token_pinv_reference(ht):
    """Random inputs with supports of size 1 up to well above ht (both Gram orientations)."""
    torch.manual_seed(ht)
    s, hs = 400, 32
    aux_new, aux_shared = mixed_supports(8, 40, s, seed=ht)
    n = len(aux_new)
    plm_new, plm_shared, llm_shared = torch.randn(n, ht), torch.randn(s, ht), torch.randn(s, hs)
    got = salt_rows(aux_new, aux_shared, plm_new, plm_shared, llm_shared)
    want, sizes = reference_rows(aux_new, aux_shared, plm_new, plm_shared, llm_shared)
    assert got.shape == (n, hs) and got.dtype == torch.float32
    assert int(sizes.min()) == 1 and int(sizes.max()) > ht  # the cases the issue names
    assert relative_error(got, want) <= 1e-4


def test_float64_option():
    torch.manual_seed(7)
    args = [
        torch.randn(20, 5),
        torch.randn(90, 5),
        torch.randn(20, 16),
        torch.randn(90, 16),
        torch.randn(90, 24),
    ]
    got = salt_rows(*[a.double() for a in args], dtype=torch.float64)
    want, _ = reference_rows(*[a.double() for a in args])
    assert got.dtype == torch.float64
    assert relative_error(got, want) <= 1e-10


def test_a_token_that_is_its_own_support_gets_exactly_its_llm_row():
    """e = A_j and support {j}: c = <e, A_j>/|A_j|^2 = 1, so the row is B_j itself."""
    torch.manual_seed(8)
    s, ht, hs = 12, 8, 10
    aux_shared = torch.eye(s)  # orthogonal: cos(a_j, a_i) = 0 for i != j, so sparsemax keeps only j
    plm_shared, llm_shared = torch.randn(s, ht), torch.randn(s, hs)
    rows = salt_rows(aux_shared[3:7], aux_shared, plm_shared[3:7], plm_shared, llm_shared)
    torch.testing.assert_close(rows, llm_shared[3:7], rtol=1e-6, atol=1e-6)
    support = sparsemax_support(aux_shared[3:7], aux_shared)
    assert support.sizes().tolist() == [1, 1, 1, 1]


def test_rank_deficient_supports_fall_back_to_the_pinv_cutoff():
    """Duplicate PLM rows make A rank-deficient: the solver must not invert the null space."""
    torch.manual_seed(9)
    ht = 6
    base = torch.randn(3, ht)
    plm_shared = base[torch.arange(30) % 3] * (1 + torch.arange(30).unsqueeze(1) % 2)  # rank 3
    support = SparseRows(
        torch.tensor([0, 5, 12]),
        torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
        torch.ones(12),
        n_cols=30,
    )
    plm_new = torch.randn(2, ht)
    coeffs, stats = min_norm_coefficients(support, plm_new, plm_shared)
    assert stats.eigh_rows == 2
    for i, (lo, hi) in enumerate([(0, 5), (5, 12)]):
        a = plm_shared[lo:hi].double()
        want = plm_new[i].double() @ torch.linalg.pinv(a, rtol=max(a.shape) * torch.finfo(torch.float32).eps)
        torch.testing.assert_close(coeffs.values[lo:hi], want, rtol=1e-6, atol=1e-8)


def test_salt_runs_on_cuda_when_present():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.manual_seed(10)
    args = [
        torch.randn(20, 5),
        torch.randn(90, 5),
        torch.randn(20, 16),
        torch.randn(90, 16),
        torch.randn(90, 24),
    ]
    got = salt_rows(*[a.cuda() for a in args])
    assert got.is_cuda
    torch.testing.assert_close(got.cpu(), salt_rows(*args), rtol=1e-4, atol=1e-5)


def test_near_collinear_supports_use_the_pinv_cutoff():
    """A support whose smallest singular value is below pinv's cut-off but far from zero: a plain
    Cholesky solve would succeed and blow the tiny direction up; the shifted factorization must
    refuse it and the eigh path must drop it exactly as torch.linalg.pinv does."""
    torch.manual_seed(12)
    ht, k = 50, 10  # rtol = 50 * eps32 = 6e-6
    base = torch.randn(k - 1, ht, dtype=torch.float64)
    last = base[:4].mean(0) + 1e-6 * torch.nn.functional.normalize(
        torch.randn(ht, dtype=torch.float64), dim=0
    )
    plm_shared = torch.cat([base, last.unsqueeze(0)]).float()
    sigma = torch.linalg.svdvals(plm_shared.double())
    assert 1e-9 < float(sigma[-1] / sigma[0]) < 50 * torch.finfo(torch.float32).eps  # below the cut-off
    support = SparseRows(torch.tensor([0, k]), torch.arange(k), torch.ones(k), n_cols=k)
    plm_new = torch.randn(1, ht)
    coeffs, stats = min_norm_coefficients(support, plm_new, plm_shared)
    assert stats.eigh_rows == 1
    a = plm_shared.double()
    want = plm_new[0].double() @ torch.linalg.pinv(a, rtol=ht * torch.finfo(torch.float32).eps)
    torch.testing.assert_close(coeffs.values, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("rhs_rows", [16384, 3], ids=["one-block", "blocks-of-3"])
def test_global_gram_and_per_token_paths_agree(rhs_rows, monkeypatch):
    """The S x S Gram shortcut (small candidate sets) and the per-token gather give the same numbers,
    with the right-hand sides computed in one block or in many."""
    from salt_transfer.methods import salt as salt_module

    monkeypatch.setattr(salt_module, "_RHS_ROWS", rhs_rows)
    torch.manual_seed(13)
    aux_new, aux_shared = mixed_supports(8, 40, 300, seed=13)
    plm_new, plm_shared = torch.randn(len(aux_new), 20), torch.randn(300, 20)
    support = sparsemax_support(aux_new, aux_shared)
    assert int(support.sizes().max()) > 20  # both orientations present
    via_gram, s1 = min_norm_coefficients(support, plm_new, plm_shared)
    per_token, s2 = min_norm_coefficients(support, plm_new, plm_shared, gram_bytes=0)
    assert s1.global_gram and not s2.global_gram
    torch.testing.assert_close(via_gram.values, per_token.values, rtol=1e-9, atol=1e-12)


def test_the_registered_method_computes_eq_3_exactly():
    """The `salt` method as `fit` runs it (TransferProblem -> registry), not the pieces: its rows of
    new tokens equal the per-token pinv reference, rare tokens excepted."""
    from test_methods import make_problem

    from salt_transfer.methods import get_method

    problem, source, rare_ids = make_problem(n_target=160, n_shared=90, hs=20, ht=10, seed=5)
    spec = get_method("salt")
    result = spec.fit(problem, spec.options())
    scored, _, cand = problem.aux_split()
    shared = problem.shared_target[cand]
    want, sizes = reference_rows(
        problem.aux.vectors[scored],
        problem.aux.vectors[shared],
        problem.plm[scored],
        problem.plm[shared],
        problem.source_in.shared[cand],
    )
    assert int(sizes.max()) > 10  # supports wider than ht: the pinv branch is exercised
    assert relative_error(result.input[scored], want) <= 1e-4
    assert result.info["n_fitted"] == len(scored) and result.info["conditioning"]["sampled_tokens"] > 0


def test_salt_rows_follows_the_input_dtype():
    torch.manual_seed(3)
    args = [
        torch.randn(10, 5),
        torch.randn(40, 5),
        torch.randn(10, 8),
        torch.randn(40, 8),
        torch.randn(40, 6),
    ]
    assert salt_rows(*args).dtype == torch.float32
    assert salt_rows(*[a.double() for a in args]).dtype == torch.float64


def _one_support(k, ht, seed):
    g = torch.Generator().manual_seed(seed)
    plm_shared = torch.randn(k, ht, generator=g, dtype=torch.float64)
    support = SparseRows(torch.tensor([0, k]), torch.arange(k), torch.ones(k), n_cols=k)
    return support, plm_shared, torch.randn(1, ht, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("k,ht", [(6, 10), (14, 10)])
def test_ridge_option_solves_the_regularized_system(k, ht):
    """Not the paper: c (A A^T + lambda I) = e A^T with lambda = ridge x mean squared row norm."""
    support, a, e = _one_support(k, ht, seed=k)
    coeffs, _ = min_norm_coefficients(support, e, a, rtol_dtype=torch.float64, ridge=0.5)
    lam = 0.5 * float((a * a).sum()) / k
    want = (e @ a.T) @ torch.linalg.inv(a @ a.T + lam * torch.eye(k, dtype=torch.float64))
    torch.testing.assert_close(coeffs.values, want.squeeze(0), rtol=1e-9, atol=1e-12)


def test_pinv_rtol_option_drops_small_singular_values_as_pinv_does():
    support, a, e = _one_support(8, 10, seed=1)
    a[-1] = a[0] + 1e-3 * a[-1]  # nearly collinear with row 0: a small singular value (not an exact zero)
    coeffs, stats = min_norm_coefficients(support, e, a, rtol_dtype=torch.float64, pinv_rtol=1e-2)
    want = e @ torch.linalg.pinv(a, rtol=1e-2)
    torch.testing.assert_close(coeffs.values, want.squeeze(0), rtol=1e-9, atol=1e-12)
    exact, _ = min_norm_coefficients(support, e, a, rtol_dtype=torch.float64)
    assert not torch.allclose(exact.values, coeffs.values)  # the default (eq. 3) keeps that direction


def test_norm_cap_bounds_every_new_row_and_leaves_the_rest():
    from test_methods import make_problem, run

    problem, source, _ = make_problem(n_target=160, n_shared=90, hs=20, ht=10, seed=7)
    plain = run("salt", problem)
    capped = run("salt", problem, norm_cap=0.5, norm_cap_quantile=0.9)
    shared_norms = source[problem.shared_source].double().norm(dim=1)
    cap = 0.5 * float(torch.quantile(shared_norms, 0.9))
    new_norms = capped.input[problem.new_ids].double().norm(dim=1)
    assert float(new_norms.max()) <= cap * (1 + 1e-6)
    report = capped.info["norm_cap"]["input"]
    assert report["rows_capped"] > 0 and report["cap"] == pytest.approx(cap)
    torch.testing.assert_close(capped.input[problem.shared_target], plain.input[problem.shared_target])
    kept = plain.input[problem.new_ids].double().norm(dim=1) <= cap
    torch.testing.assert_close(capped.input[problem.new_ids][kept], plain.input[problem.new_ids][kept])


@pytest.mark.parametrize("block", [1, 3, 7, 64])
def test_packed_gram_gathers_the_full_gram_blocks(block):
    # The packed lower triangle (row blocks of `block`) returns exactly the entries of table @ table.T
    # for any ascending column lists, including the last row and repeated padding columns.
    from salt_transfer.methods.salt import PackedGram

    torch.manual_seed(3)
    table = torch.randn(23, 5, dtype=torch.float64)
    packed = PackedGram.of(table, block=block)
    assert len(packed.storage) <= PackedGram.nbytes(23, block=block) // 8
    full = table @ table.T
    cols = torch.stack([torch.randperm(23)[:6].sort().values for _ in range(10)])
    cols[0, -2:] = 22  # padding repeats the last column
    got = packed.gather(cols)
    expected = full[cols.unsqueeze(2), cols.unsqueeze(1)]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_support_conditioning_batched_by_size_equals_one_svd_per_token():
    from salt_transfer.methods.salt import support_conditioning

    torch.manual_seed(5)
    aux_new, aux_shared = mixed_supports(8, 30, 200, seed=5)
    support = sparsemax_support(aux_new, aux_shared)
    plm_cand = torch.randn(200, 12)
    plm_cand[7] = plm_cand[3]  # a duplicated row makes some supports singular
    rows = torch.tensor([5, 0, 3, 5, len(aux_new) - 1])
    got = support_conditioning(support, plm_cand, rows)
    for value, i in zip(got, rows.tolist()):
        lo, hi = int(support.indptr[i]), int(support.indptr[i + 1])
        sigma = torch.linalg.svdvals(plm_cand[support.indices[lo:hi]].double())
        want = float(sigma[0] / sigma[-1]) if float(sigma[-1]) > 0 else None
        if want is None or value is None:
            assert value is None or value > 1e12
        else:
            assert value == pytest.approx(want, rel=1e-9)
