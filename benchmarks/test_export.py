"""Figure (issue 13): export of a version of 1,000 files, against ``git archive | tar x``.

The version holds 1,000 text files of 1 to 16 KiB in 10 folders (about 8 MiB), put as one folder.
gitstore's export writes each file whole (a temp file renamed into place, with its mode), all of
them made durable before the renames when ``gitstore.fsync`` is on (the default: one syncfs, or an
fsync of each, see ``gitstore._fs.sync_files``); the peer is stock git streaming the same commit's
tree as a tar into ``tar x``, which writes each file once and fsyncs nothing. Both are measured
into a fresh folder per round, alternating, after ``os.sync()``; the export is called in process,
the peer is two child processes.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, GIT_ENV, _cached, quiet_disk, record, set_fsync

from gitstore import Store

FIGURE = "export 1,000 files (~8 MiB)"
FILES = 1000


def _make(root: Path) -> None:
    rnd = random.Random(13)
    words = [
        "agent",
        "step",
        "tool",
        "call",
        "patch",
        "test",
        "pass",
        "fail",
        "module",
        "value",
        "cache",
        "retry",
        "token",
    ]
    for i in range(FILES):
        d = root / f"part{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        size = rnd.randint(1024, 16 * 1024)
        lines = []
        total = 0
        while total < size:
            line = f"{i}:{total} " + " ".join(rnd.choices(words, k=8)) + "\n"
            lines.append(line)
            total += len(line)
        (d / f"f{i:04d}.log").write_text("".join(lines))


@pytest.fixture(scope="module")
def small_files() -> Path:
    return _cached(DATA / "folder-1000-small", _make)


@pytest.mark.parametrize("fsync", [True, False], ids=["fsync-default", "fsync-false"])
def test_export_vs_git_archive(
    benchmark: Any, workdir: Path, small_files: Path, fsync: bool
) -> None:
    store_path = workdir / "store"
    with Store.open(store_path, create=True) as s:
        commit = s.put("bench/export", {".": small_files}).commit
    set_fsync(store_path, fsync)
    store = Store.open(store_path)
    spent = {"ours": 0.0, "peer": 0.0}
    rounds = iter(range(1_000_000))

    def one_round() -> None:
        n = next(rounds)
        ours, peer = workdir / f"ours-{n}", workdir / f"peer-{n}"
        peer.mkdir()
        quiet_disk()
        t0 = time.perf_counter()
        written = store.export(f"bench/export@{commit}", ours)
        t1 = time.perf_counter()
        subprocess.run(
            f"git --git-dir='{store_path}' archive {commit} | tar x -C '{peer}'",
            shell=True,
            env=GIT_ENV,
            check=True,
        )
        t2 = time.perf_counter()
        assert len(written) == FILES
        spent["ours"] += t1 - t0
        spent["peer"] += t2 - t1
        shutil.rmtree(ours)
        shutil.rmtree(peer)

    benchmark.pedantic(one_round, rounds=8, warmup_rounds=1)
    store.close()
    label = "gitstore.fsync=true (default)" if fsync else "gitstore.fsync=false"
    record(FIGURE, f"gitstore export, {label}", spent["ours"] / 9)
    record(FIGURE, f"peer git archive | tar x (alternating, {label})", spent["peer"] / 9)
