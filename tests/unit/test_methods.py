"""Each method's defining property, on problems built from tensors."""

from __future__ import annotations

import pytest
import torch

from salt_transfer.errors import InputError
from salt_transfer.fasttext_vectors import AuxVectors
from salt_transfer.methods import REGISTRY, SourceRows, TransferProblem, get_method
from salt_transfer.methods.focus import focus_rows
from salt_transfer.methods.procrustes import fit_map
from salt_transfer.methods.support import sparsemax_support
from salt_transfer.weights import RowMatrix


def make_problem(
    n_target=120,
    n_source=200,
    n_shared=70,
    hs=16,
    ht=12,
    d=8,
    untied=False,
    seed=0,
    rare=(5, 6),
    head_map=None,
):
    g = torch.Generator().manual_seed(seed)
    source = torch.randn(n_source, hs, generator=g) * 0.5 + 0.1
    shared_target = torch.randperm(n_target, generator=g)[:n_shared]
    shared_source = torch.randperm(n_source, generator=g)[:n_shared]
    aux = torch.randn(n_target, d, generator=g)
    usable = torch.ones(n_target, dtype=torch.bool)
    new = torch.ones(n_target, dtype=torch.bool)
    new[shared_target] = False
    new_ids = new.nonzero().squeeze(1)
    rare_ids = new_ids[list(rare)]
    usable[rare_ids] = False
    aux[rare_ids] = 0
    out = None
    if untied:
        head = source @ head_map if head_map is not None else torch.randn(n_source, hs, generator=g)
        out = SourceRows(RowMatrix.from_tensor(head, "head"), shared_source)
    problem = TransferProblem(
        n_target=n_target,
        shared_target=shared_target,
        shared_source=shared_source,
        source_in=SourceRows(RowMatrix.from_tensor(source, "source"), shared_source),
        source_out=out,
        aux=AuxVectors(aux, usable, "token"),
        plm=torch.randn(n_target, ht, generator=g),
        seed=seed,
        progress=False,
    )
    return problem, source, rare_ids


def run(name, problem, **options):
    spec = get_method(name)
    return spec.fit(problem, spec.options(**options))


def test_registry_has_the_issue_methods():
    assert set(REGISTRY) == {"salt", "focus", "ofa", "multivariate", "random", "mean", "procrustes", "omp"}
    for spec in REGISTRY.values():
        assert spec.reference and len(spec.doc) > 200  # cites its paper, states departures
    with pytest.raises(InputError, match="unknown method"):
        get_method("wechsel")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_copies_shared_rows_and_fills_all_rows(name):
    problem, source, _ = make_problem()
    result = run(name, problem)
    assert result.input.shape == (120, 16)
    assert torch.isfinite(result.input).all()
    torch.testing.assert_close(result.input[problem.shared_target], source[problem.shared_source])
    assert result.info["n_copied"] + result.info["n_fitted"] + result.info["n_random"] == 120


def test_focus_rows_are_convex_combinations_of_the_support():
    """With the identity as LLM rows, a FOCUS row *is* its weight vector: >= 0, sums to 1,
    non-zero exactly on the sparsemax support."""
    torch.manual_seed(1)
    aux_new, aux_shared = torch.randn(40, 6), torch.randn(30, 6)
    weights = focus_rows(aux_new, aux_shared, torch.eye(30))
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(40))
    support = sparsemax_support(aux_new, aux_shared)
    for i in range(40):
        lo, hi = int(support.indptr[i]), int(support.indptr[i + 1])
        assert set(weights[i].nonzero().squeeze(1).tolist()) == set(support.indices[lo:hi].tolist())
    # And a general FOCUS row lies in the convex hull: equal to weights @ rows.
    rows = torch.randn(30, 9)
    torch.testing.assert_close(focus_rows(aux_new, aux_shared, rows), weights @ rows, rtol=1e-5, atol=1e-6)


