"""Figure: put cost with 100k tasks in the store within 1.2x of the cost with 1k tasks.

Both stores have 10 specs and one small version per task, made by gitstore and written out as
packs plus one loose ref per task (``tools/build_store.py``); they are cached under the bench data
folder. Puts are
measured with ``gitstore.fsync false`` so the figure shows what the store's size costs, not the
disk's fsync latency (which is the same at any size and varies far more than 20%). Both new tasks
and new versions of existing tasks are measured.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, TOOLS, mean_of, quiet_disk, record, set_fsync

from gitstore import Store

SPECS = 10
_costs: dict[tuple[str, int], float] = {}


def _build(tasks: int) -> Path:
    path = DATA / f"store-{tasks // 1000}k"
    done = path / "gitstore-bench-built"
    if done.exists():
        return path
    if path.exists():
        shutil.rmtree(path)
    argv = [sys.executable, str(TOOLS / "build_store.py"), str(path), str(tasks), str(SPECS)]
    subprocess.run(argv, check=True)
    done.write_text(f"{tasks}\n")
    return path


@pytest.fixture(scope="module", params=[1_000, 100_000], ids=["1k-tasks", "100k-tasks"])
def sized_store(request: pytest.FixtureRequest) -> Iterator[tuple[int, Store]]:
    tasks: int = request.param
    path = _build(tasks)
    set_fsync(path, False)
    quiet_disk()
    store = Store.open(path)
    yield tasks, store
    store.close()


@pytest.mark.parametrize("target", ["new-task", "existing-task"])
def test_put_at_scale(benchmark: Any, sized_store: tuple[int, Store], target: str) -> None:
    tasks, store = sized_store
    run = os.urandom(4).hex()
    counter = itertools.count()

    def put() -> None:
        i = next(counter)
        if target == "new-task":
            address = f"spec{i % SPECS}/new-{run}-{i}"
        else:
            # Spread over existing tasks of every spec (one small version each to start with).
            n = (i * 7919) % tasks
            address = f"spec{n % SPECS}/task{n}"
        v = store.put(address, {"run.log": f"put {run} {i}\n", "result.json": b'{"i": %d}' % i})
        assert v.created

    benchmark.pedantic(put, rounds=500, warmup_rounds=10)
    cost = mean_of(benchmark)
    _costs[(target, tasks)] = cost
    extra: dict[str, Any] = {"puts_per_s": 1 / cost}
    if (target, 1_000) in _costs and tasks != 1_000:
        extra["cost_vs_1k"] = cost / _costs[(target, 1_000)]
    record(f"put at scale ({target}, fsync=false)", f"store with {tasks} tasks", cost, **extra)
