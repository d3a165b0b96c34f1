"""fetch-fasttext: the download resumes where a dropped connection stopped, and is checked (length,
sha256 when given, gzip CRC) before the model appears; a bad download is removed, never installed."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from http_server import Served, serve
from salt_transfer.downloads import download_fasttext
from salt_transfer.errors import InputError

MODEL = bytes(range(256)) * 4000  # stands for cc.xx.300.bin (content is not parsed here)
GZ = gzip.compress(MODEL)


def test_download_writes_the_model_and_its_sidecar(tmp_path):
    served = Served({"/cc.de.300.bin.gz": GZ})
    with serve(served) as base:
        info = download_fasttext(
            "de", tmp_path / "cc.de.bin", url=base + "/cc.{lang}.300.bin.gz", progress=False
        )
    assert (tmp_path / "cc.de.bin").read_bytes() == MODEL
    assert info["gz_sha256"] == hashlib.sha256(GZ).hexdigest() and info["bytes_downloaded"] == len(GZ)
    meta = json.loads((tmp_path / "cc.de.bin.meta.json").read_text())
    assert meta["params"]["gz_sha256"] == info["gz_sha256"] and meta["params"]["url"].endswith(
        "/cc.de.300.bin.gz"
    )
    assert not list(tmp_path.glob("*.part"))


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path):
    served = Served({"/m.gz": GZ}, drop_after=len(GZ) // 3, drops=2)
    with serve(served) as base:
        info = download_fasttext("de", tmp_path / "m.bin", url=base + "/m.gz", progress=False)
    assert (tmp_path / "m.bin").read_bytes() == MODEL
    ranges = [r["range"] for r in served.requests]
    assert ranges == [None, f"bytes={len(GZ) // 3}-", f"bytes={2 * (len(GZ) // 3)}-"]
    assert info["bytes_downloaded"] == len(GZ)  # every byte fetched once


def test_a_partial_file_from_an_earlier_run_is_resumed(tmp_path):
    (tmp_path / "m.bin.gz.part").write_bytes(GZ[:1000])
    served = Served({"/m.gz": GZ})
    with serve(served) as base:
        info = download_fasttext("de", tmp_path / "m.bin", url=base + "/m.gz", progress=False)
    assert served.requests[0]["range"] == "bytes=1000-" and info["bytes_downloaded"] == len(GZ) - 1000
    assert (tmp_path / "m.bin").read_bytes() == MODEL


def test_a_server_ignoring_range_restarts_from_zero(tmp_path):
    (tmp_path / "m.bin.gz.part").write_bytes(b"stale bytes")
    served = Served({"/m.gz": GZ}, honour_range=False)
    with serve(served) as base:
        download_fasttext("de", tmp_path / "m.bin", url=base + "/m.gz", progress=False)
    assert (tmp_path / "m.bin").read_bytes() == MODEL


def test_wrong_checksum_or_corrupt_gzip_is_removed_not_installed(tmp_path):
    served = Served({"/m.gz": GZ, "/bad.gz": GZ[:-20] + bytes(20)})
    with serve(served) as base:
        with pytest.raises(InputError, match="sha256 .* expected 0000"):
            download_fasttext("de", tmp_path / "a.bin", url=base + "/m.gz", sha256="0" * 64, progress=False)
        with pytest.raises(InputError, match="not a complete gzip file"):
            download_fasttext("de", tmp_path / "b.bin", url=base + "/bad.gz", progress=False)
        with pytest.raises(InputError, match="HTTP 404"):
            download_fasttext("de", tmp_path / "c.bin", url=base + "/none.gz", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_server_that_keeps_dropping_gives_up_and_keeps_the_part(tmp_path):
    served = Served({"/m.gz": GZ}, drop_after=100, drops=10)
    with (
        serve(served) as base,
        pytest.raises(InputError, match="incomplete after 3 attempts.*rerun to resume"),
    ):
        download_fasttext("de", tmp_path / "m.bin", url=base + "/m.gz", progress=False, attempts=3)
    assert (tmp_path / "m.bin.gz.part").stat().st_size == 300 and not (tmp_path / "m.bin").exists()
