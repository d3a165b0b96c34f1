"""Language-adaptive continual pretraining (SALT Step 5): causal LM on target-language text.

Usage:
    salt-transfer train --model results/init/smollm2/es-bert/salt/model --train-file data/corpora/es/train.txt \
        --output-dir results/cpt/smollm2/es-bert/salt/model --log-csv results/cpt/smollm2/es-bert/salt/train_log.csv \
        --scratch-dir scratch/cpt/smollm2/es-bert/salt --max-steps 2000
    salt-transfer train ...   # on a node with 4 GPUs: reruns itself under torchrun, one process per GPU
    torchrun --standalone --nproc-per-node 4 -m salt_transfer train --launch none ...   # the same, by hand
    salt-transfer train --args-json train_args.json                          # arguments from a JSON file

Built on transformers' Trainer in the style of `run_clm.py`: the target text is tokenized with the
model's (target) tokenizer, documents are joined with the eos token and packed into blocks of
`--seq-len` tokens (the remainder is dropped, as run_clm's `group_texts` does). Held-out text is
never read here; evaluation is `salt-transfer evaluate`. How many processes train (one per GPU of
the node, counted from SLURM's environment when present) is decided by `salt_transfer.launch`.

Resumability: checkpoints (weights, optimizer, scheduler, RNG states, data position) go every
`--save-steps` to `--scratch-dir`, which is deliberately *not* a workflow output (Snakemake deletes
declared outputs before a job runs). A rerun resumes from the newest checkpoint there and ends
with the same step count and, on CPU with the same seed, the same weights as an uninterrupted run.
SIGTERM, SIGUSR1 and SIGURG (`CHECKPOINT_SIGNALS`: what Slurm sends at pre-emption or, when asked
with `--signal=<sig>@<seconds>`, before a time limit) save a checkpoint at the end of the current
step and exit with status 3 without writing the final model, so the scheduler or Snakemake's
--retries reruns the job and it resumes. profiles/slurm asks for URG: under Snakemake's Slurm
executor the signal reaches every process of the job step, and the snakemake and bash processes
between Slurm and the trainer die of USR1 (its default action) but ignore URG.

The paper's CPT hyper-parameters are unknown (paper-notes §2.4): every value here is a config knob.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import InputError
from .models import require_model_dir, resolve_device
from .provenance import atomic_dir, sha256_file, write_json_atomic, write_text_atomic

LOG = logging.getLogger(__name__)

PREEMPTED_EXIT = 3  # exit status after a pre-emption signal: a checkpoint exists, rerun to resume
# Signals that make training checkpoint and stop (module docstring: why URG).
CHECKPOINT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGURG)


@dataclass
class TrainArguments:
    """Continual-pretraining arguments (all also readable from a JSON file with --args-json)."""

    model: str = field(metadata={"help": "initial model directory (a transplanted model)"})
    train_file: str = field(metadata={"help": "target-language training text, one document per line"})
    output_dir: str = field(metadata={"help": "final model directory (written atomically at the end)"})
    scratch_dir: str = field(
        metadata={"help": "checkpoint directory; keep it outside workflow outputs so reruns resume"}
    )
    log_csv: str = field(metadata={"help": "train_log.csv: step, tokens seen, loss, lr, tokens/s"})
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "sequences per device per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    seq_len: int = field(default=512, metadata={"help": "tokens per packed training sequence"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(
        default="cosine",
        metadata={"help": "transformers scheduler name (cosine, linear, constant_with_warmup, ...)"},
    )
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    embeddings_only_steps: int = field(
        default=0,
        metadata={
            "help": "first phase: train only the embeddings (and untied LM head) for this many steps, then everything"
        },
    )
    save_steps: int = field(default=200, metadata={"help": "checkpoint every N steps"})
    logging_steps: int = field(default=10, metadata={"help": "log loss, lr and tokens/s every N steps"})
    seed: int = field(default=0, metadata={"help": "seed of data order, dropout and initial RNG state"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present), cpu or cuda"})
    precision: str = field(
        default="auto", metadata={"help": "auto (bf16 on a GPU that supports it, else fp32), bf16 or fp32"}
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in backward to save memory"}
    )
    max_train_tokens: int = field(
        default=0, metadata={"help": "read at most this many tokens of the train file (0: all)"}
    )
    save_dtype: str = field(
        default="auto", metadata={"help": "dtype of the saved model: auto (as loaded), float32 or bfloat16"}
    )

    def __post_init__(self):
        if self.max_steps <= 0 or self.batch_size <= 0 or self.grad_accum <= 0 or self.seq_len < 2:
            raise InputError("max_steps, batch_size and grad_accum must be positive and seq_len >= 2")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise InputError(f"precision {self.precision!r}: choose auto, bf16 or fp32")
        if self.save_dtype not in ("auto", "float32", "bfloat16"):
            raise InputError(f"save_dtype {self.save_dtype!r}: choose auto, float32 or bfloat16")
        if not 0 <= self.embeddings_only_steps <= self.max_steps:
            raise InputError("embeddings_only_steps must be between 0 and max_steps")


class PackedBlocks(torch.utils.data.Dataset):
    """Fixed-length blocks of a token stream; labels are the inputs (the model shifts them)."""

    def __init__(self, blocks: torch.Tensor):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


def pack_text(
    tokenizer, path: str | Path, seq_len: int, max_tokens: int = 0, batch_lines: int = 2048
) -> torch.Tensor:
    """Tokenize `path` line by line, join documents with eos, cut into [n, seq_len] blocks."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"train file {path}: no such file")
    sep = tokenizer.eos_token_id
    if sep is None:
        raise InputError("the model's tokenizer has no eos token to separate documents")
    ids: list[int] = []
    with path.open(encoding="utf-8") as f:
        batch: list[str] = []
        for line in f:
            if line.strip():
                batch.append(line.strip())
            if len(batch) == batch_lines:
                for seq in tokenizer(batch, add_special_tokens=False)["input_ids"]:
                    ids.extend(seq)
                    ids.append(sep)
                batch = []
                if max_tokens and len(ids) >= max_tokens:
                    break
        if batch:
            for seq in tokenizer(batch, add_special_tokens=False)["input_ids"]:
                ids.extend(seq)
                ids.append(sep)
    if max_tokens:
        ids = ids[:max_tokens]
    n = len(ids) // seq_len
    if n == 0:
        raise InputError(f"train file {path}: {len(ids)} tokens, fewer than one block of {seq_len}")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


