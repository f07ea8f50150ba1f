"""Figures: put, re-put and get of a 128 MiB artifact, next to git ``hash-object -w``/``cat-file``.

Targets: log put >= 2x faster than git and <= 64 MB peak RSS; random bytes >= 5x faster; re-put
<= 0.15 s; get >= 400 MB/s and <= 64 MB peak RSS. Inputs sit in the page cache (read once first).
Timed rounds run in this process; peak RSS comes from child processes under ``/usr/bin/time -v``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    BIG,
    GIT_ENV,
    git,
    mean_of,
    needs_time,
    python_tool,
    quiet_disk,
    record,
    set_fsync,
    time_v,
)

from gitstore import Store

pytestmark = needs_time()

ROUNDS = 3


def _fresh_store(base: Path, fsync: bool) -> Path:
    shutil.rmtree(base, ignore_errors=True)
    Store.open(base, create=True).close()
    if not fsync:
        set_fsync(base, False)
    return base


def _fresh_repo(base: Path) -> Path:
    shutil.rmtree(base, ignore_errors=True)
    git("init", "-q", "--bare", str(base))
    return base


FSYNC = pytest.mark.parametrize("fsync", [True, False], ids=["fsync-default", "fsync-false"])


def _fsync_label(fsync: bool) -> str:
    return "gitstore.fsync=true (default)" if fsync else "gitstore.fsync=false"


# -- put -------------------------------------------------------------------------------------


def _bench_put(benchmark: Any, workdir: Path, src: Path, fsync: bool) -> None:
    base = workdir / "store"

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        store = Store.open(_fresh_store(base, fsync))
        quiet_disk()
        return (store,), {}

    def put(store: Store) -> None:
        store.put("bench/big", {"big.log": src})
        store.close()

    benchmark.pedantic(put, setup=setup, rounds=ROUNDS)


def _bench_git(benchmark: Any, workdir: Path, src: Path) -> None:
    base = workdir / "repo.git"

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        repo = _fresh_repo(base)
        quiet_disk()
        return (repo,), {}

    def put(repo: Path) -> None:
        git("--git-dir", str(repo), "hash-object", "-w", str(src))

    benchmark.pedantic(put, setup=setup, rounds=ROUNDS)


@FSYNC
def test_put_log_gitstore(benchmark: Any, workdir: Path, big_log: Path, fsync: bool) -> None:
    _bench_put(benchmark, workdir, big_log, fsync)
    record("put 128 MiB log", f"gitstore {_fsync_label(fsync)}", mean_of(benchmark))


def test_put_log_peer_git(benchmark: Any, workdir: Path, big_log: Path) -> None:
    _bench_git(benchmark, workdir, big_log)
    record("put 128 MiB log", "peer git hash-object -w", mean_of(benchmark))


@FSYNC
def test_put_random_gitstore(benchmark: Any, workdir: Path, big_random: Path, fsync: bool) -> None:
    _bench_put(benchmark, workdir, big_random, fsync)
    record("put 128 MiB random", f"gitstore {_fsync_label(fsync)}", mean_of(benchmark))


def test_put_random_peer_git(benchmark: Any, workdir: Path, big_random: Path) -> None:
    _bench_git(benchmark, workdir, big_random)
    record("put 128 MiB random", "peer git hash-object -w", mean_of(benchmark))


@pytest.mark.parametrize("kind", ["log", "random"])
def test_put_rss(benchmark: Any, workdir: Path, big_log: Path, big_random: Path, kind: str) -> None:
    """Peak RSS of a child that puts the file (default settings), and of git hash-object -w."""
    src = big_log if kind == "log" else big_random
    figure = f"put 128 MiB {kind}"
    floor = time_v(python_tool("baseline.py", str(workdir / "floor")))["rss_mb"]
    out: dict[str, Any] = {}

    def run() -> None:
        out["ours"] = time_v(python_tool("put_file.py", str(workdir / "rss-store"), str(src)))

    benchmark.pedantic(run, rounds=1)
    ours = out["ours"]
    repo = _fresh_repo(workdir / "rss-repo.git")
    peer = time_v(["git", "--git-dir", str(repo), "hash-object", "-w", str(src)])
    record(
        figure,
        "gitstore child process (peak RSS)",
        None,
        rss_mb=ours["rss_mb"],
        put_s=json.loads(ours["stdout"])["seconds"],
        python_floor_rss_mb=floor,
    )
    record(figure, "peer git hash-object -w (peak RSS)", None, rss_mb=peer["rss_mb"])


# -- re-put ----------------------------------------------------------------------------------


def test_reput_same_path(benchmark: Any, workdir: Path, big_log: Path) -> None:
    """Re-put of the same file: the stat index may skip hashing. The first put may be racy (the
    index distrusts files modified < 1 s before recording), so: put, wait > 1 s, put, measure."""
    store = Store.open(workdir / "store", create=True)
    store.put("bench/big", {"big.log": big_log})
    time.sleep(1.2)
    store.put("bench/big", {"big.log": big_log})

    def reput() -> None:
        v = store.put("bench/big", {"big.log": big_log})
        assert not v.created

    benchmark.pedantic(reput, rounds=10, warmup_rounds=1)
    record("re-put same 128 MiB", "gitstore same path (stat index)", mean_of(benchmark))
    store.close()


def test_reput_other_path(benchmark: Any, workdir: Path, big_log: Path) -> None:
    """Same bytes at another path whose mtime moves before every round: only hashing dedups."""
    store = Store.open(workdir / "store", create=True)
    store.put("bench/big", {"big.log": big_log})
    copy = workdir / "copy.log"
    shutil.copyfile(big_log, copy)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        t = time.time() - 10
        os.utime(copy, (t, t + (time.monotonic_ns() % 997) / 1000))
        return (), {}

    def reput() -> None:
        v = store.put("bench/big", {"big.log": copy})
        assert not v.created

    benchmark.pedantic(reput, setup=setup, rounds=5, warmup_rounds=1)
    record("re-put same 128 MiB", "gitstore other path (hashing only)", mean_of(benchmark))
    store.close()


def test_reput_stream(benchmark: Any, workdir: Path, big_log: Path) -> None:
    """Same bytes as a binary stream (size unknown up front: the store spools, then hashes)."""
    store = Store.open(workdir / "store", create=True)
    store.put("bench/big", {"big.log": big_log})

    def reput() -> None:
        with open(big_log, "rb") as f:
            v = store.put("bench/big", {"big.log": f})
        assert not v.created

    benchmark.pedantic(reput, rounds=5, warmup_rounds=1)
    record("re-put same 128 MiB", "gitstore stream (spool + hashing)", mean_of(benchmark))
    store.close()


def test_reput_peer_git(benchmark: Any, workdir: Path, big_log: Path) -> None:
    """git hash-object -w of a file whose object already exists (git hashes, then skips)."""
    repo = _fresh_repo(workdir / "repo.git")
    git("--git-dir", str(repo), "hash-object", "-w", str(big_log))
    benchmark.pedantic(
        lambda: git("--git-dir", str(repo), "hash-object", "-w", str(big_log)), rounds=5
    )
    record("re-put same 128 MiB", "peer git hash-object -w (object exists)", mean_of(benchmark))


# -- get -------------------------------------------------------------------------------------


def _store_with(workdir: Path, src: Path) -> Store:
    store = Store.open(workdir / "store", create=True)
    store.put("bench/big", {"big.log": src})
    return store


@pytest.mark.parametrize("kind", ["log", "random"])
def test_get_gitstore(
    benchmark: Any, workdir: Path, big_log: Path, big_random: Path, kind: str
) -> None:
    src = big_log if kind == "log" else big_random
    store = _store_with(workdir, src)

    def get() -> None:
        n = 0
        with store.open_artifact("bench/big", "big.log") as f, open(os.devnull, "wb") as out:
            for chunk in f.iter_chunks():
                out.write(chunk)
                n += len(chunk)
        assert n == BIG

    benchmark.pedantic(get, rounds=5, warmup_rounds=1)
    s = mean_of(benchmark)
    record(f"get 128 MiB {kind}", "gitstore open_artifact -> /dev/null", s, mb_per_s=BIG / s / 1e6)
    store.close()


@pytest.mark.parametrize("kind", ["log", "random"])
def test_get_peer_git(
    benchmark: Any, workdir: Path, big_log: Path, big_random: Path, kind: str
) -> None:
    src = big_log if kind == "log" else big_random
    repo = _fresh_repo(workdir / "repo.git")
    oid = git("--git-dir", str(repo), "hash-object", "-w", str(src)).strip()

    def get() -> None:
        with open(os.devnull, "wb") as out:
            subprocess.run(
                ["git", "--git-dir", str(repo), "cat-file", "blob", oid],
                stdout=out,
                env=GIT_ENV,
                check=True,
            )

    benchmark.pedantic(get, rounds=5, warmup_rounds=1)
    s = mean_of(benchmark)
    record(f"get 128 MiB {kind}", "peer git cat-file blob -> /dev/null", s, mb_per_s=BIG / s / 1e6)


def test_get_rss(benchmark: Any, workdir: Path, big_log: Path) -> None:
    """Peak RSS of a child that streams the 128 MiB log artifact to /dev/null."""
    _store_with(workdir, big_log).close()
    out: dict[str, Any] = {}

    def run() -> None:
        argv = python_tool("get_file.py", str(workdir / "store"), "bench/big", "big.log")
        out["r"] = time_v(argv)

    benchmark.pedantic(run, rounds=1)
    r = out["r"]
    s = json.loads(r["stdout"])["seconds"]
    record(
        "get 128 MiB log",
        "gitstore child process (peak RSS)",
        None,
        rss_mb=r["rss_mb"],
        get_s=s,
        mb_per_s=BIG / s / 1e6,
    )
