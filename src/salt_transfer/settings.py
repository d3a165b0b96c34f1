"""Settings of the phases that have many knobs, as option dataclasses (see `salt_transfer.options`).

Each default lives here only: the command line builds its flags from these classes, the workflow
config's schema (`config/schema.yaml`) repeats the defaults for documentation and a unit test keeps
the two equal. Pure standard library (no torch), so `--help` is fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError
from .options import check_fields, opt

# transformers' scheduler names that need no extra arguments (a test checks them against the
# installed transformers' SchedulerType).
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)


@dataclass(frozen=True)
class FastTextOptions:
    """fastText training settings of `salt-transfer aux`; defaults are FOCUS's token-level settings."""

    dim: int = opt(100, help="vector size", minimum=2)
    epochs: int = opt(3, help="training epochs", minimum=1)
    min_count: int = opt(
        10, help="min token frequency for the word list; rarer tokens still get n-gram vectors", minimum=1
    )
    # CBOW is closer to masked LM than skip-gram (FOCUS's reasoning).
    model: str = opt("cbow", help="fastText model", choices=("cbow", "skipgram"))
    neg: int = opt(10, help="negative samples", minimum=1)
    minn: int = opt(3, help="min char n-gram length", minimum=0)
    maxn: int = opt(6, help="max char n-gram length", minimum=0)
    # fastText's default 2M hash buckets cost dim x 2M x 4 B = 800 MB at dim 100; small corpora
    # need far fewer. Keep the default for fidelity; the demo config lowers it.
    bucket: int = opt(
        2_000_000, help="n-gram hash buckets; model size is (words + bucket) x dim x 4 bytes", minimum=1
    )
    # One thread makes training deterministic (fastText's Hogwild updates race across threads).
    threads: int = opt(1, help="fastText threads (more than 1 is not reproducible)", minimum=1)

    def __post_init__(self):
        check_fields(self)
        if self.maxn and self.minn > self.maxn:
            raise InputError(f"--minn {self.minn} is larger than --maxn {self.maxn}")


@dataclass(frozen=True)
class StandinOptions:
    """Size and training of a stand-in PLM (`salt-transfer standin-plm`)."""

    vocab_size: int = opt(8000, help="tokenizer vocabulary size", minimum=100)
    hidden: int = opt(128, help="hidden size (the PLM embedding width ht)", minimum=8)
    layers: int = opt(2, help="transformer layers", minimum=1)
    heads: int = opt(4, help="attention heads (must divide the hidden size)", minimum=1)
    steps: int = opt(300, help="training steps", minimum=1)
    batch_size: int = opt(16, help="sequences per step", minimum=1)
    seq_len: int = opt(64, help="tokens per sequence", minimum=8)
    lr: float = opt(0.001, help="peak learning rate")
    seed: int = opt(0, help="seed of tokenizer-independent draws (data order, masking, init)")

    def __post_init__(self):
        check_fields(self)
        if self.hidden % self.heads:
            raise InputError(f"--hidden {self.hidden} is not divisible by --heads {self.heads}")
        if not self.lr > 0:
            raise InputError(f"--lr {self.lr}: must be positive")


@dataclass(frozen=True)
class TrimOptions:
    """Vocabulary trimming of a multilingual PLM to the tokens of the target-language text."""

    min_count: int = opt(1, help="keep tokens that occur at least this often in the text", minimum=1)
    max_bytes: int = opt(0, help="read at most this many bytes of the text (0: all)", minimum=0)

    def __post_init__(self):
        check_fields(self)


@dataclass(frozen=True)
class TrainArguments:
    """Continual-pretraining arguments (all also readable from a JSON file with --args-json)."""

    model: str = opt(help="initial model directory (a transplanted model)")
    train_file: str = opt(help="target-language training text, one document per line")
    output_dir: str = opt(help="final model directory (written atomically at the end)")
    scratch_dir: str = opt(help="checkpoint directory; keep it outside workflow outputs so reruns resume")
    log_csv: str = opt(help="train_log.csv: step, tokens seen, loss, lr, tokens/s, held-out bits per byte")
    max_steps: int = opt(1000, help="optimizer steps", minimum=1)
    batch_size: int = opt(8, help="sequences per device per micro-batch", minimum=1)
    grad_accum: int = opt(1, help="micro-batches per optimizer step", minimum=1)
    seq_len: int = opt(512, help="tokens per packed training sequence", minimum=2)
    lr: float = opt(1e-4, help="peak learning rate")
    lr_scheduler: str = opt(
        "cosine", help="learning-rate schedule (transformers' name)", choices=LR_SCHEDULERS
    )
    warmup_steps: int = opt(0, help="linear warm-up steps", minimum=0)
    weight_decay: float = opt(0.01, help="AdamW weight decay", minimum=0.0)
    max_grad_norm: float = opt(1.0, help="gradient clipping norm", minimum=0.0)
    embeddings_only_steps: int = opt(
        0,
        help="first phase: train only the embeddings (and untied LM head) for this many steps, then everything",
        minimum=0,
    )
    save_steps: int = opt(200, help="checkpoint every N steps", minimum=1)
    logging_steps: int = opt(10, help="log loss, lr and tokens/s every N steps", minimum=1)
    eval_file: str | None = opt(
        None, help="held-out text scored in bits per byte during training (the valid split); none: off"
    )
    eval_every: int = opt(
        0,
        help="score --eval-file before training and every N steps (0: only before and at the end)",
        minimum=0,
    )
    eval_max_bytes: int = opt(
        4000, help="score the first documents of --eval-file fitting in this many bytes", minimum=1
    )
    seed: int = opt(0, help="seed of data order, dropout and initial RNG state")
    device: str = opt("auto", help="auto (CUDA when present), cpu or cuda")
    precision: str = opt(
        "auto",
        help="auto (bf16 where the device runs it natively: a GPU that supports it, a CPU with "
        "AVX512-BF16 or AMX; else fp32), bf16 (mixed precision: float32 weights, bfloat16 matmuls) or fp32",
        choices=("auto", "bf16", "fp32"),
    )
    gradient_checkpointing: bool = opt(False, help="recompute activations in backward to save memory")
    max_train_tokens: int = opt(0, help="read at most this many tokens of the train file (0: all)", minimum=0)
    save_dtype: str = opt(
        "auto",
        help="dtype of the saved model: auto (as loaded), float32 or bfloat16",
        choices=("auto", "float32", "bfloat16"),
    )

    def __post_init__(self):
        check_fields(self)
        if not self.lr > 0:
            raise InputError(f"--lr {self.lr}: must be positive")
        if not 0 <= self.embeddings_only_steps <= self.max_steps:
            raise InputError("--embeddings-only-steps must be between 0 and --max-steps")
