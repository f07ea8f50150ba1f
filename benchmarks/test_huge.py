"""Figure: artifacts of several GiB stream in and out with peak RSS that does not grow with size.

A 256 MiB and a 3 GiB file (log text: copies of the 128 MiB log) are put and read back in child
processes under ``/usr/bin/time -v``, with the store's default settings. Needs ~7 GiB free under
the bench data folder's file system; the inputs and stores are removed afterwards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import MIB, mean_of, needs_time, python_tool, record, time_v

pytestmark = needs_time()


@pytest.mark.parametrize("copies", [2, 24], ids=["256MiB", "3GiB"])
def test_huge_rss(benchmark: Any, workdir: Path, big_log: Path, copies: int) -> None:
    free = shutil.disk_usage(workdir).free
    size = copies * (128 * MIB)
    if free < 3 * size:
        pytest.skip(f"needs {3 * size >> 30} GiB free under {workdir}, has {free >> 30} GiB")
    src = workdir / "input.log"
    with open(src, "wb") as out:
        for _ in range(copies):
            with open(big_log, "rb") as f:
                shutil.copyfileobj(f, out, 8 * MIB)
    store = workdir / "store"
    res: dict[str, Any] = {}

    def put() -> None:
        res["put"] = time_v(python_tool("put_file.py", str(store), str(src)))

    benchmark.pedantic(put, rounds=1)
    src.unlink()
    get = time_v(python_tool("get_file.py", str(store), "bench/big", "big.log"))
    put_s = json.loads(res["put"]["stdout"])["seconds"]
    get_s = json.loads(get["stdout"])["seconds"]
    record(
        "huge artifact: peak RSS vs size",
        f"gitstore {size >> 20} MiB",
        None,
        put_rss_mb=res["put"]["rss_mb"],
        get_rss_mb=get["rss_mb"],
        put_mb_per_s=size / put_s / 1e6,
        get_mb_per_s=size / get_s / 1e6,
        put_wall_s=mean_of(benchmark),
    )
