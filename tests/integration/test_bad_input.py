"""Bad input gets one clear line and loses nothing (issue: "one line naming the input, exit 2").

Every case runs `salt-transfer` in a fresh process, as a user would, and expects: exit status 2, no
traceback, the offending path or option named in the last line of stderr, nothing new under the
output location and no temporary left beside it. Wrong-but-loadable inputs (an overlap, a fastText
model or fitted rows made for another tokenizer) are refused by name.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import tiny_plm, wordpiece

pytestmark = pytest.mark.slow


@dataclass
class Case:
    argv: list[str]
    named: str  # must appear in the last stderr line
    watch: Path  # the output location: nothing new may appear in it (or beside it)
    file_limit: int | None = None  # bytes: RLIMIT_FSIZE, a disk that fills up


def run(case: Case) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "HOME": "/tmp"}

    def limits():
        if case.file_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG instead of killing
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.file_limit, case.file_limit))

    return subprocess.run(
        [sys.executable, "-m", "salt_transfer", *case.argv],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=limits,
        timeout=600,
    )


def _lock(immutable: Path, mount_point: Path) -> list[list[str]]:
    """Make `immutable` unwritable and `mount_point` a read-only file system; the commands that undo it."""
    if os.geteuid() != 0:
        for folder in (immutable, mount_point):
            os.chmod(folder, 0o555)
        return [["chmod", "755", str(immutable)], ["chmod", "755", str(mount_point)]]
    undo = []
    subprocess.run(["chattr", "+i", str(immutable)], check=True)
    undo.append(["chattr", "-i", str(immutable)])
    subprocess.run(["mount", "--bind", str(mount_point), str(mount_point)], check=True)
    undo.append(["umount", str(mount_point)])
    subprocess.run(["mount", "-o", "remount,bind,ro", str(mount_point)], check=True)
    for folder in (immutable, mount_point):  # the cases rely on it: check, rather than assume
        assert not os.access(folder, os.W_OK) or _write_fails(folder), f"{folder} is still writable"
    return undo


def _write_fails(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
    except OSError:
        return True
    (folder / ".probe").unlink()
    return False


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


@pytest.fixture(scope="module")
def w(tmp_path_factory, toks, es_lines, es_corpus, source_tied, plm_bert, overlap_bert, aux_bert):
    """Inputs, good and bad, shared by the cases."""
    root = tmp_path_factory.mktemp("bad")
    os.chmod(root, 0o755)
    (root / "latin1.txt").write_bytes("El niño comió, y la canción seguía.\n".encode("latin-1"))
    (root / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (root / "notjson.json").write_text("{this is not json")
    (root / "a_file").write_text("x")
    (root / "existing_dir").mkdir()
    (root / "existing_dir" / "keep.txt").write_text("the user's")
    # Two output folders nobody may write to, root included (CI runs as root, for whom mode bits mean
    # nothing): an immutable folder (chattr +i: EPERM) and a read-only bind mount (EROFS). As another
    # user, mode 0555 does the same.
    public = Path(f"/tmp/salt-transfer-bad-{os.getpid()}")
    shutil.rmtree(public, ignore_errors=True)
    public.mkdir(mode=0o755)
    shutil.copy(es_corpus, public / "es.txt")
    shutil.copytree(plm_bert, public / "plm")
    ro, ro_mount = public / "readonly", public / "readonly-mount"
    ro.mkdir()
    ro_mount.mkdir()
    locked = _lock(ro, ro_mount)
    (root / "out").mkdir()
    os.chmod(root / "out", 0o777)
    # Weights that are not safetensors, and a model whose weights are cut short.
    (root / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header at all")
    truncated = root / "truncated_model"
    shutil.copytree(source_tied, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    (root / "garbage.gguf").write_bytes(b"GGUF" + os.urandom(200))
    # A second PLM with a tokenizer of the same size as plm_bert's but other tokens.
    other_tok = wordpiece([line[::-1] for line in es_lines], vocab_size=500)
    other_plm = tiny_plm(other_tok, root / "other_plm", "bert")
    import json

    assert len(json.loads((other_plm / "tokenizer.json").read_text())["model"]["vocab"]) == len(
        json.loads((plm_bert / "tokenizer.json").read_text())["model"]["vocab"]
    )
    from salt_transfer.cli import main

    ov = root / "other_overlap.parquet"
    assert main(["overlap", "-q", "--target-tokenizer", str(other_plm), "--source-tokenizer", str(source_tied),
                 "--out", str(ov), "--stats", str(root / "other_stats.json")]) == 0  # fmt: skip
    ft = root / "other_fasttext.bin"
    assert main(["fasttext", "-q", "--corpus", str(es_corpus), "--tokenizer", str(other_plm), "--out", str(ft),
                 "--dim", "8", "--epochs", "1", "--min-count", "2", "--bucket", "5000"]) == 0  # fmt: skip
    emb = root / "other_emb.safetensors"
    assert main(["fit", "-q", "--method", "focus", "--source-model", str(source_tied), "--overlap", str(ov),
                 "--plm", str(other_plm), "--aux", str(ft), "--out", str(emb), "--report", str(root / "o.json"),
                 "--device", "cpu"]) == 0  # fmt: skip
    bad_results = root / "latin1_results.csv"
    bad_results.write_bytes("llm,source_json\nñ,x\n".encode("latin-1"))
    corrupt = root / "corrupt_dir"
    shutil.copytree(source_tied, corrupt)
    (corrupt / "model.safetensors").write_bytes((corrupt / "model.safetensors").read_bytes()[:1000])
    yield {
        "root": root,
        "public": public,
        "ro": ro,
        "ro_mount": ro_mount,
        "out": root / "out",
        "es": es_corpus,
        "source": source_tied,
        "plm": plm_bert,
        "overlap": overlap_bert,
        "aux": aux_bert,
        "other_plm": other_plm,
        "other_overlap": ov,
        "other_fasttext": ft,
        "other_emb": emb,
        "truncated": truncated,
        "corrupt": corrupt,
        "bad_results": bad_results,
    }
    for undo in reversed(locked):
        subprocess.run(undo, check=False)
    shutil.rmtree(public, ignore_errors=True)


def fit(w, out_file, *extra, overlap=None, aux=None, plm=None):
    return ["fit", "--method", "salt", "--source-model", str(w["source"]), "--overlap", str(overlap or w["overlap"]),
            "--plm", str(plm or w["plm"]), "--aux", str(aux or w["aux"]), "--out", str(out_file),
            "--report", str(Path(out_file).with_suffix(".json")), "--device", "cpu", *extra]  # fmt: skip


def fasttext(w, corpus, out, *extra):
    return ["fasttext", "--corpus", str(corpus), "--tokenizer", str(w["plm"]), "--out", str(out), "--dim", "8",
            "--epochs", "1", "--min-count", "2", "--bucket", "5000", *extra]  # fmt: skip


def pretrain(w, model, train, *extra):
    o = w["out"]
    return ["pretrain", "--launch", "none", "--model", str(model), "--train-file", str(train),
            "--output-dir", str(o / "cpt"), "--scratch-dir", str(o / "scratch"), "--log-csv", str(o / "log.csv"),
            "--max-steps", "2", "--batch-size", "1", "--seq-len", "16", "--device", "cpu", *extra]  # fmt: skip


def standin(w, corpus, *extra):
    return ["standin-plm", "--arch", "decoder", "--corpus", str(corpus), "--out", str(w["out"] / "plm"),
            "--vocab-size", "300", "--hidden", "16", "--heads", "2", "--layers", "1", "--steps", "2",
            "--batch-size", "2", "--seq-len", "16", *extra]  # fmt: skip


def evaluate(w, model, text, *extra):
    return ["evaluate", "--model", str(model), "--task", f"t=bpb:{text}", "--out-dir", str(w["out"] / "eval"),
            "--device", "cpu", *extra]  # fmt: skip


def transplant(w, *, source=None, emb=None, tok=None, out=None):
    return ["transplant", "--source-model", str(source or w["source"]), "--target-tokenizer", str(tok or w["plm"]),
            "--embeddings", str(emb or w["other_emb"]), "--out", str(out or w["out"] / "model")]  # fmt: skip


CASES = {
    # text that is not UTF-8
    "latin1 corpus (fasttext)": lambda w: Case(
        fasttext(w, w["root"] / "latin1.txt", w["out"] / "f.bin"), "latin1.txt", w["out"]
    ),
    "binary corpus (fasttext)": lambda w: Case(
        fasttext(w, w["root"] / "binary.txt", w["out"] / "f.bin"), "binary.txt", w["out"]
    ),
    "latin1 corpus (standin-plm)": lambda w: Case(
        standin(w, w["root"] / "latin1.txt"), "latin1.txt", w["out"]
    ),
    "latin1 train file (pretrain)": lambda w: Case(
        pretrain(w, w["source"], w["root"] / "latin1.txt"), "latin1.txt", w["out"]
    ),
    "binary evaluation text (evaluate)": lambda w: Case(
        evaluate(w, w["source"], w["root"] / "binary.txt"), "binary.txt", w["out"]
    ),
    "latin1 corpus (fetch-corpus)": lambda w: Case(
        [
            "fetch-corpus",
            "--source",
            f"file:{w['root'] / 'latin1.txt'}",
            "--out-dir",
            str(w["out"] / "corpus"),
        ],
        "latin1.txt",
        w["out"],
    ),
    "latin1 results table (audit)": lambda w: Case(
        ["audit", str(w["bad_results"]), "--no-dvc-lock"], "latin1_results.csv", w["out"]
    ),
    # weights that are not safetensors, or cut short
    "junk embeddings (transplant)": lambda w: Case(
        transplant(w, emb=w["root"] / "junk.safetensors"), "junk.safetensors", w["out"]
    ),
    "truncated model (evaluate)": lambda w: Case(evaluate(w, w["truncated"], w["es"]), "truncated", w["out"]),
    "truncated source model (transplant)": lambda w: Case(
        transplant(w, source=w["truncated"]), "truncated", w["out"]
    ),
    "truncated model (pretrain)": lambda w: Case(pretrain(w, w["truncated"], w["es"]), "truncated", w["out"]),
    # a tokenizer.json given as a file that is not JSON
    "tokenizer file not JSON (overlap)": lambda w: Case(
        [
            "overlap",
            "--target-tokenizer",
            str(w["root"] / "notjson.json"),
            "--source-tokenizer",
            str(w["source"]),
            "--out",
            str(w["out"] / "o.parquet"),
            "--stats",
            str(w["out"] / "s.json"),
        ],
        "notjson.json",
        w["out"],
    ),  # fmt: skip
    # output locations
    "parent of --out is a file (fit)": lambda w: Case(
        fit(w, w["root"] / "a_file" / "e.safetensors"), "a_file", w["out"]
    ),
    "--out not writable (fasttext)": lambda w: Case(
        [
            "fasttext",
            "--corpus",
            str(w["public"] / "es.txt"),
            "--tokenizer",
            str(w["public"] / "plm"),
            "--out",
            str(w["ro"] / "f.bin"),
            "--dim",
            "8",
            "--epochs",
            "1",
            "--bucket",
            "5000",
        ],
        "readonly",
        w["ro"],
    ),  # fmt: skip
    "--out on a read-only file system (standin-plm)": lambda w: Case(
        [
            "standin-plm",
            "--arch",
            "decoder",
            "--corpus",
            str(w["public"] / "es.txt"),
            "--out",
            str(w["ro_mount"] / "plm"),
            "--vocab-size",
            "300",
            "--hidden",
            "16",
            "--heads",
            "2",
            "--steps",
            "1",
        ],
        "readonly-mount",
        w["ro_mount"],
    ),  # fmt: skip
    "disk full while writing (fit)": lambda w: Case(
        fit(w, w["out"] / "full.safetensors"), "full.safetensors", w["out"], file_limit=20_000
    ),
    "--out is a directory where a file is meant (fit)": lambda w: Case(
        fit(w, w["root"] / "existing_dir"), "existing_dir", w["root"] / "existing_dir"
    ),
    "--out is a file where a directory is meant (transplant)": lambda w: Case(
        transplant(w, out=w["root"] / "a_file", tok=w["other_plm"]), "a_file", w["out"]
    ),
    "--out is a file where a directory is meant (fetch-model)": lambda w: Case(
        ["fetch-model", f"dir:{w['source']}", str(w["root"] / "a_file")], "a_file", w["out"]
    ),
    "--out is someone's non-empty directory (fetch-model)": lambda w: Case(
        ["fetch-model", f"dir:{w['source']}", str(w["root"] / "existing_dir")],
        "existing_dir",
        w["root"] / "existing_dir",
    ),
    # numbers that make no sense
    "fasttext --dim 0": lambda w: Case(
        fasttext(w, w["es"], w["out"] / "f.bin", "--dim", "0"), "--dim", w["out"]
    ),
    "fasttext --epochs 0": lambda w: Case(
        fasttext(w, w["es"], w["out"] / "f.bin", "--epochs", "0"), "--epochs", w["out"]
    ),
    "fasttext --dim -5": lambda w: Case(
        fasttext(w, w["es"], w["out"] / "f.bin", "--dim", "-5"), "--dim", w["out"]
    ),
    "fasttext --min-count leaving no vocabulary": lambda w: Case(
        fasttext(w, w["es"], w["out"] / "f.bin", "--min-count", "100000000"), "--min-count", w["out"]
    ),
    "evaluate --seq-len 0": lambda w: Case(
        evaluate(w, w["source"], w["es"], "--seq-len", "0"), "--seq-len", w["out"]
    ),
    "evaluate --max-bytes -5": lambda w: Case(
        evaluate(w, w["source"], w["es"], "--max-bytes", "-5"), "--max-bytes", w["out"]
    ),
    "standin-plm --vocab-size 0": lambda w: Case(
        standin(w, w["es"], "--vocab-size", "0"), "--vocab-size", w["out"]
    ),
    "standin-plm hidden not divisible by heads": lambda w: Case(
        standin(w, w["es"], "--hidden", "30", "--heads", "4"), "--heads", w["out"]
    ),
    "pretrain --save-steps 0": lambda w: Case(
        pretrain(w, w["source"], w["es"], "--save-steps", "0"), "--save-steps", w["out"]
    ),
    "pretrain unknown --lr-scheduler": lambda w: Case(
        pretrain(w, w["source"], w["es"], "--lr-scheduler", "banana"), "--lr-scheduler", w["out"]
    ),
    # JSON that is not JSON
    "pretrain --args-json not JSON": lambda w: Case(
        ["pretrain", "--args-json", str(w["root"] / "notjson.json"), "--launch", "none"],
        "notjson.json",
        w["out"],
    ),
    "report of an evaluation that is not JSON": lambda w: Case(
        ["report", str(w["root"] / "notjson.json"), "--out-dir", str(w["out"] / "report")],
        "notjson.json",
        w["out"],
    ),
    # fetch-model
    "fetch-model garbage .gguf": lambda w: Case(
        ["fetch-model", f"gguf:{w['root'] / 'garbage.gguf'}", str(w["out"] / "m")], "garbage.gguf", w["out"]
    ),
    "fetch-model hf: while offline": lambda w: Case(
        ["fetch-model", "hf:nobody/nothing@main", str(w["out"] / "m")], "nobody/nothing", w["out"]
    ),
    "fetch-model directory with corrupt weights": lambda w: Case(
        ["fetch-model", f"dir:{w['corrupt']}", str(w["out"] / "m")], "corrupt_dir", w["out"]
    ),
    # wrong but loadable: made for another tokenizer of the same size
    "overlap of another PLM (fit)": lambda w: Case(
        fit(w, w["out"] / "e.safetensors", overlap=w["other_overlap"]), "other_overlap.parquet", w["out"]
    ),
    "fastText of another tokenizer (fit)": lambda w: Case(
        fit(w, w["out"] / "e.safetensors", aux=w["other_fasttext"]), "other_fasttext.bin", w["out"]
    ),
    "fitted rows of another tokenizer (transplant)": lambda w: Case(
        transplant(w), "other_emb.safetensors", w["out"]
    ),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_input_gets_one_clear_line_and_loses_nothing(kind, w):
    case = CASES[kind](w)
    before = listing(case.watch), listing(case.watch.parent)
    proc = run(case)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines and case.named in lines[-1], lines[-3:]
    assert (listing(case.watch), listing(case.watch.parent)) == before, "something was written or left"


def test_there_are_at_least_thirty_kinds():
    assert len(CASES) >= 30
