"""Figure: a query over 10k tasks answers in well under a second (issue 5).

The store holds 10,000 tasks in 10 specs, one version each, written by 100 runs, artifacts tagged
with one of three models; built in memory by gitstore and written out as packs plus one loose ref
per task (as ``tools/build_store.py`` does), cached under the bench data folder. Measured:

* the first query of a fresh store (no index yet: every manifest is read once, the index written);
* a query on a fresh handle with the index on disk (the refs are read and checked against it);
* the same after one task moved (one task re-read).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, mean_of, record
from dulwich.object_store import DiskObjectStore

from gitstore import Store
from gitstore.backend.objects import MemoryObjects
from gitstore.backend.refs import MemoryRefs
from gitstore.query import find

TASKS = 10_000
ROUNDS = 5
FIGURE = "query over 10k tasks (target well under 1 s)"


def _build(path: Path) -> None:
    Store.open(path, create=True).close()
    memory = MemoryObjects()
    mem = Store(memory, MemoryRefs())
    heads = {}
    for i in range(TASKS):
        address = f"spec{i % 10}/task{i}"
        v = mem.put(
            address,
            {"log.log": f"task {i}\n", "test.json": b'{"t": %d}' % i},
            run_id=f"run-{i % 100}",
            tags={"model": f"m{i % 3}"},
        )
        heads[address] = v.commit
    source = memory.store
    disk = DiskObjectStore(os.path.join(path, "objects"))
    disk.add_objects([(source[oid], None) for oid in list(source)])
    disk.close()
    for address, commit in heads.items():
        ref = path / "refs" / "artifacts" / address
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit + "\n")


@pytest.fixture(scope="module")
def store10k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cached = DATA / "store-10k-runs"
    if not cached.exists():
        tmp = DATA / "store-10k-runs.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _build(tmp)
        tmp.rename(cached)
    work = tmp_path_factory.mktemp("q") / "store"
    shutil.copytree(cached, work)
    return work


def _index(path: Path) -> Path:
    return path / "gitstore" / "index" / "versions.msgpack"


def test_query_first_builds_the_index(benchmark: Any, store10k: Path) -> None:
    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        _index(store10k).unlink(missing_ok=True)
        return (), {}

    def run() -> None:
        with Store.open(store10k) as s:
            assert len(find(s, run="run-7")) == TASKS // 100

    benchmark.pedantic(run, setup=setup, rounds=1)
    record(FIGURE, "gitstore first query, no index (builds it)", mean_of(benchmark))


def test_query_with_index(benchmark: Any, store10k: Path) -> None:
    with Store.open(store10k) as s:
        find(s, run="run-1")  # the index exists from here on

    def run() -> None:
        with Store.open(store10k) as s:
            hits = find(s, run="run-7", tags={"model": "m1"})
            assert len(hits) == 33 or len(hits) == 34

    benchmark.pedantic(run, rounds=ROUNDS)
    record(FIGURE, "gitstore query, fresh handle, index on disk", mean_of(benchmark))


def test_query_after_one_task_moved(benchmark: Any, store10k: Path) -> None:
    with Store.open(store10k) as s:
        find(s, run="run-1")
    n = [0]

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        n[0] += 1
        with Store.open(store10k) as s:
            s.put("spec7/task7", {"log.log": f"again {n[0]} {time.time()}\n"}, run_id="run-7")
        return (), {}

    def run() -> None:
        with Store.open(store10k) as s:
            assert len(find(s, run="run-7")) == TASKS // 100 + n[0]

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS)
    record(FIGURE, "gitstore query after one task moved", mean_of(benchmark))
