"""What the suite offers, in one place: transfer methods (name, inputs, paper, options) and demo tasks.

Read by the method registry (`salt_transfer.methods`, which attaches each method's code), by the
command line (`--method` choices, `salt-transfer methods`) and by the workflow (`rules/common.smk`:
what a fit job needs as input, which config options are valid, which demo tasks exist). It imports
nothing heavy (no torch), so the workflow and `--help` stay fast.

Methods in the workflow config are entries of `methods:`; the key names the cell (a results folder)
and is either a registered method or a *variant* naming one with `method:`, e.g.
    methods:
      salt: {}                                         # paper-exact SALT
      salt-capped: {method: salt, norm_cap: 1.0}       # SALT with a norm cap (not the paper)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError
from .options import check_fields, from_mapping, opt

# ----------------------------------------------------------------------------------------------
# Options of each method (defaults live here and only here)


class _Checked:
    """Options whose allowed values and lower bounds are checked however they are built."""

    def __post_init__(self):
        check_fields(self)


# Similarity chunks (float32 rows x shared tokens, MiB): small enough to stay in the L3 cache
# between the product and the passes over it (bench/RESULTS.md, multilingual section).
CHUNK_MB = 8
CHUNK_HELP = "similarity chunk size in MiB (8 stays in a 32 MiB L3 cache)"


@dataclass(frozen=True)
class SaltOptions(_Checked):
    k_init: int = opt(
        128, help="initial top-K window of the exact sparsemax (grown per row when too small)", minimum=1
    )
    chunk_mb: int = opt(CHUNK_MB, help=CHUNK_HELP, minimum=1)
    center: bool = opt(
        False, help="NOT THE PAPER: fit on mean-centred PLM and LLM rows and add the LLM mean back"
    )
    pinv_rtol: float = opt(
        0.0,
        help="NOT THE PAPER: pinv cut-off, drop singular values of a support below RTOL x the largest "
        "(0: torch's default, max(k, ht) x machine epsilon, which eq. 3 implies)",
        minimum=0.0,
    )
    ridge: float = opt(
        0.0,
        help="NOT THE PAPER: ridge term; solve (A A^T + RIDGE x mean squared row norm x I) instead of "
        "the pseudo-inverse (0: off)",
        minimum=0.0,
    )
    norm_cap: float = opt(
        0.0,
        help="NOT THE PAPER: rescale every new row longer than NORM_CAP x the NORM_CAP_QUANTILE "
        "quantile of the shared rows' norms down to that length (0: off)",
        minimum=0.0,
    )
    norm_cap_quantile: float = opt(
        0.99, help="quantile of shared-row norms the norm cap is relative to", minimum=0.0
    )


@dataclass(frozen=True)
class FocusOptions(_Checked):
    k_init: int = opt(128, help="initial top-K window of the exact sparsemax", minimum=1)
    chunk_mb: int = opt(CHUNK_MB, help=CHUNK_HELP, minimum=1)


@dataclass(frozen=True)
class OfaOptions(_Checked):
    neighbors: int = opt(10, help="top-k neighbours (OFA's default)", minimum=1)
    temperature: float = opt(0.1, help="softmax temperature on cosine similarities (OFA's default)")
    rank: int = opt(0, help="OFA factorization rank (e.g. 100, 200, 400); 0 keeps full rank", minimum=0)
    chunk_mb: int = opt(CHUNK_MB, help=CHUNK_HELP, minimum=1)


@dataclass(frozen=True)
class OmpOptions(_Checked):
    k: int = opt(64, help="anchors per new token (mergekit's recommended 64)", minimum=1)


@dataclass(frozen=True)
class MultivariateOptions(_Checked):
    cov_scale: float = opt(1e-5, help="scale on the covariance (Hewitt's 1e-5)", minimum=0.0)
    copy_shared: bool = opt(True, help="shared tokens copy their source row")


@dataclass(frozen=True)
class ProcrustesOptions(_Checked):
    kind: str = opt("orthogonal", help="ols (least-squares map) or orthogonal", choices=("ols", "orthogonal"))
    copy_shared: bool = opt(True, help="shared tokens copy their source row")


@dataclass(frozen=True)
class RandomOptions(_Checked):
    copy_shared: bool = opt(True, help="shared tokens copy their source row")


@dataclass(frozen=True)
class MeanOptions(_Checked):
    copy_shared: bool = opt(True, help="shared tokens copy their source row")


# ----------------------------------------------------------------------------------------------
# Methods


@dataclass(frozen=True)
class MethodInfo:
    name: str
    needs: frozenset[str]  # subset of {"aux", "plm"}: what a fit reads besides the source LLM and overlap
    reference: str  # the paper the method comes from
    options: type
    summary: str  # one line: what the rows of new tokens are


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo(
            "salt",
            frozenset({"aux", "plm"}),
            "Lee et al., Findings ACL 2025 (arXiv 2505.10945)",
            SaltOptions,
            "e pinv(A) B over the sparsemax support, exactly (minimum-norm least squares)",
        ),
        MethodInfo(
            "focus",
            frozenset({"aux"}),
            "Dobler & de Melo, EMNLP 2023 (arXiv 2305.14481)",
            FocusOptions,
            "sparsemax-weighted convex combination of the support's LLM rows",
        ),
        MethodInfo(
            "ofa",
            frozenset({"aux"}),
            "Liu et al., NAACL Findings 2024 (arXiv 2311.08849)",
            OfaOptions,
            "softmax(cos/0.1)-weighted average of the top-10; optional rank-r factorization",
        ),
        MethodInfo(
            "omp",
            frozenset({"plm"}),
            "Goddard & Neto 2025 (arXiv 2506.06607); mergekit-tokensurgeon's default",
            OmpOptions,
            "k anchors picked by orthogonal matching pursuit in the PLM space, least-squares coefficients applied to their LLM rows",
        ),
        MethodInfo(
            "multivariate",
            frozenset(),
            "Hewitt 2021 (blog: vocab-expansion)",
            MultivariateOptions,
            "samples of N(mu, 1e-5 Sigma) of the source rows",
        ),
        MethodInfo(
            "procrustes",
            frozenset({"plm"}),
            "Conneau, Wu et al., ACL 2020 (arXiv 1911.01464), §5",
            ProcrustesOptions,
            "one global PLM-to-LLM map (orthogonal or OLS) fitted on shared tokens",
        ),
        MethodInfo(
            "random",
            frozenset(),
            "Dobler & de Melo 2023 / SALT Step 1 fallback",
            RandomOptions,
            "N(mean, std) of the source rows, per dimension",
        ),
        MethodInfo(
            "mean",
            frozenset(),
            "Hewitt 2021 (blog: vocab-expansion)",
            MeanOptions,
            "the mean of the source rows",
        ),
    )
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def method_info(name: str) -> MethodInfo:
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; registered: {', '.join(sorted(METHODS))}")
    return METHODS[name]


@dataclass(frozen=True)
class MethodEntry:
    """One `methods:` entry of the workflow config: a cell name, the method it runs, its options."""

    name: str
    method: str
    options: dict[str, Any]

    @property
    def info(self) -> MethodInfo:
        return METHODS[self.method]


def method_entries(config_methods: Mapping[str, Any]) -> dict[str, MethodEntry]:
    """The config's `methods:` mapping, each entry checked: the method exists, every option is one of
    its options with a value of the right type. InputError names the entry and the bad key."""
    out = {}
    for name, spec in config_methods.items():
        spec = dict(spec or {})
        if not _NAME.fullmatch(name):
            raise InputError(
                f"methods.{name}: use letters, digits, '.', '_' or '-' (it becomes a path component)"
            )
        method = spec.pop("method", name)
        if method not in METHODS:
            hint = " (name a registered method with `method:` for a variant)" if "method" not in spec else ""
            raise InputError(
                f"methods.{name}: unknown method {method!r}{hint}; registered: {', '.join(sorted(METHODS))}"
            )
        checked = from_mapping(METHODS[method].options, spec, label=f"methods.{name}")
        out[name] = MethodEntry(name, method, {k: getattr(checked, k) for k in spec})
    return out


# ----------------------------------------------------------------------------------------------
# Demo tasks (built from held-out parallel text by `salt-transfer build-tasks`)

# Result name (a file name in results/eval/...) -> lm-eval task name, `{lang}` the target language.
DEMO_TASKS: dict[str, str] = {
    "continuation": "salt_continuation_{lang}",
    "xling_en2tgt": "salt_xling_en2{lang}",
    "xling_tgt2en": "salt_xling_{lang}2en",
}


def demo_task_names(lang: str) -> dict[str, str]:
    """Result name -> lm-eval task name of the demo tasks for one language."""
    return {name: task.format(lang=lang) for name, task in DEMO_TASKS.items()}
