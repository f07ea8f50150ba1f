"""Figure: ``retain`` over 10k tasks with 10 versions each (100k versions), plan and apply.

The store (``tools/build_retain_store.py``: one version a day per task, a diff and a log each) is
built once and cached under the bench data folder. Each figure is measured next to stock git
doing the same reading or writing in the same run:

* plan (``Store.retain(keep_last=3)``, a dry run reading every version's manifest) against
  ``git for-each-ref`` + ``git rev-list`` of every task + ``git cat-file --batch`` of every
  version's manifest: the data the planner needs, read by git's fastest path;
* apply (``Store.retain(keep_last=3, apply=True)``: 70k versions dropped, 10k chains rewritten,
  on a fresh copy of the store each round) against ``git fast-export | git fast-import`` of
  every chain of the same copy: stock git's fastest way to rewrite every commit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, GIT_ENV, TOOLS, mean_of, quiet_disk, record, set_fsync

from gitstore import Store

TASKS = 10_000
VERSIONS = 10
KEEP = 3


def _build() -> Path:
    path = DATA / f"retain-{TASKS // 1000}k-x{VERSIONS}"
    done = path / "gitstore-bench-built"
    if done.exists():
        return path
    if path.exists():
        shutil.rmtree(path)
    argv = [
        sys.executable,
        str(TOOLS / "build_retain_store.py"),
        str(path),
        str(TASKS),
        str(VERSIONS),
    ]
    subprocess.run(argv, check=True)
    done.write_text(f"{TASKS} x {VERSIONS}\n")
    return path


@pytest.fixture(scope="module")
def retain_store() -> Iterator[Path]:
    path = _build()
    set_fsync(path, False)
    quiet_disk()
    yield path


def test_retain_plan(benchmark: Any, retain_store: Path) -> None:
    def plan() -> int:
        with Store.open(retain_store) as store:
            return store.retain(keep_last=KEEP).dropped

    dropped = benchmark.pedantic(plan, rounds=3, warmup_rounds=1)
    assert dropped == TASKS * (VERSIONS - KEEP)
    ours = mean_of(benchmark)
    peer = _git_read_manifests(retain_store)
    record(
        f"retain plan, {TASKS} tasks x {VERSIONS} versions",
        "gitstore",
        ours,
        peer_s=peer,
        vs_peer=peer / ours,
    )
    record(
        f"retain plan, {TASKS} tasks x {VERSIONS} versions",
        "git for-each-ref + rev-list + cat-file --batch of the manifests",
        peer,
    )


def _git_read_manifests(store: Path) -> float:
    """Seconds stock git takes to list every task and read every version's manifest."""
    script = (
        "git for-each-ref --format='%(objectname)' refs/artifacts/ "
        "| git rev-list --stdin "
        "| sed 's|$|:.gitstore/manifest.json|' "
        "| git cat-file --batch > /dev/null"
    )
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            ["sh", "-c", script],
            env={**GIT_ENV, "GIT_DIR": str(store)},
            check=True,
        )
        best = min(best, time.perf_counter() - t0)
    return best


def test_retain_apply(benchmark: Any, retain_store: Path, tmp_path: Path) -> None:
    copies = iter(range(1_000))

    def fresh() -> tuple[tuple[Path], dict[str, Any]]:
        copy = tmp_path / f"copy-{next(copies)}"
        shutil.copytree(retain_store, copy, symlinks=True)
        quiet_disk()
        return (copy,), {}

    def apply(copy: Path) -> None:
        with Store.open(copy) as store:
            plan = store.retain(keep_last=KEEP, apply=True)
        assert plan.dropped == TASKS * (VERSIONS - KEEP)
        assert not any(t.skipped for t in plan.tasks)

    benchmark.pedantic(apply, setup=fresh, rounds=1, iterations=1)
    ours = mean_of(benchmark)
    peer = _git_replay_chains(retain_store, tmp_path)
    figure = f"retain apply, {TASKS} tasks x {VERSIONS} versions (keep-last {KEEP})"
    record(figure, "gitstore", ours, peer_s=peer, vs_peer=peer / ours)
    record(figure, "git fast-export --no-data | git fast-import of every chain", peer)


def _git_replay_chains(store: Path, tmp_path: Path) -> float:
    """Seconds stock git takes to write every task's chain again (its commits and trees) into
    a fresh repository that borrows the blobs (``objects/info/alternates``)."""
    target = tmp_path / "replayed.git"
    subprocess.run(["git", "init", "-q", "--bare", str(target)], env=GIT_ENV, check=True)
    (target / "objects" / "info" / "alternates").write_text(f"{store / 'objects'}\n")
    quiet_disk()
    t0 = time.perf_counter()
    subprocess.run(
        [
            "sh",
            "-c",
            f"git --git-dir='{store}' fast-export --no-data --all "
            f"| git --git-dir='{target}' fast-import --quiet",
        ],
        env=GIT_ENV,
        check=True,
    )
    return time.perf_counter() - t0
