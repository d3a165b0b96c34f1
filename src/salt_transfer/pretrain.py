"""Language-adaptive continual pretraining (SALT Step 5): causal LM on target-language text.

Usage:
    salt-transfer pretrain --model results/init/smollm2/es-e5/salt/model --train-file data/corpora/es/train.txt \
        --output-dir results/cpt/smollm2/es-e5/salt/model --log-csv results/cpt/smollm2/es-e5/salt/train_log.csv \
        --scratch-dir scratch/cpt/smollm2/es-e5/salt --max-steps 2000 --eval-file data/corpora/es/valid.txt
    salt-transfer pretrain ...   # on a node with 4 GPUs: reruns itself under torchrun, one process per GPU
    torchrun --standalone --nproc-per-node 4 -m salt_transfer pretrain --launch none ...   # the same, by hand
    salt-transfer pretrain --args-json train_args.json                       # arguments from a JSON file

Built on transformers' Trainer in the style of `run_clm.py`: the target text is tokenized with the
model's (target) tokenizer, documents are joined with the eos token and packed into blocks of
`--seq-len` tokens (the remainder is dropped, as run_clm's `group_texts` does). With `--eval-file`
(the valid split, never the test split `salt-transfer evaluate` scores), the first documents of it
fitting in `--eval-max-bytes` are scored in bits per byte before training, every `--eval-every`
steps and at the end: the held-out points of the convergence figure (`train_log.csv`, column
`heldout_bpb`). The scoring saves and restores the RNG state, so it does not change the weights.
How many processes train (one per GPU of the node, counted from SLURM's environment when present) is decided by `salt_transfer.launch`.

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

The paper's CPT hyper-parameters are unknown (docs/paper.md, section 2): every value here is a config knob.
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
from pathlib import Path
from typing import Any

import torch

from .errors import InputError
from .launch import CHECKPOINT_SIGNALS, PREEMPTED_EXIT  # noqa: F401  (re-exported)
from .provenance import (
    Meta,
    atomic_dir,
    check_output,
    pid_alive,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from .settings import TrainArguments
from .weights import native_bf16, require_model_dir, resolve_device

LOG = logging.getLogger(__name__)


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
    for stale in cache.parent.glob("packed-*.pt.*.tmp"):  # left by a killed run
        pid = stale.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not pid_alive(int(pid)):
            stale.unlink(missing_ok=True)
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


def checkpoint_complete(folder: Path) -> bool:
    """A Trainer checkpoint is complete when its trainer_state.json, which the Trainer writes last,
    parses and names the checkpoint's own step, and its weights are whole."""
    import re

    from .weights import check_weights

    state = folder / "trainer_state.json"
    m = re.search(r"checkpoint-(\d+)$", folder.name)
    try:
        step = json.loads(state.read_text(encoding="utf-8"))["global_step"]
        check_weights(folder, label=str(folder))
    except (OSError, ValueError, KeyError, InputError):
        return False
    return m is not None and int(m.group(1)) == step


def drop_incomplete_checkpoints(scratch_dir: str | Path) -> list[Path]:
    """Delete checkpoints a kill (or a full disk) left half-written, so a rerun resumes from the newest
    complete one instead of failing on it ("Can't find a valid checkpoint")."""
    dropped = []
    for folder in sorted(Path(scratch_dir).glob("checkpoint-*")):
        if folder.is_dir() and not checkpoint_complete(folder):
            LOG.warning("removing incomplete checkpoint %s (interrupted while it was written)", folder)
            shutil.rmtree(folder, ignore_errors=True)
            dropped.append(folder)
    return dropped


def embedding_parameter_ids(model) -> set[int]:
    ids = {id(model.get_input_embeddings().weight)}
    head = model.get_output_embeddings()
    if head is not None:
        ids.add(id(head.weight))
    return ids


