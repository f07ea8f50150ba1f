"""Files written whole: the one helper every whole-file write goes through, and the config updates
built on it (git's ``config.lock``, read inside the lock).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from support import git

from gitstore import Artifact, Store, StoreError, add_remote, remotes
from gitstore._fs import Busy, atomic_write
from gitstore.backend import config


def test_a_file_is_replaced_whole_with_the_mode_asked_for(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"a much longer previous content")
    with atomic_write(str(target), mode=0o755) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert os.listdir(tmp_path) == ["f"]


def test_an_error_inside_leaves_the_file_as_it_was_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(str(target)) as f:
        f.write(b"half of the new")
        raise RuntimeError("the source failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_a_file_that_cannot_be_created_is_named_not_its_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "f"
    with pytest.raises(FileNotFoundError) as raised, atomic_write(str(target)) as f:
        f.write(b"x")
    assert raised.value.filename == str(target)


def test_with_lock_a_live_lock_of_another_writer_is_waited_for_then_busy(tmp_path: Path) -> None:
    target = tmp_path / "f"
    with atomic_write(str(target), lock=True) as f:
        assert (tmp_path / "f.lock").exists()  # git's lock name: stock git waits for it too
        with pytest.raises(Busy), atomic_write(str(target), lock=True, wait=0.05):
            pass
        f.write(b"first")
    assert target.read_bytes() == b"first"
    assert not (tmp_path / "f.lock").exists()


def test_a_config_lock_held_elsewhere_is_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.open(tmp_path / "s.git", create=True)
    monkeypatch.setattr(config, "LOCK_WAIT", 0.05)
    # A fresh lock file (a git command writing the config right now) is not broken.
    (tmp_path / "s.git" / "config.lock").write_bytes(b"")
    with pytest.raises(StoreError, match=r"config\.lock"):
        add_remote(store, "origin", str(tmp_path / "r.git"))
    assert remotes(store) == []
    store.close()


def test_config_updates_at_once_all_land(tmp_path: Path) -> None:
    """Each update reads the config inside its lock: none overwrites another's change."""
    store = Store.open(tmp_path / "s.git", create=True)

    def add(first: int) -> None:
        for i in range(first, first + 15):
            add_remote(store, f"r{i}", f"/srv/r{i}.git")

    threads = [threading.Thread(target=add, args=(n * 100,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(remotes(store)) == 45
    assert git(tmp_path / "s.git", "config", "remote.r214.url").stdout.strip() == "/srv/r214.git"
    store.close()


def test_an_update_keeps_the_includes_of_the_config(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.git", create=True)
    (tmp_path / "extra.config").write_text("[user]\n\tname = included\n\temail = i@example\n")
    git(tmp_path / "s.git", "config", "include.path", str(tmp_path / "extra.config"))
    add_remote(store, "origin", "/srv/r.git")
    text = (tmp_path / "s.git" / "config").read_text()
    assert "include" in text and "included" not in text
    assert Store.open(tmp_path / "s.git").settings.identity == b"included <i@example>"
    store.close()


def test_save_artifact_writes_the_bytes_and_the_executable_bit(tmp_path: Path) -> None:
    with Store.memory() as store:
        store.put("s/t", {"run.sh": Artifact(b"#!/bin/sh\n", executable=True)})
        store.put("s/t", {"run.sh": b"#!/bin/sh\necho hi\n"})
        info = store.save_artifact("s/t@v1", tmp_path / "out.sh", "run.sh")
    assert (tmp_path / "out.sh").read_bytes() == b"#!/bin/sh\n" and info.size == 10
    assert stat.S_IMODE((tmp_path / "out.sh").stat().st_mode) == 0o755
