"""Quotas: gitstore.maxSize and gitstore.maxArtifactSize refuse a put before it writes anything,
with exit code 16 (507 / 413 from the server) and a message that says what to do."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from serving import store_files
from support import git
from test_server_limits import running

from gitstore import (
    ArtifactTooLargeError,
    QuotaExceededError,
    Store,
    StoreError,
    StoreFullError,
)
from gitstore.cli.main import cli
from gitstore.server import ServerConfig


def _store(path: Path, **limits: str) -> None:
    Store.open(path, create=True).close()
    for key, value in limits.items():
        git(path, "config", f"gitstore.{key}", value)


def _objects_size(path: Path) -> int:
    """Bytes on disk as git counts them: loose + packs + garbage, in KiB -> bytes."""
    counted = dict(
        line.split(": ") for line in git(path, "count-objects", "-v").stdout.splitlines()
    )
    return sum(int(counted[k]) for k in ("size", "size-pack", "size-garbage")) * 1024


def test_an_artifact_over_max_artifact_size_is_refused_and_nothing_is_written(
    store_path: Path, tmp_path: Path
) -> None:
    _store(store_path, maxArtifactSize="1k")
    big = tmp_path / "big.log"
    big.write_bytes(b"x" * 1025)
    before = store_files(store_path)
    with Store.open(store_path) as store, pytest.raises(ArtifactTooLargeError) as caught:
        store.put("s/t", {"small.txt": b"fine", "big.log": big})
    text = str(caught.value)
    assert "big.log is 1.00 KiB" in text or "big.log is 1025 B" in text
    assert "gitstore.maxArtifactSize (1.00 KiB)" in text
    assert f"git --git-dir={store_path} config gitstore.maxArtifactSize" in text
    assert caught.value.exit_code == 16
    assert store_files(store_path) == before
    assert git(store_path, "for-each-ref").stdout == ""


def test_an_artifact_at_the_limit_is_accepted(store_path: Path) -> None:
    _store(store_path, maxArtifactSize="1k")
    with Store.open(store_path) as store:
        assert store.put("s/t", {"a.bin": b"x" * 1024}).created


def test_a_put_that_would_pass_max_size_is_refused_with_what_to_do(
    store_path: Path, tmp_path: Path
) -> None:
    _store(store_path)
    with Store.open(store_path) as store:
        store.put("s/t", {"a.bin": os.urandom(200 << 10)})
    used = _objects_size(store_path)
    git(store_path, "config", "gitstore.maxSize", str(used + (50 << 10)))
    before = store_files(store_path)
    with Store.open(store_path) as store:
        with pytest.raises(StoreFullError) as caught:
            store.put("s/u", {"b.bin": os.urandom(100 << 10)})
        text = str(caught.value)
        for needed in (
            "over gitstore.maxSize",
            "nothing was written",
            "gitstore du",
            "gitstore retain",
            "--task",
            f"git --git-dir={store_path} config gitstore.maxSize",
        ):
            assert needed in text, text
        assert store_files(store_path) == before
        assert store.put("s/u", {"b.bin": os.urandom(10 << 10)}).created  # what still fits


def test_puts_in_one_process_count_against_max_size_between_measures(store_path: Path) -> None:
    _store(store_path)
    with Store.open(store_path) as store:
        store.put("s/t", {"a": b"a"})
    git(store_path, "config", "gitstore.maxSize", str(_objects_size(store_path) + (300 << 10)))
    with Store.open(store_path) as store:
        store.put("s/t", {"b": os.urandom(200 << 10)})
        # The bytes on disk were measured before that put; the put's own bytes are counted.
        with pytest.raises(StoreFullError):
            store.put("s/t", {"c": os.urandom(200 << 10)})


def test_a_stream_over_the_limit_is_refused_as_it_is_read_and_leaves_nothing(
    store_path: Path,
) -> None:
    _store(store_path, maxArtifactSize="2m")
    before = store_files(store_path)

    class Endless(io.RawIOBase):
        """A stream that never ends: the put must stop reading it at the limit."""

        read_bytes = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            view = memoryview(b)
            view[:] = b"y" * len(view)
            self.read_bytes += len(view)
            return len(view)

    src = Endless()
    with Store.open(store_path) as store, pytest.raises(ArtifactTooLargeError, match="more than"):
        store.put("s/t", {"endless.log": io.BufferedReader(src)})
    assert src.read_bytes < 8 << 20
    assert store_files(store_path) == before


def test_cli_stdin_over_the_limit_exits_16_with_one_line(store_path: Path) -> None:
    _store(store_path, maxArtifactSize="1m")
    result = CliRunner().invoke(
        cli,
        ["--store", str(store_path), "put", "s/t", "-", "--as", "in.bin"],
        input=b"z" * (3 << 20),
    )
    assert result.exit_code == 16, result.output
    assert "gitstore.maxArtifactSize" in result.output
    assert git(store_path, "for-each-ref").stdout == ""


def test_sizes_read_like_git_config_sizes(store_path: Path) -> None:
    _store(store_path, maxSize="10G", maxArtifactSize="512m")
    with Store.open(store_path) as store:
        assert store.settings.max_size == 10 << 30
        assert store.settings.max_artifact_size == 512 << 20
    assert git(store_path, "config", "--type=int", "gitstore.maxSize").stdout.strip() == str(
        10 << 30
    )


def test_a_bad_size_setting_is_a_store_error_naming_it(store_path: Path) -> None:
    _store(store_path, maxSize="ten gigs")
    with pytest.raises(StoreError, match=r"gitstore.maxSize = 'ten gigs' is not a size"):
        Store.open(store_path)


def test_the_server_answers_507_for_max_size_and_413_for_max_artifact_size(
    store_path: Path,
) -> None:
    _store(store_path, maxArtifactSize="1k")
    with running(store_path, ServerConfig(open_without_tokens=True)) as port:
        url = f"http://127.0.0.1:{port}"
        r = httpx.put(f"{url}/api/v1/tasks/s/t/artifacts/a.bin", content=b"x" * 2048)
        assert r.status_code == 413, r.text
        assert r.json()["error"] == "ArtifactTooLargeError"
        assert r.json()["exit_code"] == 16
        with Store.open(url) as served, pytest.raises(ArtifactTooLargeError):
            served.put("s/t", {"a.bin": b"x" * 2048})
    assert git(store_path, "for-each-ref").stdout == ""


def test_the_server_answers_507_when_the_store_is_full(store_path: Path) -> None:
    _store(store_path, maxSize="1k")
    with running(store_path, ServerConfig(open_without_tokens=True)) as port:
        url = f"http://127.0.0.1:{port}"
        r = httpx.put(f"{url}/api/v1/tasks/s/t/artifacts/a.bin", content=b"x" * 4096)
        assert r.status_code == 507, r.text
        assert r.json()["error"] == "StoreFullError"
        with Store.open(url) as served, pytest.raises(StoreFullError) as caught:
            served.put("s/t", {"a.bin": b"x" * 4096})
        assert isinstance(caught.value, QuotaExceededError)
    assert git(store_path, "for-each-ref").stdout == ""
