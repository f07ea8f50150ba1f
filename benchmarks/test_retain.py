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
    import time

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
