"""Figures: whole-store reads at 10k and 100k tasks (issue 13).

* ``log --jsonl`` of a 10k-task store against the git pipeline that reads the same manifests
  (``git for-each-ref`` piped into ``git cat-file --batch`` of ``<head>:.gitstore/manifest.json``),
  both as processes writing to /dev/null, alternating round by round (target >= 0.5x); the same
  over 100k tasks (target < 10 s);
* ``find`` over 100k tasks: the first query, which builds the index (target < 10 s), and a
  query on a fresh handle with the index on disk (target < 0.5 s): by run id (answered mostly
  from the index's words) and by time (every record decoded);
* ``ls SPEC`` of a spec with 100k tasks against ``git for-each-ref`` of the same refs (target
  within 1.5x).

The stores are made by ``tools/build_store.py`` (one small version per task, objects in packs of
100k objects, one loose ref per task) and cached under the bench data folder; ``store-100k`` is
the one ``test_scale.py`` uses.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, GIT_ENV, TOOLS, mean_of, record

from gitstore import Store
from gitstore.query import find, write_jsonl


def _built(name: str, tasks: int, specs: int) -> Path:
    path = DATA / name
    done = path / "gitstore-bench-built"
    if done.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    argv = [sys.executable, str(TOOLS / "build_store.py"), str(path), str(tasks), str(specs)]
    subprocess.run(argv, check=True)
    done.write_text(f"{tasks}\n")
    return path


@pytest.fixture(scope="module")
def store10k() -> Path:
    return _built("store-10k", 10_000, 10)


@pytest.fixture(scope="module")
def store100k() -> Path:
    return _built("store-100k", 100_000, 10)


@pytest.fixture(scope="module")
def spec100k() -> Path:
    return _built("store-100k-1spec", 100_000, 1)


def _gitstore(store: Path, *args: str) -> Callable[[], None]:
    argv = [sys.executable, "-m", "gitstore", "--store", str(store), *args]
    return lambda: _quiet(argv)


def _quiet(argv: list[str] | str) -> None:
    subprocess.run(
        argv, shell=isinstance(argv, str), stdout=subprocess.DEVNULL, check=True, env=GIT_ENV
    )


def _git_pipeline(store: Path, prefix: str = "refs/artifacts/") -> str:
    git = f"git --git-dir={store}"
    return (
        f"{git} for-each-ref --format='%(objectname):.gitstore/manifest.json' {prefix}"
        f" | {git} cat-file --batch"
    )


def _alternating(
    benchmark: Any,
    ours: Callable[[], None],
    peer: Callable[[], None],
    n: int,
    prepare: Callable[[], None] | None = None,
) -> float:
    """Run ``ours`` as the benchmark and ``peer`` right before each of its rounds (untimed by
    the benchmark), then ``prepare`` (untimed by both); return the peer's mean seconds.

    The peer runs once more first, untimed, so that no side's first round reads the store from
    disk while the other's are served from the page cache."""
    peer_times: list[float] = []
    peer()

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        t = time.perf_counter()
        peer()
        peer_times.append(time.perf_counter() - t)
        if prepare is not None:
            prepare()
        return (), {}

    benchmark.pedantic(ours, setup=setup, rounds=n)
    return statistics.mean(peer_times)


LOG10K = "log --jsonl, 10k tasks (target >= 0.5x git pipeline)"
LOG100K = "log --jsonl, 100k tasks (target < 10 s)"
FIND = "find over 100k tasks (target < 0.5 s; first < 10 s)"
LS = "ls SPEC, 100k tasks (target within 1.5x for-each-ref)"
LS_CPU = "ls SPEC, 100k tasks, CPU seconds (within 1.5x)"


def _index(store: Path) -> Path:
    return store / "gitstore" / "index" / "versions.msgpack"


