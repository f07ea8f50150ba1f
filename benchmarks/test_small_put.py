"""Figure: put of a task with 3 small artifacts, one process (target >= 2,000/s, >= 40x git CLI).

Every put carries a counter in its content, so each one makes a new version; puts rotate over 10
tasks. Peers get the same three contents: the git plumbing script (one ``sh`` run per put) and the
plain-files store (in-process, like gitstore).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GIT_ENV, PEERS, git, mean_of, record, set_fsync

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
