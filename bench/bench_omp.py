"""OMP (k = 64) against mergekit-tokensurgeon's, on the bench's 32k-target / 128k-source inputs.

    bash bench/setup.sh && bash bench/setup_mergekit.sh    # mergekit in its own venv (bench/work/mergekit-venv)
    .venv/bin/python bench/bench_omp.py                     # writes the "omp" section of bench/RESULTS.md

Inputs: bench_fit.py's (target: a 32,000-entry byte-level BPE trained on real Spanish, PLM rows random
at ht = 768; source: the real Llama-3 tokenizer, 128,256 ids, random rows at hs = 2048), made into two
complete tiny Hugging Face models because mergekit reads whole models: a one-layer Llama (the base)
and a one-layer GPT-2 (the donor). mergekit 0.1.5 is installed in a separate venv and only called
(its CLI, and its `batch_omp` function as a package); none of its code is in this repository.

Measured, each in a fresh process, one run each, on the same machine in the same run:
  1. whole commands: `salt-transfer transfer --method omp` (overlap, fit, transplant; a loadable model)
     against `mergekit-tokensurgeon BASE DONOR OUT -a omp -k 64` (its own vocabulary matching, OMP,
     writing the model). Wall time and peak RSS.
  2. the same OMP problem given to both implementations (our new tokens as targets, our shared tokens'
     PLM rows as atoms): the share of tokens for which both pick the same set of 64 anchors, and on
     those tokens the largest relative difference of the rows (coefficients applied to the source
     rows), max |ours - theirs| / max |theirs| per token.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work" / "omp"
MERGEKIT = ROOT / "work" / "mergekit-venv" / "bin"
K = 64
THREADS = 2
HS = 2048
SAMPLE = 2000  # new tokens given to both OMP implementations in the same-problem comparison

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "src"))
import bench_fit  # noqa: E402
from results_md import write_section  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run a command; wall time and its peak RSS (GNU time's maximum resident set size)."""
    t = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS %M", *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    rss = next(int(ln.split()[1]) for ln in proc.stderr.splitlines() if ln.startswith("MAXRSS"))
    return {"wall_s": wall, "peak_rss_mib": rss / 1024, "log": proc.stderr[-4000:]}


def full_models() -> tuple[Path, Path]:
    """Complete one-layer models holding bench_fit's matrices (mergekit needs every tensor)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    text = bench_fit.corpus()
    plm = bench_fit.target_plm(32000, text)
    llm = bench_fit.source_llm(bench_fit.WORK / "npm" / "llama3" / "package" / "models", "llama3", HS)
    base, donor = WORK / "base", WORK / "donor"
    if not (base / "model.safetensors").is_file():
        torch.manual_seed(0)
        rows = load_file(str(llm / "model.safetensors"))["model.embed_tokens.weight"]
        cfg = LlamaConfig.from_pretrained(llm)
        model = LlamaForCausalLM(cfg)
        with torch.no_grad():
            model.model.embed_tokens.weight.copy_(rows)
        model.save_pretrained(base)
        AutoTokenizer.from_pretrained(llm).save_pretrained(base)
    if not (donor / "model.safetensors").is_file():
        torch.manual_seed(1)
        rows = load_file(str(plm / "model.safetensors"))["transformer.wte.weight"]
        cfg = GPT2Config.from_pretrained(plm)
        cfg.n_layer = 1
        model = GPT2LMHeadModel(cfg)
        with torch.no_grad():
            model.transformer.wte.weight.copy_(rows)
        model.save_pretrained(donor)
        AutoTokenizer.from_pretrained(plm).save_pretrained(donor)
    return base, donor


def whole_commands(base: Path, donor: Path) -> dict:
    ours_out, theirs_out = WORK / "ours", WORK / "mergekit"
    for path in (ours_out, ours_out.with_name("ours.work"), theirs_out):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    env = {"PYTHONPATH": str(ROOT.parent / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(THREADS)}
    log("salt-transfer transfer --method omp")
    ours = timed(
        [
            sys.executable,
            "-m",
            "salt_transfer",
            "transfer",
            "--no-progress",
            "--threads",
            str(THREADS),
            "--source",
            str(base),
            "--plm",
            str(donor),
            "--method",
            "omp",
            "--out",
            str(ours_out),
            "--device",
            "cpu",
        ],
        env,
    )
    fit = json.loads((ours_out.with_name("ours.work") / "fit.json").read_text())
    log(f"ours {ours['wall_s']:.1f} s; mergekit-tokensurgeon")
    theirs = timed(
        [
            str(MERGEKIT / "mergekit-tokensurgeon"),
            str(base),
            str(donor),
            str(theirs_out),
            "-a",
            "omp",
            "-k",
            str(K),
            "--device",
            "cpu",
            "--quiet",
        ],
        {"OMP_NUM_THREADS": str(THREADS), "HF_HUB_OFFLINE": "1"},
    )
    log(f"mergekit {theirs['wall_s']:.1f} s")
    return {"ours": {**ours, "fit": fit}, "mergekit": theirs}


def same_problem(base: Path, donor: Path) -> dict:
    """Both implementations' OMP on identical targets and atoms (ours: the library function)."""
    from salt_transfer.methods.omp import omp_coefficients
    from salt_transfer.tokens import read_overlap
    from salt_transfer.weights import RowMatrix

    overlap = WORK / "ours.work" / "overlap.parquet"
    table, sizes = read_overlap(overlap)
    shared_t = torch.tensor(table["target_id"].to_numpy())
    shared_s = torch.tensor(table["source_id"].to_numpy())
    is_shared = torch.zeros(sizes["n_target"], dtype=torch.bool)
    is_shared[shared_t] = True
    new = (~is_shared).nonzero().squeeze(1)
    # A seeded sample of the new tokens: both implementations' OMP on all of them takes as long as
    # the whole commands again, and agreement is a per-token property.
    new = new[torch.randperm(len(new), generator=torch.Generator().manual_seed(0))[:SAMPLE]].sort().values
    donor_rows = RowMatrix(donor / "model.safetensors", "transformer.wte.weight").full().float()
    source_rows = RowMatrix(base / "model.safetensors", "model.embed_tokens.weight").rows(shared_s).float()
    targets, atoms = donor_rows[new], donor_rows[shared_t]
    problem = WORK / "problem.pt"
    torch.save({"targets": targets, "atoms": atoms}, problem)
    torch.set_num_threads(THREADS)
    t = time.perf_counter()
    ours = omp_coefficients(targets, atoms, K)
    ours_s = time.perf_counter() - t
    script = (
        "import sys, time, torch; from mergekit.tokensurgeon.omp import batch_omp; "
        f"torch.set_num_threads({THREADS}); p = torch.load(sys.argv[1]); idx, coef = [], []; t = time.perf_counter()\n"
        "for i in range(0, len(p['targets']), 512):\n"
        f"    a, c = batch_omp(p['targets'][i:i + 512], p['atoms'], {K}); idx.append(a); coef.append(c)\n"
        "torch.save({'indices': torch.cat(idx), 'coeffs': torch.cat(coef), 'seconds': time.perf_counter() - t}, sys.argv[2])"
    )
    theirs_file = WORK / "mergekit_omp.pt"
    subprocess.run([str(MERGEKIT / "python"), "-c", script, str(problem), str(theirs_file)], check=True)
    theirs = torch.load(theirs_file)
    same, worst = 0, 0.0
    for i in range(len(new)):
        lo, hi = int(ours.indptr[i]), int(ours.indptr[i + 1])
        mine = ours.indices[lo:hi]
        if set(mine.tolist()) != set(theirs["indices"][i].tolist()):
            continue
        same += 1
        row_ours = ours.values[lo:hi].float() @ source_rows[mine]
        row_theirs = theirs["coeffs"][i].float() @ source_rows[theirs["indices"][i]]
        worst = max(worst, float((row_ours - row_theirs).abs().max() / row_theirs.abs().max()))
    return {
        "tokens": len(new),
        "atoms": len(shared_t),
        "same_anchors": same,
        "max_rel_diff": worst,
        "ours_s": ours_s,
        "mergekit_s": float(theirs["seconds"]),
    }