def _make_callbacks(
    args: TrainArguments, stop_flag: dict[str, Any], tokenizer=None, heldout=None, bf16: bool = False
):
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

    class HeldOut(TrainerCallback):
        """Bits per byte of the held-out lines before training, every `eval_every` steps and at the end."""

        def _score(self, model, state) -> None:
            from .evaluate import bits_per_byte

            rng = torch.random.get_rng_state()
            was_training = model.training
            model.eval()
            device = next(model.parameters()).device
            # Scored in the training precision (callbacks run outside the trainer's autocast).
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                bpb = bits_per_byte(model, tokenizer, heldout, seq_len=args.seq_len, device=device)["bpb"]
            model.train(was_training)
            torch.random.set_rng_state(rng)
            state.log_history.append(
                {
                    "step": state.global_step,
                    "num_input_tokens_seen": state.num_input_tokens_seen,
                    "heldout_bpb": bpb,
                }
            )
            LOG.info("step %d: held-out bits per byte %.4f", state.global_step, bpb)

        def on_train_begin(self, _args, state, control, model=None, **kwargs):
            if state.global_step == 0 and state.is_world_process_zero:
                self._score(model, state)

        def on_step_end(self, _args, state, control, model=None, **kwargs):
            every = args.eval_every
            due = state.global_step >= state.max_steps or (every and state.global_step % every == 0)
            if due and state.is_world_process_zero:
                self._score(model, state)

    callbacks = [Phases(), Throughput(), Checkpointing()]
    if heldout:
        callbacks.append(HeldOut())
    return callbacks


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


LOG_COLUMNS = "step,tokens_seen,loss,lr,tokens_per_s,heldout_bpb"


def write_log_csv(log_history: list[dict], path: str | Path) -> int:
    """train_log.csv from the Trainer's log history (which checkpoints carry across resumes): one row
    per logged training loss, and one per held-out score (loss empty there). Returns the loss rows."""
    rows = [LOG_COLUMNS]
    n_loss = 0
    for entry in log_history:
        tokens = entry.get("num_input_tokens_seen", "")
        if "heldout_bpb" in entry:
            rows.append(f"{entry['step']},{tokens},,,,{entry['heldout_bpb']:.6f}")
        if "loss" not in entry:
            continue
        tps = entry.get("tokens_per_s")
        rows.append(
            f"{entry['step']},{tokens},{entry['loss']:.6f},"
            f"{entry.get('learning_rate', float('nan')):.6g},{'' if tps is None else f'{tps:.1f}'},"
        )
        n_loss += 1
    write_text_atomic(path, "\n".join(rows) + "\n")
    return n_loss


