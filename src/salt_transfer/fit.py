"""Fit target-vocabulary embeddings with a registered method and write them with a report.

Usage:
    salt-transfer fit --method salt --source-model data/models/smollm2 --plm data/models/plm-es \
        --overlap results/overlap/smollm2/plm-es/overlap.parquet --aux results/aux/es/plm-es/fasttext.bin \
        --out results/fit/smollm2/plm-es/salt/embeddings.safetensors --report results/fit/smollm2/plm-es/salt/fit.json

Output: `embeddings.safetensors` with `input` [|Vt|, hs] (and `output` [|Vt|, hs] when the source LM
head is untied), in the source model's stored embedding space; `fit.json` with counts, the
support-size distribution, rare tokens, timings, device and seed; and the provenance sidecar
`embeddings.safetensors.meta.json`. Same seed and inputs give byte-identical safetensors.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from .errors import InputError
from .fasttext_vectors import load_fasttext, token_vectors
from .methods import SourceRows, TransferProblem, get_method
from .options import from_mapping
from .provenance import Meta, atomic_path, check_output, meta_path, prefetch_digests, write_json_atomic
from .tokens import canonical_forms, check_made_for, load_tokenizer, read_overlap, render, vocab_size
from .weights import RowMatrix, embedding_layout, resolve_device, write_safetensors

LOG = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _aux_lookup(aux_path: Path, explicit: str | None) -> str:
    """Token lookup for models trained by `salt-transfer aux` (their sidecar says so), else word."""
    if explicit:
        return explicit
    sidecar = meta_path(aux_path)
    if sidecar.is_file():
        return json.loads(sidecar.read_text()).get("params", {}).get("lookup", "word")
    return "word"


def _norm_summary(norms: torch.Tensor) -> dict[str, float] | None:
    if len(norms) == 0:
        return None
    q = torch.quantile(norms, torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64)).tolist()
    return {"mean": float(norms.mean()), "p50": q[0], "p90": q[1], "p99": q[2], "max": float(norms.max())}


def _check_finite(rows: torch.Tensor, label: str) -> None:
    if bool(torch.isfinite(rows.sum(dim=1)).all()):  # cheap: any NaN/Inf makes its row sum non-finite
        return
    bad = ~torch.isfinite(rows).all(dim=1)
    if bad.any():
        raise InputError(f"{label}: row {int(bad.nonzero()[0])} is not finite (NaN or Inf)")


def _plm_matrix(plm, n_target: int) -> RowMatrix:
    """The PLM's input embedding, checked to cover the target vocabulary.

    Called on the main thread: when the checkpoint's key names are ambiguous, `embedding_layout`
    imports transformers, and transformers' lazy imports race when two threads make them at once
    ("cannot import name 'AutoTokenizer'" while the tokenizer loads beside it).
    """
    plm_matrix = embedding_layout(plm, causal_lm=False).input
    if plm_matrix.n_rows < n_target:
        raise InputError(
            f"{plm_matrix.label}: has {plm_matrix.n_rows} rows but the target vocabulary has {n_target} "
            "tokens; the overlap was computed with another tokenizer"
        )
    return plm_matrix


def _plm_rows(plm_matrix: RowMatrix, n_target: int, dtype: str) -> tuple[torch.Tensor, float]:
    """The PLM's rows of the target vocabulary, and the seconds reading them took."""
    t = time.perf_counter()
    rows = plm_matrix.block(0, n_target).to(DTYPES[dtype])
    _check_finite(rows, plm_matrix.label)
    return rows, time.perf_counter() - t


def _aux_vectors(method, plm, aux, aux_lookup, target_tokenizer, overlap, n_target, shared_target, timings):
    """The auxiliary vectors of every target token, the target tokens' canonical forms and up to 50
    rare new tokens, rendered."""
    t = time.perf_counter()
    tok_path = target_tokenizer or plm
    if tok_path is None:
        raise InputError(f"method {method} needs the target tokenizer: pass --target-tokenizer (or --plm)")
    tok = load_tokenizer(tok_path)
    if vocab_size(tok) != n_target:
        raise InputError(
            f"target tokenizer {tok_path} has {vocab_size(tok)} ids but {overlap} was computed for {n_target}"
        )
    lookup = _aux_lookup(Path(aux), aux_lookup)
    forms = canonical_forms(tok)
    aux_vectors = token_vectors(load_fasttext(aux), tok, lookup=lookup, forms=forms)
    rare_new = ~aux_vectors.usable
    rare_new[shared_target] = False
    rare_examples = [render(forms[i]) or f"<id {i}>" for i in rare_new.nonzero().squeeze(1)[:50].tolist()]
    timings["aux_vectors_s"] = time.perf_counter() - t
    return aux_vectors, forms, rare_examples


