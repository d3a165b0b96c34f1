"""Mean: every new row is the mean of the source rows (Hewitt 2021's recommended default).

Averaging bounds the KL divergence between the model before and after the vocabulary change
(Hewitt, "Initializing New Word Embeddings for Pretrained Language Models", 2021). Shared tokens copy
their source row unless `copy_shared` is off.
"""

from __future__ import annotations

import torch

from ..catalog import MeanOptions
from .base import MethodResult, TransferProblem, register


@register("mean")
def fit(problem: TransferProblem, opts: MeanOptions) -> MethodResult:
    ids = problem.new_ids if opts.copy_shared else torch.arange(problem.n_target)
    rows_in = problem.source_in.mean.to(problem.dtype).expand(len(ids), -1)
    rows_out = None
    if problem.source_out is not None:
        rows_out = problem.source_out.mean.to(problem.dtype).expand(len(ids), -1)
    return problem.assemble(
        ids, rows_in, rows_out, torch.empty(0, dtype=torch.long), copy_shared=opts.copy_shared
    )
