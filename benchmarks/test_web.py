"""Figures of the web page (issue 11), in a real browser: time to first byte and to a rendered page.

Pages, each opened in headless Chromium (Debian's ``chromium``, driven by Playwright) from a live
``gitstore serve`` on 127.0.0.1, timed by the browser itself (``PerformanceNavigationTiming``:
``responseStart`` is the first byte, ``domContentLoadedEventEnd`` the page parsed and its script
run, plus the first contentful paint):

* a task page (a task with 60 versions);
* the page of a 1 GiB log: the head is in the first answer; the tail is fetched by the page after
  it loaded and costs a pass over the whole blob. Timed on a fresh server (nothing kept) and again
  (the tail kept in memory). Target: the page opens in under 2 s; the tail arrives when it can.
  Peer for the tail: ``git cat-file blob OID | tail -c 256K``, the same pass by stock git;
* the page of a 5,000-line diff (78 files, highlighted): fresh server and again (kept).

The store (1 GiB log text, the diff, the task) is built once and cached under
``$GITSTORE_BENCH_DATA``; building it takes a minute.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webdata
from conftest import DATA, GIT_ENV, make_log, record, warm
from serving import Server

from gitstore import Store

CHROMIUM = "/usr/bin/chromium"
MIB = 1 << 20
GIB = 1 << 30
LOG_FIGURE = "web: page of a 1 GiB log"
DIFF_FIGURE = "web: page of a 5,000-line diff"
TASK_FIGURE = "web: task page (60 versions)"
LOG_PAGE = "/ui/tasks/bench/big/versions/latest/artifacts/run.log"
DIFF_PAGE = "/ui/tasks/bench/diff/versions/latest/artifacts/change.diff"

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK), reason=f"needs {CHROMIUM} (apt-get install -y chromium)"
)


def _build(path: Path) -> None:
    chunk = DATA / "log-64m.log"
    if not chunk.exists():
        make_log(chunk, 64 * MIB)
    big = path.parent / "web-log-1g.log"
    data = chunk.read_bytes()
    with open(big, "wb") as f:
        for _ in range(GIB // len(data)):
            f.write(data)
    try:
        with Store.open(path, create=True) as store:
            store.put("bench/big", {"run.log": Path(big)}, run_id="bench")
            store.put("bench/diff", {"change.diff": webdata.big_diff()}, run_id="bench")
            for i in range(60):
                store.put(
                    "bench/task",
                    {"log.log": f"attempt {i}\n" * 50, "test.json": json.dumps({"passed": i})},
                    run_id=f"run-{i}",
                    metadata={"agent": "bench", "model": "m", "attempt": i},
                    message=f"attempt {i}",
                )
    finally:
        big.unlink()


@pytest.fixture(scope="module")
def web_store() -> Path:
    path = DATA / "web-store.git"
    if not path.exists():
        tmp = DATA / "web-store.git.tmp"
        if tmp.exists():
            subprocess.run(["rm", "-rf", str(tmp)], check=True)
        DATA.mkdir(parents=True, exist_ok=True)
        _build(tmp)
        tmp.rename(path)
    warm(path / "objects")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


class Fresh:
    """A server started anew for each measurement (nothing kept in memory from before)."""

    def __init__(self, store: Path, tmp: Path) -> None:
        self.store = store
        self.tmp = tmp
        self.server: Server | None = None

    def start(self) -> None:
        self.stop()
        self.server = Server(self.store, self.tmp / "server.log")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


@pytest.fixture
def fresh(web_store: Path, workdir: Path) -> Iterator[Fresh]:
    f = Fresh(web_store, workdir)
    f.start()
    yield f
    f.stop()


def visit(browser: Any, url: str, wait_tail: bool = False) -> dict[str, float]:
    """Open ``url`` in a new tab; the browser's timings in seconds."""
    page = browser.new_page()
    try:
        started = time.perf_counter()
        page.goto(url, wait_until="load")
        nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
        paint = page.evaluate("JSON.stringify(performance.getEntriesByType('paint'))")
        timing = json.loads(nav)
        out = {
            "ttfb": timing["responseStart"] / 1000,
            "dom": timing["domContentLoadedEventEnd"] / 1000,
            "load": timing["loadEventEnd"] / 1000,
        }
        for entry in json.loads(paint):
            if entry["name"] == "first-contentful-paint":
                out["fcp"] = entry["startTime"] / 1000
        if wait_tail:
            while page.locator("div.lazy").count():
                time.sleep(0.02)
            out["tail"] = time.perf_counter() - started
        return out
    finally:
        page.close()


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs if key in r)