def test_rare_tokens_get_normal_rows_from_source_statistics():
    problem, source, rare_ids = make_problem(n_target=3000, n_shared=100, rare=tuple(range(2500)))
    result = run("focus", problem)
    rows = result.input[rare_ids].double()
    torch.testing.assert_close(rows.mean(0), source.double().mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(rows.std(0), source.double().std(0), atol=0.05, rtol=0)


def test_multivariate_matches_the_source_moments():
    problem, source, _ = make_problem(n_target=6000, n_shared=50, hs=6, n_source=400)
    result = run("multivariate", problem, cov_scale=1.0)
    rows = result.input[problem.new_ids].double()
    src = source.double()
    mu = src.mean(0)
    cov = (src - mu).T @ (src - mu) / len(src)
    torch.testing.assert_close(rows.mean(0), mu, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(rows.T, correction=0), cov, atol=0.03, rtol=0)


def test_multivariate_default_scale_is_hewitts():
    problem, source, _ = make_problem(n_target=4000, n_shared=50, hs=6)
    rows = run("multivariate", problem).input[problem.new_ids].double()
    src = source.double()
    cov = torch.cov(src.T, correction=0)
    torch.testing.assert_close(torch.cov(rows.T, correction=0), 1e-5 * cov, atol=2e-6, rtol=0)


def test_random_and_mean():
    problem, source, _ = make_problem(n_target=5000, n_shared=60)
    mean_rows = run("mean", problem).input[problem.new_ids]
    torch.testing.assert_close(mean_rows, source.mean(0).expand_as(mean_rows), rtol=1e-5, atol=1e-6)
    rnd = run("random", problem).input[problem.new_ids].double()
    torch.testing.assert_close(rnd.std(0), source.double().std(0), atol=0.03, rtol=0)
    everything = run("random", problem, copy_shared=False)
    assert not torch.allclose(everything.input[problem.shared_target], source[problem.shared_source])


@pytest.mark.parametrize("ht,hs", [(6, 10), (10, 6), (8, 8)])
def test_orthogonal_procrustes_is_a_partial_isometry_and_optimal(ht, hs):
    torch.manual_seed(ht + hs)
    a, b = torch.randn(200, ht), torch.randn(200, hs)
    w = fit_map(a, b, "orthogonal").weight
    eye = torch.eye(min(ht, hs), dtype=torch.float64)
    gram = w @ w.T if ht <= hs else w.T @ w
    torch.testing.assert_close(gram, eye)
    # Optimality: no random partial isometry aligns the normalized spaces better.
    m = fit_map(a, b, "orthogonal")
    an, bn = (a.double() - m.src_mean) / m.src_scale, (b.double() - m.dst_mean) / m.dst_scale
    best = torch.trace(w.T @ an.T @ bn)
    for _ in range(20):
        q = torch.linalg.qr(torch.randn(max(ht, hs), min(ht, hs), dtype=torch.float64)).Q
        other = q if ht >= hs else q.T
        assert torch.trace(other.T @ an.T @ bn) <= best + 1e-9


def test_procrustes_recovers_an_exact_orthogonal_map():
    torch.manual_seed(3)
    q = torch.linalg.qr(torch.randn(8, 8)).Q
    a = torch.randn(300, 8)
    b = 2.0 * (a - a.mean(0)) @ q + 5.0  # rotated, rescaled, shifted
    mapping = fit_map(a, b, "orthogonal")
    torch.testing.assert_close(mapping(a, torch.float32), b, rtol=1e-4, atol=1e-4)


def test_ols_procrustes_satisfies_the_normal_equations():
    torch.manual_seed(4)
    a, b = torch.randn(150, 7).double(), torch.randn(150, 11).double()
    w = fit_map(a, b, "ols").weight
    torch.testing.assert_close(a.T @ (a @ w - b), torch.zeros(7, 11, dtype=torch.float64), atol=1e-9, rtol=0)


def test_ofa_softmax_average_and_low_rank_projection():
    problem, source, _ = make_problem(hs=16)
    full = run("ofa", problem)
    low = run("ofa", problem, rank=4)
    # Low-rank rows lie in a 4-dimensional subspace: the matrix has rank 4.
    assert torch.linalg.matrix_rank(low.input.double(), rtol=1e-6) == 4
    assert torch.linalg.matrix_rank(full.input.double()) == 16
    assert (full.info["k"]["max"], full.info["k"]["min"]) == (10, 10)


@pytest.mark.parametrize("name", ["salt", "focus", "ofa"])
def test_untied_heads_reuse_the_same_coefficients(name):
    """Rows are linear in the source rows: with head = E @ M, fitted head rows = fitted input rows @ M."""
    m = torch.randn(16, 16, generator=torch.Generator().manual_seed(5))
    problem, _, rare_ids = make_problem(untied=True, head_map=m)
    result = run(name, problem)
    assert result.output is not None
    fitted = torch.ones(problem.n_target, dtype=torch.bool)
    fitted[rare_ids] = False
    torch.testing.assert_close(result.output[fitted], result.input[fitted] @ m, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["multivariate", "random", "mean", "procrustes"])
def test_untied_heads_get_rows_for_other_methods(name):
    problem, _, _ = make_problem(untied=True)
    result = run(name, problem)
    assert result.output is not None and result.output.shape == result.input.shape
    torch.testing.assert_close(result.output[problem.shared_target], problem.source_out.shared)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_same_seed_same_rows_other_seed_other_random_rows(name):
    a = run(name, make_problem(seed=11)[0]).input
    b = run(name, make_problem(seed=11)[0]).input
    assert torch.equal(a, b)
    # The other half: another seed of the random draws (same problem) changes exactly the rows a
    # method draws at random, and no other.
    problem = make_problem(seed=11)[0]
    problem.seed = 12
    result = run(name, problem)
    drawn = result.info["n_random"] > 0 or name == "multivariate"
    assert torch.equal(result.input, a) != drawn


def test_centred_salt_keeps_the_shared_component():
    """With `center`, every fitted row is mean_L + c (B - mean_L): subtracting the LLM mean gives
    exactly the plain SALT combination of centred rows, whatever the coefficients sum to."""
    problem, source, rare_ids = make_problem(seed=21)
    centred = run("salt", problem, center=True)
    plain = run("salt", problem)
    fitted = torch.ones(problem.n_target, dtype=torch.bool)
    fitted[problem.shared_target] = False
    fitted[rare_ids] = False
    assert not torch.allclose(centred.input[fitted], plain.input[fitted])
    # Shift all source rows by a constant: centred SALT rows shift by exactly that constant.
    shift = torch.full((16,), 3.0)
    moved = make_problem(seed=21)[0]
    moved.source_in = type(moved.source_in)(
        RowMatrix.from_tensor(source + shift, "source"), moved.shared_source
    )
    shifted = run("salt", moved, center=True)
    torch.testing.assert_close(shifted.input[fitted], centred.input[fitted] + shift, rtol=1e-4, atol=1e-4)


def test_fit_reports_whether_new_rows_keep_the_mean_direction():
    from salt_transfer.fit import _mean_direction

    g = torch.Generator().manual_seed(0)
    mean = torch.full((16,), 2.0)
    shared = mean + 0.1 * torch.randn(50, 16, generator=g)
    kept = _mean_direction(
        torch.cat([shared, mean + 0.1 * torch.randn(30, 16, generator=g)]),
        torch.arange(50),
        torch.arange(50, 80),
    )
    lost = _mean_direction(
        torch.cat([shared, 0.1 * torch.randn(30, 16, generator=g)]), torch.arange(50), torch.arange(50, 80)
    )
    assert kept["ratio"] == pytest.approx(1.0, abs=0.05) and "note" not in kept
    assert abs(lost["ratio"]) < 0.1 and "mean direction" in lost["note"]
