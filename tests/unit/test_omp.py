"""OMP (Goddard & Neto 2025): the anchors and coefficients of textbook OMP, applied to the LLM rows."""

from __future__ import annotations

import pytest
import torch
from test_methods import make_problem, run

from salt_transfer.errors import InputError
from salt_transfer.methods import omp as omp_module
from salt_transfer.methods.omp import omp_coefficients


def textbook_omp(e: torch.Tensor, atoms: torch.Tensor, k: int) -> tuple[list[int], torch.Tensor]:
    """Explicit residuals and a least-squares solve per step, as the paper and mergekit describe it."""
    picked: list[int] = []
    residual = e.clone()
    coef = torch.zeros(0, dtype=torch.float64)
    for _ in range(k):
        scores = (atoms @ residual).abs()
        scores[picked] = -1
        picked.append(int(scores.argmax()))
        basis = atoms[picked].T  # [ht, t]
        coef = torch.linalg.lstsq(basis, e.unsqueeze(1)).solution.squeeze(1)
        residual = e - basis @ coef
    return picked, coef


# The two pursuits: Batch-OMP through the S x S Gram matrix (compiled, CPU) and explicit residuals.
PURSUITS = pytest.mark.parametrize("gram_bytes", [512 * 1024**2, 0], ids=["gram", "residual"])


@PURSUITS
@pytest.mark.parametrize("ht,s,k", [(16, 40, 5), (12, 30, 12), (32, 200, 20), (24, 1100, 9)])
def test_same_anchors_and_coefficients_as_textbook_omp(ht, s, k, gram_bytes, monkeypatch):
    """Both pursuits; S = 1,100 spans three blocks of the compiled loop's S axis, the last one partial."""
    monkeypatch.setattr(omp_module, "_GRAM_BYTES", gram_bytes)
    g = torch.Generator().manual_seed(ht + s + k)
    atoms = torch.randn(s, ht, generator=g, dtype=torch.float64)
    targets = torch.randn(23, ht, generator=g, dtype=torch.float64)
    got = omp_coefficients(targets, atoms, k, batch_bytes=1)  # batch_bytes=1: the smallest batches
    for i in range(len(targets)):
        want_idx, want_coef = textbook_omp(targets[i], atoms, k)
        lo, hi = int(got.indptr[i]), int(got.indptr[i + 1])
        assert got.indices[lo:hi].tolist() == want_idx
        torch.testing.assert_close(got.values[lo:hi], want_coef, rtol=1e-8, atol=1e-10)


@PURSUITS
def test_batches_do_not_change_the_result(gram_bytes, monkeypatch):
    monkeypatch.setattr(omp_module, "_GRAM_BYTES", gram_bytes)
    g = torch.Generator().manual_seed(3)
    atoms, targets = torch.randn(300, 24, generator=g), torch.randn(150, 24, generator=g)
    one = omp_coefficients(targets, atoms, 16)
    small = omp_coefficients(targets, atoms, 16, batch_bytes=1)
    assert torch.equal(one.indptr, small.indptr) and torch.equal(one.indices, small.indices)
    torch.testing.assert_close(one.values, small.values, rtol=1e-12, atol=1e-12)


def test_compiled_pursuit_does_not_depend_on_the_thread_count():
    """Each token's loop is sequential: 1 or 2 threads give the same bytes."""
    g = torch.Generator().manual_seed(5)
    atoms, targets = torch.randn(700, 32, generator=g), torch.randn(40, 32, generator=g)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = omp_coefficients(targets, atoms, 24)
        torch.set_num_threads(2)
        two = omp_coefficients(targets, atoms, 24)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one.indices, two.indices) and torch.equal(one.values, two.values)


@PURSUITS
def test_stops_when_the_next_anchor_is_dependent(gram_bytes, monkeypatch):
    """k larger than the rank: a token whose residual reaches 0 stops with an exact reconstruction."""
    monkeypatch.setattr(omp_module, "_GRAM_BYTES", gram_bytes)
    g = torch.Generator().manual_seed(0)
    atoms = torch.randn(10, 4, generator=g, dtype=torch.float64)
    targets = torch.randn(3, 4, generator=g, dtype=torch.float64)
    got = omp_coefficients(targets, atoms, 8)
    for i in range(3):
        lo, hi = int(got.indptr[i]), int(got.indptr[i + 1])
        assert hi - lo == 4  # rank 4: the fifth anchor is dependent on the first four
        rebuilt = got.values[lo:hi] @ atoms[got.indices[lo:hi]]
        torch.testing.assert_close(rebuilt, targets[i], rtol=1e-9, atol=1e-9)
    with pytest.raises(InputError, match="between 1 and the number of shared tokens"):
        omp_coefficients(targets, atoms, 11)


def test_registered_method_applies_the_coefficients_to_the_llm_rows():
    problem, source, _ = make_problem(untied=True, seed=4)
    result = run("omp", problem, k=6)
    new_ids = problem.new_ids
    shared_plm = problem.plm[problem.shared_target]
    coeffs = omp_coefficients(problem.plm[new_ids], shared_plm, 6)
    dense = torch.zeros(len(new_ids), len(problem.shared_target), dtype=torch.float64)
    for i in range(len(new_ids)):
        lo, hi = int(coeffs.indptr[i]), int(coeffs.indptr[i + 1])
        dense[i, coeffs.indices[lo:hi]] = coeffs.values[lo:hi]
    llm_shared = source[problem.shared_source].double()
    torch.testing.assert_close(result.input[new_ids].double(), dense @ llm_shared, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result.input[problem.shared_target], source[problem.shared_source])
    # An untied head gets the same coefficients on its own shared rows.
    head_shared = problem.source_out.shared.double()
    torch.testing.assert_close(result.output[new_ids].double(), dense @ head_shared, rtol=1e-5, atol=1e-5)
    assert result.info["k"]["max"] == 6 and "n_candidates" in result.info
    assert result.info["pursuit"] == "gram"  # CPU, a Gram matrix of a few kB
    with pytest.raises(InputError, match="needs the PLM"):
        problem.plm = None
        run("omp", problem)