def mergekit_version() -> str:
    out = subprocess.run([str(MERGEKIT / "pip"), "show", "mergekit"], capture_output=True, text=True).stdout
    return next((ln.split()[1] for ln in out.splitlines() if ln.startswith("Version:")), "?")


def main() -> None:
    if not (MERGEKIT / "mergekit-tokensurgeon").exists():
        sys.exit("mergekit is not installed: bash bench/setup_mergekit.sh")
    WORK.mkdir(parents=True, exist_ok=True)
    base, donor = full_models()
    whole = whole_commands(base, donor)
    algo = same_problem(base, donor)
    r = {"whole": whole, "algo": algo, "mergekit": mergekit_version(), "when": time.strftime("%Y-%m-%d")}
    (WORK / "results.json").write_text(json.dumps(r, indent=2, default=str))
    o, m = whole["ours"], whole["mergekit"]
    ratio = m["wall_s"] / o["wall_s"]
    text = "\n".join(
        [
            "## OMP against mergekit-tokensurgeon (`bench/bench_omp.py`)",
            "",
            f"Run on {r['when']}: {os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, "
            f"{THREADS} threads, no GPU; mergekit {r['mergekit']} in its own venv, called as a CLI and a package. "
            f"Inputs: bench_fit.py's 32,000-entry Spanish BPE (PLM rows random, ht = 768) and the Llama-3 "
            f"tokenizer (128,256 ids, rows random, hs = {HS}), as complete one-layer models. k = {K}. One run each.",
            "",
            "| whole command | wall (s) | peak RSS (MiB) |",
            "|---|---|---|",
            f"| `salt-transfer transfer --method omp` (overlap, fit, transplant) | {o['wall_s']:.1f} | {o['peak_rss_mib']:.0f} |",
            f"| `mergekit-tokensurgeon BASE DONOR OUT -a omp -k {K}` | {m['wall_s']:.1f} | {m['peak_rss_mib']:.0f} |",
            "",
            f"Speed-up, whole command: **{ratio:.1f}x** (target >= 5x). Our fit: {o['fit']['n_fitted']:,} tokens "
            f"fitted against {o['fit']['n_candidates']:,} shared tokens, OMP {o['fit']['phases']['omp_s']:.1f} s.",
            "",
            f"Same problem to both OMP implementations ({algo['tokens']:,} new tokens, a seeded sample; "
            f"{algo['atoms']:,} atoms; "
            f"ours {algo['ours_s']:.1f} s, mergekit's `batch_omp` {algo['mergekit_s']:.1f} s in batches of 512): "
            f"**{algo['same_anchors']:,} of {algo['tokens']:,}** tokens "
            f"({100 * algo['same_anchors'] / max(1, algo['tokens']):.1f}%) get the same set of {K} anchors; on those, "
            f"the largest relative difference of the rows is **{algo['max_rel_diff']:.1e}** (float64 against "
            "float32 least squares). Rows of tokens whose anchor sets differ are not compared: once one "
            "greedy choice differs, the two pursuits continue from different residuals.",
        ]
    )
    print(text)
    write_section(ROOT / "RESULTS.md", "omp", text)


if __name__ == "__main__":
    main()
