"""Atomic writes and provenance sidecars."""

from __future__ import annotations

import json
import os

import pytest

from salt_transfer.provenance import atomic_dir, atomic_path, sha256_tree, write_json_atomic, write_meta


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_directory_artifacts_are_replaced_whole(tmp_path):
    final = tmp_path / "model"
    with atomic_dir(final) as tmp:
        (tmp / "w.bin").write_text("one")
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "w.bin").write_text("partial")
        raise RuntimeError
    assert (final / "w.bin").read_text() == "one"
    with atomic_dir(final) as tmp:
        (tmp / "x.bin").write_text("two")
    assert sorted(p.name for p in final.iterdir()) == ["x.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_tree_hash_sees_content_and_names(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    h1 = sha256_tree(tmp_path / "d")
    (tmp_path / "d" / "f").write_text("y")
    h2 = sha256_tree(tmp_path / "d")
    (tmp_path / "d" / "f").rename(tmp_path / "d" / "g")
    h3 = sha256_tree(tmp_path / "d")
    assert len({h1, h2, h3}) == 3
    (tmp_path / "d" / ".snakemake_timestamp").write_text("")  # Snakemake's marker is not content
    assert sha256_tree(tmp_path / "d") == h3


def test_meta_records_inputs_and_environment(tmp_path):
    art, inp = tmp_path / "out.bin", tmp_path / "in.txt"
    art.write_text("result")
    inp.write_text("input")
    path = write_meta(
        art,
        command="fit",
        inputs={"corpus": inp, "plm": None},
        params={"k": 1},
        seed=5,
        device="cpu",
        config_hash="abc",
    )
    meta = json.loads(path.read_text())
    assert path.name == "out.bin.meta.json"
    assert meta["inputs"]["corpus"]["sha256"] == sha256_tree(inp) and meta["inputs"]["plm"] is None
    assert meta["artifact_sha256"] == sha256_tree(art)
    assert (meta["seed"], meta["device"], meta["config_hash"], meta["params"]) == (5, "cpu", "abc", {"k": 1})
    assert {"git_sha", "git_dirty", "versions"} <= set(meta)


def test_artifacts_get_normal_permissions(tmp_path):
    write_json_atomic(tmp_path / "a.json", {})
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("x")
        (tmp / "sub").mkdir(mode=0o700)
        (tmp / "sub" / "weights").write_bytes(b"w")
        os.chmod(tmp / "sub" / "weights", 0o600)  # as transformers' save_pretrained writes them
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "d" / "sub").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "d" / "sub" / "weights").stat().st_mode & 0o777 == 0o666 & ~mask


def test_prefetched_digests_are_the_digests_and_follow_changes(tmp_path):
    """Digests hashed ahead in the background equal those computed on demand; a file rewritten
    afterwards is hashed again (its size and mtime changed), and missing paths are skipped."""
    import hashlib
    import time

    from salt_transfer import provenance

    model = tmp_path / "model"
    model.mkdir()
    (model / "a.bin").write_bytes(os.urandom(3 << 20))
    (model / "b.json").write_text("{}")
    single = tmp_path / "overlap.parquet"
    single.write_bytes(b"x" * 1000)
    old = time.time() - 60  # settled files: their digests may be remembered
    for f in (model / "a.bin", model / "b.json", single):
        os.utime(f, (old, old))
    want_tree = sha256_tree(model)
    provenance._DIGESTS.clear()
    provenance.prefetch_digests([model, single, tmp_path / "missing", None])
    assert sha256_tree(model) == want_tree
    assert provenance.sha256_file(single) == hashlib.sha256(b"x" * 1000).hexdigest()
    single.write_bytes(b"y" * 1001)
    assert provenance.sha256_file(single) == hashlib.sha256(b"y" * 1001).hexdigest()
