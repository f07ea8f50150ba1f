"""What the runner projects expected of the library and had to work around: unpinned URIs, one
artifact exported, find of the latest versions, a capture's digest before the put, a code for
binary content, provider error codes classified, failures rendered as text, refs made from what
runners hold, and a store dropped without close() that stays quiet."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import git

from gitstore import (
    ArtifactNotFoundError,
    InvalidNameError,
    Store,
    UsageError,
    artifact_ref,
    capture,
    find,
    render_failure,
    resolve_ref,
)
from gitstore.capture import CapturePolicy
from gitstore.cli.main import cli
from gitstore.failures import classify, failure_record
from gitstore.secrets import Masker


def run(store: Path | str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--store", str(store), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "s.git", create=True)
    yield s
    s.close()


# -- unpinned URIs -----------------------------------------------------------------------------


def test_an_unpinned_uri_reads_the_latest_version_and_a_pinned_one_stays(disk: Store) -> None:
    first = disk.put("s/t", {"log.log": "one"})
    pinned = first.artifact("log.log").uri
    disk.put("s/t", {"log.log": "two"})
    assert disk.get("gitstore://s/t/log.log") == b"two"
    assert disk.get(pinned) == b"one"
    disk.put("s/t", {"log.log": "three"})
    assert resolve_ref(disk, {"$artifact": "gitstore://s/t/log.log"}, as_="text") == "three"
    assert disk.resolve("gitstore://s/t/log.log").sha256 == hashlib.sha256(b"three").hexdigest()


def test_an_unpinned_uri_of_a_name_the_latest_lacks_is_not_found(disk: Store) -> None:
    disk.put("s/t", {"a": "1"})
    disk.put("s/t", {"b": "2"}, replace=True)
    with pytest.raises(ArtifactNotFoundError):
        disk.get("gitstore://s/t/a")


# -- one artifact exported ---------------------------------------------------------------------


def test_export_of_one_name_writes_only_that_file(disk: Store, tmp_path: Path) -> None:
    disk.put("s/t", {"log.log": "log", "diff.diff": "diff", "out/a.txt": "a"})
    written = disk.export("s/t", tmp_path / "dest", names=["log.log"])
    assert written == [str(tmp_path / "dest" / "log.log")]
    assert sorted(os.listdir(tmp_path / "dest")) == ["log.log"]
    code, _, _ = run(disk.path or "", "export", "s/t", str(tmp_path / "cli"), "--name", "out")
    assert code == 0
    assert (tmp_path / "cli" / "out" / "a.txt").read_text() == "a"
    assert os.listdir(tmp_path / "cli") == ["out"]


def test_export_of_an_unknown_name_writes_nothing(disk: Store, tmp_path: Path) -> None:
    disk.put("s/t", {"log.log": "log"})
    with pytest.raises(ArtifactNotFoundError):
        disk.export("s/t", tmp_path / "dest", names=["log.log", "nope"])
    assert not (tmp_path / "dest").exists()
    code, _, err = run(disk.path or "", "export", "s/t", str(tmp_path / "d2"), "--name", "nope")
    assert code == 4 and "nope" in err


def test_one_artifact_to_a_file_is_whole_or_untouched(disk: Store, tmp_path: Path) -> None:
    v = disk.put("s/t", {"log.log": "new bytes"})
    target = tmp_path / "kept.log"
    target.write_text("old")
    with pytest.raises(ArtifactNotFoundError):
        disk.save_artifact(v.address, target, "missing")
    assert target.read_text() == "old"
    disk.save_artifact(v.artifact("log.log").uri, target)
    assert target.read_text() == "new bytes"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


# -- find --latest -----------------------------------------------------------------------------


def test_find_latest_considers_only_each_tasks_head(disk: Store) -> None:
    disk.put("s/a", {"x": "1"}, run_id="r1")
    head_a = disk.put("s/a", {"x": "2"}, run_id="r2")
    head_b = disk.put("s/b", {"x": "1"}, run_id="r1")
    assert {v.commit for v in find(disk, latest=True)} == {head_a.commit, head_b.commit}
    # r1 wrote an old version of s/a: only s/b's head counts.
    assert [v.commit for v in find(disk, run="r1", latest=True)] == [head_b.commit]
    assert len(find(disk, run="r1")) == 2
    code, out, _ = run(disk.path or "", "find", "--run", "r1", "--latest", "--json")
    assert code == 0 and [v["commit"] for v in json.loads(out)] == [head_b.commit]


# -- captures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [None, CapturePolicy(max_bytes=300)], ids=["whole", "cut"])
def test_a_captures_digest_is_what_the_put_stores(
    disk: Store, tmp_path: Path, policy: CapturePolicy | None
) -> None:
    log = tmp_path / "agent.log"
    log.write_text("".join(f"line {i} token=abcdefgh12345678\n" for i in range(200)))
    with capture(log, policy, masker=Masker(env={})) as cap:
        digest = cap.digest()
        info = disk.put("s/t", {"log.log": cap.artifact}).artifact("log.log")
    assert (digest.size, digest.sha256, digest.oid) == (info.size, info.sha256, info.oid)
    # Stock git agrees on the blob id of what was stored.
    stored = git(disk.path or "", "cat-file", "blob", info.oid).stdout.encode()
    assert hashlib.sha256(stored).hexdigest() == digest.sha256


def test_a_captured_stream_is_left_ready_for_the_put(disk: Store) -> None:
    with capture(io.BytesIO(b"from a pipe\n")) as cap:
        assert cap.digest().size == 12
        info = disk.put("s/t", {"log.log": cap.artifact}).artifact("log.log")
    assert disk.get(info.uri) == b"from a pipe\n"
    assert info.oid == cap.digest().oid


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "binary"),
        (b"short text\n", "whole"),
        (b"x\n" * 20000, "truncated"),
    ],
)
def test_an_excerpt_carries_a_code_for_programs(data: bytes, code: str) -> None:
    with capture(data) as cap:
        assert cap.excerpt.code == code
        assert cap.excerpt.to_dict()["code"] == code


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (
            {"type": "APIError", "code": "provider_quota_exceeded", "message": "stop"},
            "quota_exhausted",
        ),
        ({"type": "APIError", "subtype": "RESOURCE_EXHAUSTED"}, "quota_exhausted"),
        ({"error": {"code": "request_timeout", "message": "slow"}}, "timeout"),
        ({"type": "APIError", "code": "invalid_schema"}, "validation_error"),
        ({"type": "APIError", "code": 500}, "error"),
    ],
)
def test_classification_reads_subtype_and_code(failure: dict[str, object], kind: str) -> None:
    assert classify(failure) == kind
    assert failure_record(failure)["kind"] == kind


def test_an_exceptions_code_attribute_is_read_too() -> None:
    class ProviderError(Exception):
        def __init__(self, message: str, code: str) -> None:
            super().__init__(message)
            self.code = code

    assert classify(ProviderError("request failed", "provider_quota_exceeded")) == "quota_exhausted"
    assert classify(ProviderError("request failed", "bad_gateway")) == "error"


def test_a_failure_renders_as_text_with_every_cut_marked() -> None:
    record = failure_record(
        {"type": "Boom", "message": "m" * 50, "traceback": "T" * 30 + "END", "code": "x1"},
        artifacts=["log.log"],
    )
    text = render_failure(record, message_max=10, traceback_max=8)
    assert text.splitlines()[:3] == ["failure: error", "type: Boom", "message: " + "m" * 10]
    assert "[gitstore: 40 characters cut here]" in text
    assert "[gitstore: 25 characters cut here]\nTTTTTEND" in text
    assert "code: x1" in text and "artifacts: log.log" in text
    whole = render_failure(record)
    assert "cut here" not in whole and "m" * 50 in whole


def test_a_traceback_the_record_cut_keeps_its_own_marker() -> None:
    record = failure_record({"type": "Boom", "message": "m", "traceback": "x" * 5000})
    assert "[gitstore: 1000 characters cut here]" in render_failure(record)


# -- refs from what runners hold ---------------------------------------------------------------


def test_refs_from_a_uri_a_version_and_name_or_an_artifact_info(disk: Store) -> None:
    v = disk.put("s/t", {"log.log": "one"})
    info = v.artifact("log.log")
    expected = {"$artifact": info.uri}
    assert artifact_ref(info.uri) == artifact_ref(v, "log.log") == artifact_ref(info) == expected
    disk.put("s/t", {"log.log": "two"})
    for ref in (expected, info.uri, info):
        assert resolve_ref(disk, ref, as_="text") == "one"
    assert resolve_ref(disk, v, "log.log", as_="text") == "one"


def test_refs_refuse_what_they_cannot_pin(disk: Store) -> None:
    v = disk.put("s/t", {"log.log": "one"})
    with pytest.raises(UsageError):
        artifact_ref(v)
    with pytest.raises(UsageError):
        artifact_ref(v.artifact("log.log"), "log.log")
    with pytest.raises(ArtifactNotFoundError):
        artifact_ref(v, "nope")
    with pytest.raises(InvalidNameError):
        artifact_ref("s/t@v1")
    with pytest.raises(InvalidNameError):
        artifact_ref("gitstore://s/t@v1/")


# -- a store dropped without close() ------------------------------------------------------------


@pytest.mark.parametrize("how", ["collected", "at-exit"])
def test_a_store_never_closed_prints_nothing(disk: Store, tmp_path: Path, how: str) -> None:
    for i in range(3):
        disk.put("s/t", {"x": str(i) * 100})  # a few packs to leave open
    script = f"""
import gc, gitstore
s = gitstore.Store.open({str(disk.path)!r})
s.get("s/t", "x"); s.log("s/t"); s.get("s/t@v1", "x")
if {how == "collected"!r}:
    del s
    gc.collect()
"""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stderr == ""
