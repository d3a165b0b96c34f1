"""Continual pretraining: the loss goes down; a pre-empted run resumes to the same weights."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_llama
from salt_transfer import pretrain as train_module
from salt_transfer.errors import InputError
from salt_transfer.pretrain import Preempted, TrainArguments, pack_text, train


def args_for(tmp, model, corpus, name, **kw):
    base = dict(
        model=str(model),
        train_file=str(corpus),
        output_dir=str(tmp / name / "model"),
        scratch_dir=str(tmp / name / "scratch"),
        log_csv=str(tmp / name / "train_log.csv"),
        max_steps=6,
        batch_size=2,
        seq_len=32,
        lr=3e-3,
        warmup_steps=0,
        save_steps=3,
        logging_steps=1,
        seed=5,
        lr_scheduler="constant",
    )
    base.update(kw)
    return TrainArguments(**base)


@pytest.fixture(scope="module")
def llm(toks, tmp_path_factory):
    return tiny_llama(toks["source"], tmp_path_factory.mktemp("cpt") / "llm", tied=False)


def test_packing_drops_the_remainder_and_separates_documents(toks, es_corpus):
    tok = toks["source"]
    blocks = pack_text(tok, es_corpus, seq_len=16, max_tokens=1000)
    assert blocks.shape == (1000 // 16, 16)
    assert (blocks == tok.eos_token_id).any()  # documents are joined with eos


def test_loss_decreases(llm, es_corpus, tmp_path):
    metrics = train(args_for(tmp_path, llm, es_corpus, "run", max_steps=12), progress=False)
    rows = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert rows[0] == "step,tokens_seen,loss,lr,tokens_per_s,heldout_bpb"
    losses = [float(r.split(",")[2]) for r in rows[1:]]
    assert len(losses) == 12 and metrics["steps"] == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3
    assert int(rows[-1].split(",")[1]) == 12 * 2 * 32  # tokens seen = steps x batch x seq_len
    assert not list((tmp_path / "run" / "scratch").glob("checkpoint-*"))  # finished runs drop checkpoints


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGURG], ids=lambda s: s.name)
def test_preempted_run_resumes_to_the_same_weights(llm, es_corpus, tmp_path, monkeypatch, signum):
    """A checkpoint signal at step 4 (USR1; URG, which profiles/slurm asks Slurm for): a checkpoint is written at the end of the step and the run stops; rerunning
    the same command resumes and ends with the same step count and weights as a straight run."""
    straight = train(args_for(tmp_path, llm, es_corpus, "straight"), progress=False)

    from transformers import TrainerCallback

    class SignalAtStep4(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:  # during the 4th optimizer step
                os.kill(os.getpid(), signum)

    original = train_module._make_callbacks
    monkeypatch.setattr(train_module, "_make_callbacks", lambda *a: [*original(*a), SignalAtStep4()])
    args = args_for(tmp_path, llm, es_corpus, "resumed")
    with pytest.raises(Preempted, match="step 4"):
        train(args, progress=False)
    assert (tmp_path / "resumed" / "scratch" / "checkpoint-4").is_dir()
    assert not (tmp_path / "resumed" / "model").exists()  # no final model from an interrupted run
    monkeypatch.setattr(train_module, "_make_callbacks", original)
    resumed = train(args, progress=False)
    assert resumed["resumed_from"].endswith("checkpoint-4")
    assert [(i["signal"], i["step"]) for i in resumed["interruptions"]] == [(signum.name, 4)]
    assert straight["interruptions"] == [] and not (tmp_path / "resumed/scratch/interruptions.jsonl").exists()
    assert resumed["steps"] == straight["steps"] == 6
    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    log = (tmp_path / "resumed" / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in log[1:]] == [str(i) for i in range(1, 7)]  # history survives the resume


def test_embeddings_only_phase_freezes_the_rest(llm, es_corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    train(args_for(tmp_path, llm, es_corpus, "phase", max_steps=2, embeddings_only_steps=2), progress=False)
    before = AutoModelForCausalLM.from_pretrained(llm)
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "phase" / "model")
    changed = {
        n
        for (n, p), (_, q) in zip(before.named_parameters(), after.named_parameters())
        if not torch.equal(p, q)
    }
    assert changed == {"model.embed_tokens.weight", "lm_head.weight"}


def test_bad_arguments(llm, es_corpus, tmp_path):
    with pytest.raises(InputError):
        args_for(tmp_path, llm, es_corpus, "bad", max_steps=0)
    with pytest.raises(InputError, match="no config.json"):
        train(args_for(tmp_path, tmp_path / "nowhere", es_corpus, "bad"), progress=False)


def test_bf16_only_where_native(llm, es_corpus, tmp_path, monkeypatch):
    """bf16 (mixed precision) where the device runs bfloat16 natively; refused, not emulated, elsewhere;
    `auto` falls back to fp32 there."""
    monkeypatch.setattr(train_module, "native_bf16", lambda device: False)
    with pytest.raises(InputError, match="no native bfloat16"):
        train(args_for(tmp_path, llm, es_corpus, "bad", precision="bf16", device="cpu"), progress=False)
    metrics = train(args_for(tmp_path, llm, es_corpus, "auto", max_steps=2, device="cpu"), progress=False)
    assert metrics["precision"] == "fp32"
    monkeypatch.setattr(train_module, "native_bf16", lambda device: True)
    metrics = train(args_for(tmp_path, llm, es_corpus, "bf16", max_steps=4, device="cpu"), progress=False)
    assert metrics["precision"] == "bf16"
    saved = load_file(str(tmp_path / "bf16" / "model" / "model.safetensors"))
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in saved.values())