def report(figure: str, role: str, runs: list[dict[str, float]]) -> None:
    extra = {
        k: median(runs, k) for k in ("ttfb", "fcp", "dom", "tail") if any(k in r for r in runs)
    }
    seconds = extra.get("tail", extra["dom"])
    record(figure, role, seconds, **{f"{k}_s": v for k, v in extra.items()})


def test_task_page(benchmark: Any, browser: Any, fresh: Fresh) -> None:
    runs: list[dict[str, float]] = []
    url = f"{fresh.url}/ui/tasks/bench/task"
    benchmark.pedantic(lambda: runs.append(visit(browser, url)), rounds=5)
    report(TASK_FIGURE, "gitstore (page parsed)", runs)


def test_big_log_page_first_visit(benchmark: Any, browser: Any, fresh: Fresh) -> None:
    runs: list[dict[str, float]] = []
    fresh.stop()

    def once() -> None:
        runs.append(visit(browser, f"{fresh.url}{LOG_PAGE}", wait_tail=True))
        fresh.stop()

    # Each round on a new server process: nothing of the blob is kept from before.
    benchmark.pedantic(once, setup=fresh.start, rounds=3)
    report(LOG_FIGURE, "gitstore, fresh server (tail = tail shown)", runs)


def test_big_log_page_again(benchmark: Any, browser: Any, fresh: Fresh) -> None:
    url = f"{fresh.url}{LOG_PAGE}"
    visit(browser, url, wait_tail=True)  # the first visit keeps the tail
    runs: list[dict[str, float]] = []
    benchmark.pedantic(lambda: runs.append(visit(browser, url, wait_tail=True)), rounds=5)
    report(LOG_FIGURE, "gitstore, tail kept (tail = tail shown)", runs)


def test_big_log_tail_peer_git(benchmark: Any, web_store: Path) -> None:
    with Store.open(web_store) as store:
        oid = store.artifact("bench/big", "run.log").oid
    command = f"git --git-dir={web_store} cat-file blob {oid} | tail -c 262144 > /dev/null"
    benchmark.pedantic(
        lambda: subprocess.run(command, shell=True, check=True, env=GIT_ENV), rounds=3
    )
    record(
        LOG_FIGURE, "peer: git cat-file blob | tail -c 256K", float(benchmark.stats.stats.median)
    )


def test_diff_page_first_visit(benchmark: Any, browser: Any, fresh: Fresh) -> None:
    runs: list[dict[str, float]] = []
    fresh.stop()

    def once() -> None:
        runs.append(visit(browser, f"{fresh.url}{DIFF_PAGE}"))
        fresh.stop()

    benchmark.pedantic(once, setup=fresh.start, rounds=3)
    report(DIFF_FIGURE, "gitstore, fresh server", runs)


def test_diff_page_again(benchmark: Any, browser: Any, fresh: Fresh) -> None:
    url = f"{fresh.url}{DIFF_PAGE}"
    visit(browser, url)
    runs: list[dict[str, float]] = []
    benchmark.pedantic(lambda: runs.append(visit(browser, url)), rounds=5)
    report(DIFF_FIGURE, "gitstore, diff kept", runs)
