"""Text capture with explicit truncation, as a runner uses it: capture a log, put the artifact,
keep the excerpt in its own state; every cut is recorded where a reader will see it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitstore import Store
from gitstore.capture import CapturePolicy, capture, is_binary
from gitstore.cli.main import cli
from gitstore.secrets import Masker

# The store fixture's tests also run against a store served over HTTP (see conftest.py).
pytestmark = pytest.mark.served

POLICY = CapturePolicy(excerpt_bytes=8000, head_bytes=4000, tail_bytes=4000)


def big_log(path: Path, size: int = 1_200_000) -> bytes:
    lines = [f"line {i:07d} of the run: something happened\n".encode() for i in range(40_000)]
    data = b"FIRST LINE\n" + b"".join(lines)[: size - 22] + b"\nLAST LINE\n"
    path.write_bytes(data)
    return data


def test_a_big_log_gives_a_truncated_excerpt_with_its_first_and_last_lines(
    store: Store, tmp_path: Path
) -> None:
    data = big_log(tmp_path / "run.log")
    with capture(tmp_path / "run.log", POLICY) as cap:
        v = store.put("s/t", {"log.log": cap.artifact})
    ex = cap.excerpt
    assert ex.truncated and not ex.binary
    assert ex.head.startswith("FIRST LINE\n") and ex.tail.endswith("\nLAST LINE\n")
    assert len(ex.head.encode()) <= 4000 and len(ex.tail.encode()) <= 4000
    assert ex.head.endswith("\n") and ex.tail.startswith("line ")  # whole lines only
    assert ex.size == len(data) and "left out" in ex.note
    # No max_bytes: the log itself is stored whole, untouched.
    assert store.get(v.artifact("log.log").uri) == data
    assert v.artifact("log.log").truncated is None


def test_a_capped_log_records_the_cut_in_the_manifest_and_the_bytes(
    store: Store, tmp_path: Path
) -> None:
    data = big_log(tmp_path / "run.log")
    policy = CapturePolicy(max_bytes=8000, head_bytes=4000, tail_bytes=4000)
    with capture(tmp_path / "run.log", policy) as cap:
        v = store.put("s/t", {"log.log": cap.artifact})
    art = v.artifact("log.log")
    stored = store.get(art.uri)
    assert len(stored) <= 8000 and art.size == len(stored)
    assert stored.startswith(b"FIRST LINE\n") and stored.endswith(b"\nLAST LINE\n")
    assert b"bytes cut here, 1200000 bytes in all]" in stored
    import hashlib

    t = art.truncated
    assert t is not None
    assert t["original_size"] == len(data)
    assert t["original_sha256"] == hashlib.sha256(data).hexdigest()
    (a, b), (c, d) = t["kept"]
    assert (a, d) == (0, len(data))
    assert stored.startswith(data[a:b]) and stored.endswith(data[c:d])
    # gitstore show names the cut.
    out = CliRunner().invoke(cli, ["--store", str(store.path), "show", "s/t", "log.log"])
    if store.path is not None:
        assert "original_size" in out.output


def test_a_small_text_is_excerpted_whole(store: Store) -> None:
    with capture("one\ntwo\n", POLICY) as cap:
        store.put("s/t", {"log.log": cap.artifact})
    assert (cap.excerpt.head, cap.excerpt.tail, cap.excerpt.truncated) == ("one\ntwo\n", "", False)


def test_max_lines_caps_the_excerpt() -> None:
    text = "".join(f"{i}\n" for i in range(100))
    with capture(text, CapturePolicy(max_lines=4)) as cap:
        ex = cap.excerpt
    assert (ex.head, ex.tail, ex.truncated) == ("0\n1\n", "98\n99\n", True)


def test_nul_bytes_are_binary_and_get_no_excerpt(store: Store) -> None:
    data = b"PK\x03\x04\0\0" + bytes(range(256)) * 10
    with capture(io.BytesIO(data), POLICY, masker=Masker(env={})) as cap:
        v = store.put("s/t", {"blob.bin": cap.artifact})
    assert cap.excerpt.binary and cap.excerpt.head == cap.excerpt.tail == ""
    assert "binary" in cap.excerpt.note
    assert store.get(v.artifact("blob.bin").uri) == data  # never masked: stored byte-exact


@pytest.mark.parametrize(
    ("window", "binary"),
    [(b"plain text\n", False), (b"\x1b[31mred\x1b[0m\n", False), (b"\x01\x02\x03\x04ab", True)],
)
def test_mostly_control_bytes_are_binary(window: bytes, binary: bool) -> None:
    assert is_binary(window) is binary


def test_masked_then_cut_never_keeps_half_a_secret(store: Store) -> None:
    secret = "ghp_" + "Q" * 36
    text = "x" * 5000 + f"\n{secret}\n" + "y\n" * 3000
    with capture(text, CapturePolicy(max_bytes=5030), masker=Masker(env={})) as cap:
        v = store.put("s/t", {"log.log": cap.artifact})
    stored = store.get(v.artifact("log.log").uri)
    assert b"ghp_" not in stored and b"QQQQ" not in stored
    assert cap.masked_secrets == 1 and v.artifact("log.log").masked_secrets == 1
    assert secret not in json.dumps(v.to_dict())


def test_a_big_stream_is_stored_whole_in_bounded_memory(store: Store) -> None:
    data = b"z" * 100 + b"\n"
    stream = io.BytesIO(data * 30_000)
    with capture(stream, POLICY) as cap:
        v = store.put("s/t", {"log.log": cap.artifact})
    assert store.get(v.artifact("log.log").uri) == data * 30_000
    assert cap.excerpt.truncated
