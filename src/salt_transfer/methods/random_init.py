"""Random: every new row from N(mean, std) of the source rows, per dimension.

The fallback SALT (paper Step 1) and FOCUS use for rare tokens, applied to all new tokens: the
lower bound of what an informed initialization must beat. Shared tokens copy their source row
unless `copy_shared` is off. Seeded CPU generator, device-independent.
"""

from __future__ import annotations

import torch

from ..catalog import RandomOptions
from .base import MethodResult, TransferProblem, register


@register("random")
def fit(problem: TransferProblem, opts: RandomOptions) -> MethodResult:
    ids = problem.new_ids if opts.copy_shared else torch.arange(problem.n_target)
    empty = torch.empty(0, problem.hidden)
    return problem.assemble(
        torch.empty(0, dtype=torch.long),
        empty,
        empty if problem.source_out else None,
        ids,
        copy_shared=opts.copy_shared,
    )
