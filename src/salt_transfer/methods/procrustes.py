"""Procrustes: one global linear map from PLM space to LLM space, fitted on the shared tokens.

The "simple linear mapping" between independently trained models of Conneau, Wu, Li, Zettlemoyer &
Stoyanov, "Emerging Cross-lingual Structure in Pretrained Language Models" (ACL 2020, §5; orthogonal
Procrustes W* = U V^T with U S V^T = SVD(Y X^T)), used here as the natural ablation of SALT: SALT
fits one least-squares map per token on its sparsemax neighbours, this fits a single map on all
shared tokens and applies it to every new token's PLM row.

Two variants (`kind`):
  * "ols": W = pinv(A) B, the least-squares map A W ~ B (A: PLM rows, B: LLM rows of shared tokens);
  * "orthogonal": W with orthonormal rows (ht <= hs) or columns (ht > hs), W = U V^T from the SVD of
    Ac^T Bc, between centred and globally rescaled spaces; new rows are mapped back to the LLM's
    centre and scale.
Departure: Conneau/Wu apply iterative normalization (unit length + centring, repeated) before the
map; its per-row length normalization cannot be inverted, and rows must come back at the LLM's
scale, so we centre and rescale globally (one scalar per space) instead. Untied heads get their own
map fitted on the shared head rows. Shared tokens copy their source row unless `copy_shared` is off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..catalog import ProcrustesOptions
from ..errors import InputError
from .base import MethodResult, TransferProblem, register

KINDS = ("ols", "orthogonal")


def fit_ols(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least-squares W [ht, hs] with a W ~ b (float64)."""
    return torch.linalg.pinv(a.to(torch.float64)) @ b.to(torch.float64)


def fit_orthogonal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Orthogonal Procrustes W = U V^T, U S V^T = SVD(a^T b): max trace(W^T a^T b) with W a partial isometry."""
    u, _, vh = torch.linalg.svd(a.to(torch.float64).T @ b.to(torch.float64), full_matrices=False)
    return u @ vh


@dataclass
class LinearMap:
    weight: torch.Tensor  # [ht, hs] float64
    src_mean: torch.Tensor
    src_scale: float
    dst_mean: torch.Tensor
    dst_scale: float

    def __call__(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        z = (x.to(torch.float64) - self.src_mean) / self.src_scale
        return ((z @ self.weight) * self.dst_scale + self.dst_mean).to(dtype)


def fit_map(a: torch.Tensor, b: torch.Tensor, kind: str) -> LinearMap:
    """Fit a PLM->LLM map on paired rows a [S, ht], b [S, hs]."""
    if kind not in KINDS:
        raise InputError(f"procrustes kind {kind!r}: choose one of {KINDS}")
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    if kind == "ols":
        zero_a, zero_b = (
            torch.zeros(a.shape[1], dtype=torch.float64),
            torch.zeros(b.shape[1], dtype=torch.float64),
        )
        return LinearMap(fit_ols(a64, b64), zero_a, 1.0, zero_b, 1.0)
    mu_a, mu_b = a64.mean(0), b64.mean(0)
    # Global scale: root mean squared row norm after centring (one scalar per space).
    s_a = float((a64 - mu_a).pow(2).sum(1).mean().sqrt()) or 1.0
    s_b = float((b64 - mu_b).pow(2).sum(1).mean().sqrt()) or 1.0
    w = fit_orthogonal((a64 - mu_a) / s_a, (b64 - mu_b) / s_b)
    return LinearMap(w, mu_a, s_a, mu_b, s_b)


@register("procrustes")
def fit(problem: TransferProblem, opts: ProcrustesOptions) -> MethodResult:
    if len(problem.shared_target) < 2:
        raise InputError("procrustes needs at least 2 shared tokens to fit a map")
    plm_shared = problem.plm[problem.shared_target]
    ids = problem.new_ids if opts.copy_shared else torch.arange(problem.n_target)
    mapping = fit_map(plm_shared, problem.source_in.shared, opts.kind)
    rows_in = mapping(problem.plm[ids], problem.dtype)
    rows_out = None
    if problem.source_out is not None:
        rows_out = fit_map(plm_shared, problem.source_out.shared, opts.kind)(problem.plm[ids], problem.dtype)
    residual = float(
        (mapping(plm_shared, torch.float64) - problem.source_in.shared.double()).norm()
        / problem.source_in.shared.double().norm()
    )
    return problem.assemble(
        ids,
        rows_in,
        rows_out,
        torch.empty(0, dtype=torch.long),
        copy_shared=opts.copy_shared,
        info={"kind": opts.kind, "relative_residual_on_shared": residual},
    )