def _with_index(store: Path, warm: bool) -> Callable[[], None]:
    """Before a round: the index there (warm), or not (cold: every version is read)."""

    def prepare() -> None:
        if warm:
            with Store.open(store) as s:
                find(s, run="x")
        else:
            _index(store).unlink(missing_ok=True)

    return prepare


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_log_jsonl_10k_cli(benchmark: Any, store10k: Path, warm: bool) -> None:
    seconds = _alternating(
        benchmark,
        _gitstore(store10k, "log", "--jsonl"),
        lambda: _quiet(_git_pipeline(store10k)),
        5,
        _with_index(store10k, warm),
    )
    kind = "warm" if warm else "cold"
    record(LOG10K, f"peer: for-each-ref | cat-file --batch ({kind} round)", seconds)
    record(LOG10K, f"gitstore log --jsonl, {kind} index (process)", mean_of(benchmark))


def test_log_jsonl_10k_in_process(benchmark: Any, store10k: Path) -> None:
    def run() -> None:
        with Store.open(store10k) as s, open(os.devnull, "w") as out:
            assert write_jsonl(s, out) == 10_000

    _with_index(store10k, True)()
    peer = _alternating(benchmark, run, lambda: _quiet(_git_pipeline(store10k)), 5)
    record(LOG10K, "peer: for-each-ref | cat-file --batch (in-process round)", peer)
    record(LOG10K, "gitstore write_jsonl, warm index (in process)", mean_of(benchmark))


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_log_jsonl_100k_cli(benchmark: Any, store100k: Path, warm: bool) -> None:
    seconds = _alternating(
        benchmark,
        _gitstore(store100k, "log", "--jsonl"),
        lambda: _quiet(_git_pipeline(store100k)),
        1,
        _with_index(store100k, warm),
    )
    kind = "warm" if warm else "cold"
    record(LOG100K, f"peer: for-each-ref | cat-file --batch ({kind} round)", seconds)
    record(LOG100K, f"gitstore log --jsonl, {kind} index (process)", mean_of(benchmark))


def test_find_first_query_builds_the_index(benchmark: Any, store100k: Path) -> None:
    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        _index(store100k).unlink(missing_ok=True)
        return (), {}

    def run() -> None:
        with Store.open(store100k) as s:
            assert find(s, run="run-7", artifacts=False) == []

    benchmark.pedantic(run, setup=setup, rounds=1)
    record(FIND, "gitstore first query (builds the index)", mean_of(benchmark))


@pytest.mark.parametrize("query", ["run", "since"])
def test_find_with_the_index(benchmark: Any, store100k: Path, query: str) -> None:
    _with_index(store100k, True)()

    def run() -> None:
        with Store.open(store100k) as s:
            if query == "run":
                hits = find(s, run="run-7", artifacts=False)
            else:
                hits = find(s, since="2999-01-01", artifacts=False)
            assert hits == []

    benchmark.pedantic(run, rounds=5)
    record(FIND, f"gitstore indexed query by {query}, fresh handle", mean_of(benchmark))


def test_find_with_the_index_cli(benchmark: Any, store100k: Path) -> None:
    _with_index(store100k, True)()
    benchmark.pedantic(_gitstore(store100k, "find", "--run", "run-7"), rounds=3)
    record(FIND, "gitstore find --run (process, index on disk)", mean_of(benchmark))


def _cpu_into(spent: list[float], run: Callable[[], None]) -> Callable[[], None]:
    """``run``, adding the CPU seconds (user + system) of the processes it waited for to
    ``spent``: what an idle machine's wall clock would show, where other work shares the CPU."""

    def measured() -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

    return measured


def test_ls_spec_100k(benchmark: Any, spec100k: Path) -> None:
    ours_cpu: list[float] = []
    peer_cpu: list[float] = []
    peer = _alternating(
        benchmark,
        _cpu_into(ours_cpu, _gitstore(spec100k, "ls", "spec0")),
        _cpu_into(
            peer_cpu,
            lambda: _quiet(
                ["git", f"--git-dir={spec100k}", "for-each-ref", "refs/artifacts/spec0/"]
            ),
        ),
        5,
    )
    record(LS, "peer: git for-each-ref", peer)
    record(LS, "gitstore ls spec0 (process)", mean_of(benchmark))
    record(LS_CPU, "peer: git for-each-ref (CPU)", statistics.mean(peer_cpu))
    record(LS_CPU, "gitstore ls spec0 (process, CPU)", statistics.mean(ours_cpu))
