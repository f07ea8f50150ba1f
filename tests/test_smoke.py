"""The smallest round trip: a put and a get, checked by stock git."""

from __future__ import annotations

from pathlib import Path

from support import fsck

from gitstore import Store


def test_put_then_get_round_trips_bytes_and_git_agrees(disk_store: Store, store_path: Path) -> None:
    version = disk_store.put("spec/task", {"log.log": b"hello\n"})
    assert disk_store.get("spec/task", "log.log") == b"hello\n"
    assert disk_store.get(version.artifact("log.log").uri) == b"hello\n"
    fsck(store_path)