def _cached_blocks(args: TrainArguments, tokenizer) -> torch.Tensor:
    """Packed blocks, cached in the scratch directory so a resumed run does not retokenize."""
    tok_file = Path(args.model) / "tokenizer.json"
    key = hashlib.sha256(
        json.dumps(
            [
                sha256_file(args.train_file),
                args.seq_len,
                args.max_train_tokens,
                sha256_file(tok_file) if tok_file.is_file() else args.model,
            ]
        ).encode()
    )
    cache = Path(args.scratch_dir) / f"packed-{key.hexdigest()[:16]}.pt"
    if cache.is_file():
        return torch.load(cache)
    blocks = pack_text(tokenizer, args.train_file, args.seq_len, args.max_train_tokens)
    cache.parent.mkdir(parents=True, exist_ok=True)
    # One temp file per process: torchrun workers all pack the same blocks at the same time, and a
    # shared temp name let one worker's rename pull the file from under another's (seen in CI).
    # Each rename is atomic and the contents are identical, so whichever lands last is fine.
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    torch.save(blocks, tmp)
    os.replace(tmp, cache)
    return blocks


def embedding_parameter_ids(model) -> set[int]:
    ids = {id(model.get_input_embeddings().weight)}
    head = model.get_output_embeddings()
    if head is not None:
        ids.add(id(head.weight))
    return ids


def _make_callbacks(args: TrainArguments, stop_flag: dict[str, Any]):
    from transformers import TrainerCallback

    class Phases(TrainerCallback):
        """Phase 1 (embeddings only) then phase 2 (all parameters), also right after a resume."""

        def _apply(self, model, step: int) -> None:
            frozen = step < args.embeddings_only_steps
            keep = embedding_parameter_ids(model)
            for p in model.parameters():
                p.requires_grad_(not frozen or id(p) in keep)

        def on_train_begin(self, _args, state, control, model=None, **kwargs):
            if args.embeddings_only_steps:
                self._apply(model, state.global_step)

        def on_step_begin(self, _args, state, control, model=None, **kwargs):
            if args.embeddings_only_steps and state.global_step == args.embeddings_only_steps:
                self._apply(model, state.global_step)

    class Throughput(TrainerCallback):
        """Adds wall time and tokens/s (since the previous log in this session) to log_history."""

        def __init__(self):
            self.last: tuple[float, int] | None = None

        def on_log(self, _args, state, control, logs=None, **kwargs):
            now, seen = time.time(), state.num_input_tokens_seen
            entry = state.log_history[-1]
            entry["time"] = now
            if self.last is not None and seen > self.last[1] and now > self.last[0]:
                entry["tokens_per_s"] = (seen - self.last[1]) / (now - self.last[0])
            self.last = (now, seen)

    class Checkpointing(TrainerCallback):
        """After a checkpoint signal (SIGTERM/SIGUSR1/SIGURG): save a checkpoint at the end of this step and stop.

        At the last step, no checkpoint: the Trainer would write one (weights + optimizer state,
        3x the model) that `train` deletes a moment later, once the final model is written.
        """

        def on_step_end(self, _args, state, control, **kwargs):
            if stop_flag["signal"] is not None:
                control.should_save = True
                control.should_training_stop = True
            elif state.global_step >= state.max_steps:
                control.should_save = False
            return control

    return [Phases(), Throughput(), Checkpointing()]


