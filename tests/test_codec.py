"""Big blobs are standard zlib streams whichever codec wrote them (ISA-L or the stdlib)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import fsck, git

from gitstore import Store, _zlib

TEXT = b"".join(
    b"%06d INFO step %d of the run wrote %d bytes\n" % (i, i, i * 7) for i in range(60000)
)


@pytest.mark.parametrize("codec", ["default", "stdlib-only"])
def test_big_text_blob_round_trips_and_git_reads_it(
    codec: str, store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if codec == "stdlib-only":
        # What a machine without an ISA-L wheel runs.
        monkeypatch.setattr(_zlib, "_isal", None)
        monkeypatch.setattr(_zlib, "ERRORS", (__import__("zlib").error,))
    src = tmp_path / "run.log"
    src.write_bytes(TEXT)
    assert len(TEXT) > 2 << 20
    with Store.open(store_path, create=True) as store:
        oid = store.put("s/t", {"run.log": src}).artifact("run.log").oid
        assert store.get("s/t", "run.log", verify=True) == TEXT
    assert git(store_path, "cat-file", "-s", oid).stdout.strip() == str(len(TEXT))
    fsck(store_path)


def test_stdlib_reads_what_the_default_codec_wrote(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "run.log"
    src.write_bytes(TEXT + os.urandom(1024))
    with Store.open(store_path, create=True) as store:
        store.put("s/t", {"run.log": src})
    monkeypatch.setattr(_zlib, "_isal", None)
    with Store.open(store_path) as store:
        assert store.get("s/t", "run.log") == src.read_bytes()
