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

import resource
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


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_peer(script: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (all its processes) of a shell pipeline of stock git."""
    quiet_disk()
    cpu0, t0 = _cpu_of_children(), time.perf_counter()
    subprocess.run(["sh", "-c", script], env=env, check=True)
    return time.perf_counter() - t0, _cpu_of_children() - cpu0


def _record(
    figure: str, peer_name: str, ours: tuple[float, float], peer: tuple[float, float]
) -> None:
    """Both sides' wall and CPU seconds: on a shared machine CPU seconds compare more fairly."""
    record(
        figure,
        "gitstore",
        ours[0],
        cpu_s=ours[1],
        peer_s=peer[0],
        peer_cpu_s=peer[1],
        vs_peer=peer[0] / ours[0],
        vs_peer_cpu=peer[1] / ours[1],
    )
    record(figure, peer_name, peer[0], cpu_s=peer[1])


def test_retain_plan(benchmark: Any, retain_store: Path) -> None:
    cpu: list[float] = []

    def plan() -> int:
        c0 = time.process_time()
        with Store.open(retain_store) as store:
            dropped = store.retain(keep_last=KEEP).dropped
        cpu.append(time.process_time() - c0)
        return dropped

    # One round: a store-wide plan reads 100k manifests, and every round reads them afresh.
    dropped = benchmark.pedantic(plan, rounds=1, iterations=1)
    assert dropped == TASKS * (VERSIONS - KEEP)
    peer = _run_peer(
        "git for-each-ref --format='%(objectname)' refs/artifacts/ "
        "| git rev-list --stdin "
        "| sed 's|$|:.gitstore/manifest.json|' "
        "| git cat-file --batch > /dev/null",
        {**GIT_ENV, "GIT_DIR": str(retain_store)},
    )
    _record(
        f"retain plan, {TASKS} tasks x {VERSIONS} versions",
        "git for-each-ref | rev-list | cat-file --batch of every manifest",
        (mean_of(benchmark), cpu[0]),
        peer,
    )


def test_retain_apply(benchmark: Any, retain_store: Path, tmp_path: Path) -> None:
    copies = iter(range(1_000))
    cpu: list[float] = []

    def fresh() -> tuple[tuple[Path], dict[str, Any]]:
        copy = tmp_path / f"copy-{next(copies)}"
        shutil.copytree(retain_store, copy, symlinks=True)
        quiet_disk()
        return (copy,), {}

    def apply(copy: Path) -> None:
        c0 = time.process_time()
        with Store.open(copy) as store:
            plan = store.retain(keep_last=KEEP, apply=True)
        cpu.append(time.process_time() - c0)
        assert plan.dropped == TASKS * (VERSIONS - KEEP)
        assert not any(t.skipped for t in plan.tasks)

    benchmark.pedantic(apply, setup=fresh, rounds=1, iterations=1)
    # The peer writes every task's chain again (commits and trees) into a fresh repository
    # that borrows the blobs: stock git's fastest way to replay every chain.
    target = tmp_path / "replayed.git"
    subprocess.run(["git", "init", "-q", "--bare", str(target)], env=GIT_ENV, check=True)
    (target / "objects" / "info" / "alternates").write_text(f"{retain_store / 'objects'}\n")
    peer = _run_peer(
        f"git --git-dir='{retain_store}' fast-export --no-data --all "
        f"| git --git-dir='{target}' fast-import --quiet",
        GIT_ENV,
    )
    _record(
        f"retain apply, {TASKS} tasks x {VERSIONS} versions (keep-last {KEEP})",
        "git fast-export --no-data | git fast-import of every chain",
        (mean_of(benchmark), cpu[0]),
        peer,
    )
