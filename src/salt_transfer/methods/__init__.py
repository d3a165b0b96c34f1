"""Transfer methods, registered by name.

    from salt_transfer.methods import REGISTRY, get_method
    spec = get_method("salt"); result = spec.fit(problem, spec.options())

Each module's docstring cites its paper and says where the implementation departs from it;
`salt-transfer methods` prints them.
"""

from ..errors import InputError
from . import focus, mean, multivariate, ofa, omp, procrustes, random_init, salt  # noqa: F401  (registers)
from .base import REGISTRY, MethodResult, MethodSpec, SourceRows, TransferProblem

__all__ = ["REGISTRY", "MethodResult", "MethodSpec", "SourceRows", "TransferProblem", "get_method"]


def get_method(name: str) -> MethodSpec:
    if name not in REGISTRY:
        raise InputError(f"unknown method {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]