def fit_embeddings(
    method: str,
    source_model: str | Path,
    overlap: str | Path,
    out: str | Path,
    report: str | Path,
    *,
    plm: str | Path | None = None,
    target_tokenizer: str | Path | None = None,
    aux: str | Path | None = None,
    aux_lookup: str | None = None,
    options: dict[str, str] | None = None,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "float32",
    progress: bool = True,
    config_hash: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Run one method end to end from files; returns the report written to `report`.

    `options` are the method's options as strings or values (`--option key=value`); `name`, when
    given, is the config's name of this method variant, recorded in fit.json.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    spec = get_method(method)
    opts = from_mapping(spec.options, dict(options or {}), label=f"--option (method {method})")
    check_output(out)
    check_output(report, label="--report")
    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype}: choose one of {sorted(DTYPES)}")
    dev = resolve_device(device)
    if "plm" in spec.needs and plm is None:
        raise InputError(f"method {method} needs the PLM's embeddings: pass --plm DIR")
    if "aux" in spec.needs and aux is None:
        raise InputError(f"method {method} needs auxiliary vectors: pass --aux fasttext.bin")
    # The sidecar records the inputs' digests: start reading them now, beside the set-up.
    prefetch_digests([source_model, overlap, plm, aux, target_tokenizer])
    table, sizes = read_overlap(overlap)
    tok_path = target_tokenizer or plm
    n_target, n_source = int(sizes["n_target"]), int(sizes["n_source"])
    shared_target = torch.tensor(table["target_id"].to_numpy(), dtype=torch.long)
    shared_source = torch.tensor(table["source_id"].to_numpy(), dtype=torch.long)

    layout = embedding_layout(source_model, causal_lm=True)

    def load_source() -> tuple[SourceRows, SourceRows | None, float]:
        # Statistics cover the rows of tokens the source tokenizer has, not padding rows beyond them.
        t = time.perf_counter()
        rows_in = SourceRows(layout.input.first(n_source), shared_source, DTYPES[dtype])
        rows_out = None
        if layout.output is not None:
            rows_out = SourceRows(layout.output.first(n_source), shared_source, DTYPES[dtype])
        return rows_in, rows_out, time.perf_counter() - t

    # The source matrix is read and summarized, and the PLM's rows read (torch and file reads, off
    # the GIL), while this thread builds the auxiliary vectors (mostly Python): 2.6 s, 1.1 s and
    # 5.5 s for a 2 GB source, e5's 250k x 384 rows and the XLM-R tokenizer, once one after the other.
    plm_matrix = _plm_matrix(plm, n_target) if "plm" in spec.needs else None
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="load")
    loading = pool.submit(load_source)
    reading_plm = pool.submit(_plm_rows, plm_matrix, n_target, dtype) if plm_matrix is not None else None
    try:
        aux_vectors, forms, rare_examples = None, None, []
        if "aux" in spec.needs:
            try:
                aux_vectors, forms, rare_examples = _aux_vectors(
                    method, plm, aux, aux_lookup, target_tokenizer, overlap, n_target, shared_target, timings
                )
            except InputError:
                if reading_plm is not None:
                    reading_plm.result()  # a PLM that does not fit is the first thing to name
                raise
        plm_rows = None
        if reading_plm is not None:
            plm_rows, timings["load_plm_s"] = reading_plm.result()
        source_in, source_out, timings["load_source_s"] = loading.result()
    finally:
        for job in (loading, reading_plm):
            if job is not None:
                job.cancel()
        pool.shutdown(wait=True)

    # Inputs made for other tokenizers but of the same sizes would pass every check above and be used
    # under the wrong ids: their sidecars say what they were made for.
    if tok_path is not None:
        check_made_for(overlap, "target_tokenizer", tok_path, "overlap")
    check_made_for(overlap, "source_tokenizer", source_model, "overlap")
    if aux is not None and tok_path is not None:
        check_made_for(aux, "tokenizer", tok_path, "fastText model")
    problem = TransferProblem(
        n_target=n_target,
        shared_target=shared_target,
        shared_source=shared_source,
        source_in=source_in,
        source_out=source_out,
        aux=aux_vectors,
        plm=plm_rows,
        seed=seed,
        device=dev,
        dtype=DTYPES[dtype],
        progress=progress,
    )
    t = time.perf_counter()
    result = spec.fit(problem, opts)
    timings["method_s"] = time.perf_counter() - t
    _check_finite(result.input, f"method {method} output (input rows)")
    tensors = {"input": result.input.contiguous()}
    if result.output is not None:
        _check_finite(result.output, f"method {method} output (output rows)")
        tensors["output"] = result.output.contiguous()
    # One metadata key holding sorted JSON: safetensors keeps metadata in a hash map whose order
    # varies between runs, and byte-identical output is part of the contract.
    header = {
        "salt_transfer": json.dumps(
            {"method": method, "seed": seed, "n_target": n_target, "tied": layout.tied}, sort_keys=True
        )
    }
    meta = Meta(
        command="fit",
        inputs={
            "source_model": source_model,
            "overlap": overlap,
            "plm": plm,
            "aux": aux,
            "target_tokenizer": target_tokenizer,
        },
        params={
            "method": method,
            "name": name or method,
            "report": str(report),
            "options": dataclasses.asdict(opts),
            "dtype": dtype,
            "aux_lookup": None if aux_vectors is None else aux_vectors.lookup,
        },
        seed=seed,
        device=str(dev),
        config_hash=config_hash,
    )

    def write_output() -> float:
        with atomic_path(out, meta) as tmp:
            write_safetensors(tmp, tensors, header)
        return time.perf_counter() - t0

    # The rows are written and hashed for the sidecar (0.9 s for 32k x 4096) while this thread
    # computes fit.json's summaries of them; fit.json is written after the rows have landed.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-rows")
    writing = writer.submit(write_output)
    try:
        norms = torch.linalg.vector_norm(result.input, dim=1).double()
        norms_new, norms_shared = norms[problem.new_ids], norms[shared_target]
        largest_shared = float(norms_shared.max()) if len(norms_shared) else None
        info = dict(result.info)
        if forms is not None:
            for row in info.get("largest_rows", []):
                row["token"] = render(forms[row["target_id"]]) or f"<id {row['target_id']}>"
        record = {
            "method": method,
            "name": name or method,
            "reference": spec.reference,
            "options": dataclasses.asdict(opts),
            "n_target": n_target,
            "n_source": n_source,
            "n_shared": len(shared_target),
            "n_new": len(problem.new_ids),
            "hidden_size": problem.source_in.dim,
            "plm_hidden_size": None if plm_rows is None else plm_rows.shape[1],
            "tied_head": layout.tied,
            "has_output_rows": result.output is not None,
            "aux_lookup": None if aux_vectors is None else aux_vectors.lookup,
            "rare_examples": rare_examples,
            **info,
            # Fitted rows far longer than the source's dominate every softmax they enter (tied heads).
            "row_norms": {
                "new": _norm_summary(norms_new),
                "shared": _norm_summary(norms_shared),
                "new_above_largest_shared": int((norms_new > largest_shared).sum()) if largest_shared else 0,
            },
            "mean_direction": _mean_direction(result.input, shared_target, problem.new_ids),
            "seed": seed,
            "device": str(dev),
            "dtype": dtype,
        }
        timings["total_s"] = writing.result()
    finally:
        writer.shutdown(wait=True)
    record["timings"] = {k: round(v, 3) for k, v in timings.items()}
    write_json_atomic(report, record)
    return record