def _training_arguments(args: TrainArguments, use_cpu: bool, bf16: bool, progress: bool):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=args.scratch_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr,
        lr_scheduler_type=args.lr_scheduler,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        logging_steps=args.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=2,
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=use_cpu,
        bf16=bf16,
        activation_checkpointing=args.gradient_checkpointing,
        include_num_input_tokens_seen="all",
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        eval_strategy="no",
    )


def write_log_csv(log_history: list[dict], path: str | Path) -> int:
    """train_log.csv from the Trainer's log history (which checkpoints carry across resumes)."""
    rows = ["step,tokens_seen,loss,lr,tokens_per_s"]
    for entry in log_history:
        if "loss" not in entry:
            continue
        tps = entry.get("tokens_per_s")
        rows.append(
            f"{entry['step']},{entry.get('num_input_tokens_seen', '')},{entry['loss']:.6f},"
            f"{entry.get('learning_rate', float('nan')):.6g},{'' if tps is None else f'{tps:.1f}'}"
        )
    write_text_atomic(path, "\n".join(rows) + "\n")
    return len(rows) - 1


def train(args: TrainArguments, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) continual pretraining; returns the run's metrics."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, default_data_collator
    from transformers.trainer_utils import get_last_checkpoint

    require_model_dir(args.model)
    cuda = resolve_device(args.device).type == "cuda"
    bf16 = args.precision == "bf16" or (args.precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    if bf16 and not cuda:
        raise InputError("--precision bf16 needs a GPU; use fp32 on CPU")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    loaded_dtype = json.loads(Path(args.model, "config.json").read_text()).get("dtype") or "float32"
    if args.gradient_checkpointing:
        model.config.use_cache = False
    Path(args.scratch_dir).mkdir(parents=True, exist_ok=True)
    blocks = _cached_blocks(args, tokenizer)
    resume = get_last_checkpoint(args.scratch_dir) if Path(args.scratch_dir).is_dir() else None
    if resume:
        LOG.info("resuming from %s", resume)

    stop_flag: dict[str, Any] = {"signal": None}

    def on_signal(signum, _frame):
        stop_flag["signal"] = signal.Signals(signum).name
        LOG.warning("received %s: checkpointing at the end of this step", stop_flag["signal"])

    previous = {s: signal.signal(s, on_signal) for s in CHECKPOINT_SIGNALS}
    trainer = Trainer(
        model=model,
        args=_training_arguments(args, use_cpu=not cuda, bf16=bf16, progress=progress),
        train_dataset=PackedBlocks(blocks),
        data_collator=default_data_collator,
        callbacks=_make_callbacks(args, stop_flag),
    )
    started = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    interruptions = Path(args.scratch_dir) / "interruptions.jsonl"
    if stop_flag["signal"] is not None and trainer.state.global_step < args.max_steps:
        if trainer.is_world_process_zero():
            # The rule's log is overwritten by the retry; this history ends up in train_metrics.json.
            record = {"signal": stop_flag["signal"], "step": trainer.state.global_step, "time": time.time()}
            with interruptions.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        raise Preempted(
            f"stopped by {stop_flag['signal']} at step {trainer.state.global_step}; a checkpoint is in "
            f"{args.scratch_dir}: rerun the same command to resume"
        )
    metrics = {
        "steps": trainer.state.global_step,
        "train_loss_mean": result.training_loss,
        "final_loss": next((e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), None),
        "tokens_seen": trainer.state.num_input_tokens_seen,
        "train_blocks": len(blocks),
        "seq_len": args.seq_len,
        "resumed_from": resume,
        # Every signal that stopped an earlier session of this run: [{signal, step, time}, ...].
        "interruptions": [json.loads(line) for line in interruptions.read_text().splitlines()]
        if interruptions.is_file()
        else [],
        "session_seconds": round(time.time() - started, 1),
        "device": "cuda" if cuda else "cpu",
        "precision": "bf16" if bf16 else "fp32",
        "world_size": trainer.args.world_size,
        "args": dataclasses.asdict(args),
    }
    if trainer.is_world_process_zero():
        save_dtype = loaded_dtype if args.save_dtype == "auto" else args.save_dtype
        with atomic_dir(args.output_dir) as tmp:
            model.to(getattr(torch, save_dtype)).save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_json_atomic(tmp / "train_metrics.json", metrics)
        write_log_csv(trainer.state.log_history, args.log_csv)
        # The run is complete: its checkpoints (weights + optimizer, 3x the model) are no longer needed.
        for checkpoint in Path(args.scratch_dir).glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
        interruptions.unlink(missing_ok=True)  # a forced rerun starts a new history
    return metrics


class Preempted(RuntimeError):
    """Training stopped by a pre-emption signal after saving a checkpoint."""
