"""One call for a user who wants a transferred model, not the grid: overlap -> auxiliary vectors -> fit ->
transplant in one process.

    salt-transfer transfer --source data/models/smollm2 --plm results/plm/es-e5/model \\
        --corpus data/corpora/es/train.txt --method salt --out es-smollm2

    >>> from salt_transfer import transfer
    >>> record = transfer("data/models/smollm2", "results/plm/es-e5/model", "es-smollm2",
    ...                   corpus="data/corpora/es/train.txt", method="salt")
    >>> record["model"]
    'es-smollm2'

It calls the same library functions as the workflow's rules (`tokens.overlap_files`,
`fasttext_vectors.train_token_fasttext`, `fit.fit_embeddings`, `transplant.transplant`), so for the
same inputs, options and seed it writes the same bytes: the intermediate artifacts (overlap.parquet,
fasttext.bin, embeddings.safetensors, each with its sidecar) go to `work_dir` (default `OUT.work/`),
the loadable Hugging Face directory to `out`, with its sidecar and model card. The workflow keeps one job
per phase; this command saves the process starts when only one model is wanted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .errors import InputError
from .provenance import check_output
from .settings import FastTextOptions

LOG = logging.getLogger(__name__)


def transfer(
    source: str | Path,
    plm: str | Path,
    out: str | Path,
    *,
    corpus: str | Path | None = None,
    fasttext: str | Path | None = None,
    method: str = "salt",
    options: dict[str, Any] | None = None,
    work_dir: str | Path | None = None,
    fasttext_options: FastTextOptions | None = None,
    fuzzy: bool = False,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "float32",
    save_dtype: str = "auto",
    card: dict[str, str | None] | None = None,
    progress: bool = True,
    config_hash: str | None = None,
) -> dict[str, Any]:
    """Transfer the source LLM in `source` to the vocabulary of the PLM in `plm` with `method`; write
    the model to `out`. Auxiliary vectors (methods that need them) come from `fasttext` (a pretrained
    .bin, looked up by word, or one `salt-transfer fasttext` wrote, looked up by token) or are trained
    on `corpus`. Returns {"model", "work_dir", "overlap", "aux", "embeddings", "fit", "transplant"}."""
    from .catalog import method_info
    from .fasttext_vectors import train_token_fasttext
    from .fit import fit_embeddings
    from .tokens import overlap_files
    from .transplant import transplant as transplant_model

    info = method_info(method)
    out = check_output(out, directory=True)
    work = Path(work_dir) if work_dir else out.with_name(out.name + ".work")
    if "aux" in info.needs and not (corpus or fasttext):
        raise InputError(f"method {method} needs auxiliary vectors: give --corpus TEXT or --fasttext BIN")
    if corpus and fasttext:
        raise InputError("give --corpus or --fasttext, not both")
    paths = {
        "overlap": work / "overlap.parquet",
        "stats": work / "stats.json",
        "aux": Path(fasttext) if fasttext else work / "fasttext.bin",
        "embeddings": work / "embeddings.safetensors",
        "fit": work / "fit.json",
    }
    for key in ("overlap", "stats", "embeddings", "fit") + (() if fasttext else ("aux",)):
        check_output(paths[key], label="--work-dir")

    LOG.info("overlap of %s and %s", plm, source)
    overlap_files(plm, source, paths["overlap"], paths["stats"], fuzzy=fuzzy, config_hash=config_hash)
    aux = None
    if "aux" in info.needs:
        if fasttext is None:
            LOG.info("training token-level fastText on %s", corpus)
            train_token_fasttext(corpus, plm, paths["aux"], fasttext_options, config_hash=config_hash)
        aux = paths["aux"]
    LOG.info("fitting %s", method)
    fit_record = fit_embeddings(
        method,
        source,
        paths["overlap"],
        paths["embeddings"],
        paths["fit"],
        plm=plm,
        target_tokenizer=plm,
        aux=aux,
        options=options,
        seed=seed,
        device=device,
        dtype=dtype,
        progress=progress,
        config_hash=config_hash,
    )
    LOG.info("transplanting into %s", out)
    record = transplant_model(
        source, plm, paths["embeddings"], out, save_dtype=save_dtype, config_hash=config_hash, card=card
    )
    return {
        "model": str(out),
        "work_dir": str(work),
        "overlap": str(paths["overlap"]),
        "aux": None if aux is None else str(aux),
        "embeddings": str(paths["embeddings"]),
        "fit": fit_record,
        "transplant": record,
    }