def _mean_direction(rows: torch.Tensor, shared: torch.Tensor, new: torch.Tensor) -> dict | None:
    """How much of the shared rows' common (mean) direction the new rows keep.

    LLM embedding rows share a large mean component; with a tied head it sets a logit offset common
    to all tokens. Rows made as least-squares combinations whose coefficients sum to about zero lose
    it (seen with SALT and OMP on a weak stand-in PLM, whose rows have no such common direction to
    rebuild), and those tokens' logits then stand apart from the rest. `ratio` is the mean projection
    of new rows on the unit mean direction over that of the shared rows: about 1 keeps it, about 0
    loses it (mean-centring, the `center` option of salt, restores it)."""
    if len(shared) == 0 or len(new) == 0:
        return None
    # Mean of projections = projection of the mean, so two weighted row sums give both figures: one
    # pass over the rows in their own dtype (a float64 gather of the shared rows took 0.5 s at
    # 32k x 4096, and a float64 copy of the new rows would cost 0.5-1 GB at 250k x 576).
    weights = torch.zeros(2, rows.shape[0], dtype=rows.dtype, device=rows.device)
    weights[0, shared] = 1.0 / len(shared)
    weights[1, new] = 1.0 / len(new)
    means = (weights @ rows).double()
    mean = means[0]
    if float(mean.norm()) == 0:
        return None
    unit = mean / mean.norm()
    on_shared = float(mean @ unit)
    on_new = float(means[1] @ unit)
    ratio = on_new / on_shared if on_shared else None
    record = {
        "shared": round(on_shared, 4),
        "new": round(on_new, 4),
        "ratio": None if ratio is None else round(ratio, 4),
    }
    if ratio is not None and ratio < 0.5:
        record["note"] = (
            "new rows lost most of the shared rows' mean direction (coefficients summing near zero); "
            "with a tied head this shifts every new token's logit. Mean-centring (salt: center) keeps it."
        )
    return record
