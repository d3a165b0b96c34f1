"""Multivariate: new rows sampled from N(mu, scale * Sigma) of the source rows (Hewitt 2021).

John Hewitt, "Initializing New Word Embeddings for Pretrained Language Models" (2021,
nlp.stanford.edu/~johnhew/vocab-expansion.html). His reference code samples from
MultivariateNormal(mu, covariance_matrix=1e-5 * sigma) with sigma the biased (1/n) covariance of the
existing rows; the small scale keeps new rows near the mean so their logits do not dominate the
softmax. `cov_scale` defaults to that 1e-5. The SALT paper's "Multivariate" baseline gives no scale
(docs/paper.md, section 2): this default is Hewitt's, not a number from the SALT paper.

Shared tokens copy their source row (`copy_shared`, default on, as for the other baselines); every
other target token is sampled. Sampling uses a seeded CPU generator, so output does not depend on
the device. Untied heads are sampled from their own N(mu, scale * Sigma).
"""

from __future__ import annotations

import torch

from ..catalog import MultivariateOptions
from .base import MethodResult, SourceRows, TransferProblem, register


def covariance_factor(cov: torch.Tensor) -> torch.Tensor:
    """L with L L^T = cov (float64). Cholesky, with jitter or an eigen-square-root when singular."""
    scale = float(cov.diagonal().mean()) or 1.0
    for jitter in (0.0, 1e-10, 1e-8, 1e-6):
        chol, info = torch.linalg.cholesky_ex(cov + jitter * scale * torch.eye(len(cov), dtype=cov.dtype))
        if int(info) == 0:
            return chol
    lam, vecs = torch.linalg.eigh(cov)
    return vecs * lam.clamp(min=0).sqrt()


def sample_rows(
    source: SourceRows,
    n: int,
    cov_scale: float,
    generator: torch.Generator,
    dtype: torch.dtype,
    block: int = 4096,
) -> torch.Tensor:
    factor = covariance_factor(cov_scale * source.second_moment(centered=True))
    out = torch.empty(n, source.dim, dtype=dtype)
    for start in range(0, n, block):
        z = torch.randn(min(block, n - start), source.dim, generator=generator, dtype=torch.float64)
        out[start : start + len(z)] = (source.mean + z @ factor.T).to(dtype)
    return out


@register("multivariate")
def fit(problem: TransferProblem, opts: MultivariateOptions) -> MethodResult:
    ids = problem.new_ids if opts.copy_shared else torch.arange(problem.n_target)
    rows_in = sample_rows(problem.source_in, len(ids), opts.cov_scale, problem.generator(1), problem.dtype)
    rows_out = None
    if problem.source_out is not None:
        rows_out = sample_rows(
            problem.source_out, len(ids), opts.cov_scale, problem.generator(2), problem.dtype
        )
    return problem.assemble(
        ids,
        rows_in,
        rows_out,
        torch.empty(0, dtype=torch.long),
        copy_shared=opts.copy_shared,
        info={"cov_scale": opts.cov_scale},
    )
