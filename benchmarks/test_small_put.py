"""Figure: put of a task with 3 small artifacts, one process (target >= 2,000/s, >= 40x git CLI);
issue 13: durable small puts through the batch path at least as fast as the plain-files peer.

Every put carries a counter in its content, so each one makes a new version; puts rotate over 10
tasks. Peers get the same three contents: the git plumbing script (one ``sh`` run per put) and the
plain-files store (in-process, like gitstore; no fsync, no locking).

The batch figures (``put_many``, ``store.batch()``, threads coalescing) alternate rounds with the
plain-files peer inside one measured function, so both see the same disk at the same moment (this
disk's speed moves by several times with what else runs); each side's time is taken apart and the
ratio reported.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GIT_ENV, PEERS, git, mean_of, quiet_disk, record, set_fsync

from gitstore import Store

sys.path.insert(0, str(PEERS))
import plainfiles  # a peer script, importable once its folder is on the path

FIGURE = "put 3 small artifacts (puts/s)"
TASKS = 10
_LOG = "".join(f"step {i}: tool call ok, 12 files changed, tests 41 passed\n" for i in range(32))
_DIFF = "--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n-old line\n+new line\n" * 16


def contents(i: int) -> dict[str, bytes]:
    """The three artifacts of put number ``i``: ~2 KB log, ~1 KB diff, a small JSON."""
    return {
        "run.log": f"{_LOG}put {i}\n".encode(),
        "change.diff": f"{_DIFF}# {i}\n".encode(),
        "result.json": b'{"passed": 41, "failed": 0, "put": %d}' % i,
    }


def _report(benchmark: object, role: str) -> None:
    s = mean_of(benchmark)
    record(FIGURE, role, s, puts_per_s=1 / s)


@pytest.mark.parametrize("fsync", [True, False], ids=["fsync-default", "fsync-false"])
def test_gitstore(benchmark: object, tmp_path: Path, fsync: bool) -> None:
    store_path = tmp_path / "store"
    Store.open(store_path, create=True).close()
    if not fsync:
        set_fsync(store_path, False)
    store = Store.open(store_path)
    counter = itertools.count()

    def put() -> None:
        i = next(counter)
        v = store.put(f"bench/task{i % TASKS}", contents(i))
        assert v.created

    rounds = 600 if fsync else 2000
    benchmark.pedantic(put, rounds=rounds, warmup_rounds=20)  # type: ignore[attr-defined]
    label = "gitstore.fsync=true (default)" if fsync else "gitstore.fsync=false"
    _report(benchmark, f"gitstore {label}")
    store.close()


def test_peer_git_plumbing(benchmark: object, tmp_path: Path) -> None:
    repo = tmp_path / "repo.git"
    git("init", "-q", "--bare", str(repo))
    src = tmp_path / "src"
    src.mkdir()
    counter = itertools.count()
    script = str(PEERS / "git_put.sh")

    def put() -> None:
        i = next(counter)
        paths = []
        for name, data in contents(i).items():
            p = src / name
            p.write_bytes(data)
            paths.append(str(p))
        subprocess.run(
            ["sh", script, str(repo), f"refs/artifacts/bench/task{i % TASKS}", *paths],
            env=GIT_ENV,
            check=True,
        )

    benchmark.pedantic(put, rounds=60, warmup_rounds=3)  # type: ignore[attr-defined]
    _report(benchmark, "peer git plumbing script")
    assert git("--git-dir", str(repo), "rev-list", "--count", "refs/artifacts/bench/task0")


def test_peer_plain_files(benchmark: object, tmp_path: Path) -> None:
    root = str(tmp_path / "plain")
    counter = itertools.count()
    fn: Callable[[], int] = lambda: _plain(root, next(counter))  # noqa: E731
    benchmark.pedantic(fn, rounds=3000, warmup_rounds=20)  # type: ignore[attr-defined]
    _report(benchmark, "peer plain files + metadata.json")


def _plain(root: str, i: int) -> int:
    return plainfiles.put(root, f"bench/task{i % TASKS}", contents(i))


BATCH_FIGURE = "durable small puts, batch path vs plain files (puts/s)"
BATCH = 100
THREADS = 8


def _alternate(
    benchmark: object, tmp_path: Path, label: str, ours: Callable[[list[int]], None], rounds: int
) -> None:
    """Run ``ours`` (BATCH puts numbered as given) and the plain-files peer on the same numbers,
    alternately, ``rounds`` times; record both rates and their ratio."""
    root = str(tmp_path / "plain")
    counter = itertools.count()
    spent = {"ours": 0.0, "peer": 0.0}

    def one_round() -> None:
        numbers = [next(counter) for _ in range(BATCH)]
        quiet_disk()
        t0 = time.perf_counter()
        ours(numbers)
        t1 = time.perf_counter()
        for i in numbers:
            _plain(root, i)
        t2 = time.perf_counter()
        spent["ours"] += t1 - t0
        spent["peer"] += t2 - t1

    benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=1)  # type: ignore[attr-defined]
    # The warm-up round is in ``spent`` too: both sides ran it.
    n = (rounds + 1) * BATCH
    ours_s, peer_s = spent["ours"] / n, spent["peer"] / n
    record(BATCH_FIGURE, f"gitstore {label}", ours_s, puts_per_s=1 / ours_s)
    record(
        BATCH_FIGURE, f"peer plain files (alternating with {label})", peer_s, puts_per_s=1 / peer_s
    )


def _durable_store(tmp_path: Path) -> Store:
    path = tmp_path / "store"
    Store.open(path, create=True).close()
    set_fsync(path, True)
    return Store.open(path)


def test_put_many_vs_plain_files(benchmark: object, tmp_path: Path) -> None:
    store = _durable_store(tmp_path)

    def ours(numbers: list[int]) -> None:
        versions = store.put_many([(f"bench/task{i % TASKS}", contents(i)) for i in numbers])
        assert all(v.created for v in versions)

    _alternate(benchmark, tmp_path, f"put_many of {BATCH}, fsync=true", ours, rounds=20)
    store.close()


def test_batch_block_vs_plain_files(benchmark: object, tmp_path: Path) -> None:
    store = _durable_store(tmp_path)

    def ours(numbers: list[int]) -> None:
        with store.batch() as b:
            pending = [b.put(f"bench/task{i % TASKS}", contents(i)) for i in numbers]
        assert all(p.version.created for p in pending)

    _alternate(benchmark, tmp_path, f"store.batch() of {BATCH}, fsync=true", ours, rounds=20)
    store.close()


def test_threads_group_commit_vs_plain_files(benchmark: object, tmp_path: Path) -> None:
    store = _durable_store(tmp_path)

    def ours(numbers: list[int]) -> None:
        def worker(mine: list[int]) -> None:
            for i in mine:
                assert store.put(f"bench/task{i % TASKS}", contents(i)).created

        threads = [
            threading.Thread(target=worker, args=(numbers[k::THREADS],)) for k in range(THREADS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    _alternate(benchmark, tmp_path, f"{THREADS} threads x put, fsync=true", ours, rounds=10)
    store.close()