def train(
    args: TrainArguments, progress: bool = True, config_hash: str | None = None, card: dict | None = None
) -> dict[str, Any]:
    """Run (or resume) continual pretraining; returns the run's metrics. Rank 0 writes the final
    model with its sidecar, its model card (`card`: base_model, language, license) and the loss log."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, default_data_collator
    from transformers.trainer_utils import get_last_checkpoint

    from .corpora import check_text_file, read_lines

    require_model_dir(args.model)
    check_text_file(args.train_file, "--train-file")
    check_output(args.output_dir, directory=True, label="--output-dir")
    check_output(args.log_csv, label="--log-csv")
    check_output(Path(args.scratch_dir) / "x", label="--scratch-dir")
    heldout = None
    if args.eval_file:
        from .evaluate import select_text

        heldout = select_text(read_lines(args.eval_file, "--eval-file"), args.eval_max_bytes)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    # bf16 is mixed precision: float32 master weights and optimizer state, bfloat16 autocast for
    # the forward and backward matmuls (about 1.5x faster per step on a CPU with AVX512-BF16).
    # `auto` picks it wherever the device runs bfloat16 natively; the sidecar records the choice.
    bf16 = args.precision == "bf16" or (args.precision == "auto" and native_bf16(device))
    if bf16 and not native_bf16(device):
        raise InputError(
            f"--precision bf16: this {device.type.upper()} has no native bfloat16 "
            "(a GPU that supports it, or a CPU with AVX512-BF16/AMX); use fp32"
        )
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    loaded_dtype = json.loads(Path(args.model, "config.json").read_text()).get("dtype") or "float32"
    if args.gradient_checkpointing:
        model.config.use_cache = False
    Path(args.scratch_dir).mkdir(parents=True, exist_ok=True)
    blocks = _cached_blocks(args, tokenizer)
    drop_incomplete_checkpoints(args.scratch_dir)
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
        callbacks=_make_callbacks(args, stop_flag, tokenizer, heldout, bf16),
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
        "heldout_bpb": [
            {"step": e["step"], "bpb": e["heldout_bpb"]}
            for e in trainer.state.log_history
            if "heldout_bpb" in e
        ],
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
        meta = Meta(
            "pretrain",
            inputs={"model": args.model, "train_file": args.train_file, "eval_file": args.eval_file},
            params=dataclasses.asdict(args),
            seed=args.seed,
            device=metrics["device"],
            config_hash=config_hash,
        )
        with atomic_dir(args.output_dir, meta) as tmp:
            model.to(getattr(torch, save_dtype)).save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_json_atomic(tmp / "train_metrics.json", metrics)
            (tmp / "README.md").write_text(_card(args, metrics, card or {}), encoding="utf-8")
        write_log_csv(trainer.state.log_history, args.log_csv)
        # The run is complete: its checkpoints (weights + optimizer, 3x the model) are no longer needed.
        for checkpoint in Path(args.scratch_dir).glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
        interruptions.unlink(missing_ok=True)  # a forced rerun starts a new history
    return metrics


def _card(args: TrainArguments, metrics: dict[str, Any], card: dict) -> str:
    """The model card of a continually pretrained model (content-derived: no paths or times)."""
    from .modelcard import _read_json, model_card
    from .provenance import sha256_tree

    init = _read_json(Path(args.model) / "transplant.json")
    method = init.get("method") or "unknown"
    # The transferred model's own card says how it was made (the cell name, the method's options,
    # overlap counts): carry its Transfer table over rather than a thinner summary.
    transfer = _card_table(Path(args.model) / "README.md", "Transfer") or {
        "method": method,
        "target vocabulary": init.get("vocab_size"),
        "fitted embeddings sha256": init.get("embeddings_sha256"),
    }
    name = (transfer.get("method") or method).split(" ")[0].strip("`")
    heldout = ", ".join(f"step {e['step']}: {e['bpb']:.4f}" for e in metrics.get("heldout_bpb", []))
    return model_card(
        title=f"{card.get('base_model') or 'source LLM'} with a transferred vocabulary ({name}), continually pretrained",
        base_model=card.get("base_model"),
        language=card.get("language"),
        license=card.get("license"),
        method=method,
        sections={
            "Continual pretraining": {
                "steps": metrics["steps"],
                "tokens seen": metrics["tokens_seen"],
                "sequence length": args.seq_len,
                "batch (sequences x accumulation x processes)": f"{args.batch_size} x {args.grad_accum} x {metrics['world_size']}",
                "learning rate, schedule": f"{args.lr:g}, {args.lr_scheduler}, {args.warmup_steps} warm-up steps",
                "final training loss (nats per token)": f"{metrics['final_loss']:.4f}"
                if metrics["final_loss"]
                else None,
                "held-out bits per byte (valid split)": heldout or None,
                "seed": args.seed,
            },
            "Transfer": transfer,
            "Provenance (sha256)": {"initial model directory": sha256_tree(args.model)},
        },
    )


def _card_table(readme: Path, section: str) -> dict[str, str]:
    """The two-column table under `## section` of a model card written by modelcard.model_card."""
    if not readme.is_file():
        return {}
    rows, inside = {}, False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line[3:].strip() == section
        elif inside and line.startswith("| ") and not line.startswith("| |") and line.count("|") >= 3:
            key, value = (cell.strip() for cell in line.strip().strip("|").split("|", 1))
            rows[key] = value
    return rows


class Preempted(RuntimeError):
    """Training stopped by a pre-emption signal after saving a checkpoint."""
