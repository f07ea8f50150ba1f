"""Figure: re-put of an unchanged folder of 1,000 files, 256 MiB in all (target <= 0.3 s).

The store's stat index lets the re-put skip reading files whose stat data is unchanged. It
distrusts entries recorded less than 1 s after a file's mtime, so the folder is put, then put
again after a pause (recording trustworthy entries), then measured. The peer is git's own stat
index: ``git add -A`` + ``git write-tree`` over the same, unchanged folder (prepared the same way).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conftest import git, mean_of, quiet_disk, record

from gitstore import Store

FIGURE = "re-put unchanged folder 1,000 files 256 MiB"


def test_reput_folder_gitstore(benchmark: Any, workdir: Path, folder_1000: Path) -> None:
    store = Store.open(workdir / "store", create=True)
    first = store.put("bench/folder", {"out": folder_1000})
    assert len(first.artifacts) == 1000
    time.sleep(1.2)
    store.put("bench/folder", {"out": folder_1000})
    quiet_disk()

    def reput() -> None:
        v = store.put("bench/folder", {"out": folder_1000})
        assert not v.created

    benchmark.pedantic(reput, rounds=10, warmup_rounds=1)
    record(FIGURE, "gitstore (stat index)", mean_of(benchmark))
    store.close()


def test_reput_folder_peer_git(benchmark: Any, workdir: Path, folder_1000: Path) -> None:
    repo = workdir / "repo.git"
    git("init", "-q", "--bare", str(repo))
    args = ["--git-dir", str(repo), "--work-tree", str(folder_1000)]
    git(*args, "add", "-A")
    time.sleep(1.2)
    git(*args, "add", "-A")
    quiet_disk()

    def reput() -> None:
        git(*args, "add", "-A")
        git(*args, "write-tree")

    benchmark.pedantic(reput, rounds=10, warmup_rounds=1)
    record(FIGURE, "peer git add -A + write-tree (git index)", mean_of(benchmark))
