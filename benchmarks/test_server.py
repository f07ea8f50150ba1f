"""Figures of ``gitstore serve`` (issue 10), each next to a peer on the same web stack.

* Raw PUT of a 1 GiB artifact: MB/s, against ``peers/plain_server.py`` (a minimal Starlette app on
  uvicorn writing the body straight to a file, then fsync). Target >= 0.8x the peer.
* Peak RSS of the server process over a 2 GiB upload and then a 2 GiB download (``VmHWM`` from
  ``/proc/PID/status``; the server is a fresh process). Target < 100 MB.
* Small uploads: 8 client threads, each sending multipart versions of 3 small artifacts to a
  task of its own: versions/s, against the same peer storing them as plain files.

Both servers run as child processes on 127.0.0.1 with uvicorn's defaults; clients run in this
process (http.client for the big transfers, httpx for the small ones). Bodies come from an 8 MiB
random buffer whose first bytes change every round, so no round is a re-put of known bytes.
The gitstore server is started as ``gitstore serve`` through the tests' helper
(``tests/serving.py``).
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import GIT_ENV, PEERS, mean_of, quiet_disk, record, set_fsync
from serving import Server

from gitstore import Store

MIB = 1 << 20
GIB = 1 << 30
BUFFER = os.urandom(8 * MIB)
UPLOAD_FIGURE = "server: raw PUT of 1 GiB (MB/s)"
SMALL_FIGURE = "server: 8 clients x multipart of 3 small artifacts"
CLIENTS = 8
PER_CLIENT = 60

_LOG = "".join(f"step {i}: tool call ok, 12 files changed, tests 41 passed\n" for i in range(32))
_DIFF = "--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n-old line\n+new line\n" * 16


class Peer:
    """``peers/plain_server.py`` in a child process."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(root.parent / "peer.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(PEERS / "plain_server.py"), str(root), str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**GIT_ENV, "PYTHONPATH": str(PEERS)},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("peer server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def _gitstore(tmp: Path, fsync: bool = True) -> Server:
    store = tmp / "store.git"
    Store.open(store, create=True).close()
    if not fsync:
        set_fsync(store, False)
    return Server(store, tmp / "server.log")


@pytest.fixture
def peer(workdir: Path) -> Iterator[Peer]:
    p = Peer(workdir / "peer-root")
    yield p
    p.stop()


def vm_hwm(pid: int) -> float:
    """Peak resident set size of a process so far, in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmHWM")


def upload(port: int, path: str, size: int, tag: int) -> None:
    """PUT ``size`` bytes (Content-Length known) and check the answer is 201."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    conn.putrequest("PUT", path)
    conn.putheader("Content-Length", str(size))
    conn.putheader("Content-Type", "application/octet-stream")
    conn.endheaders()
    first = tag.to_bytes(16, "big") + BUFFER[16:]
    sent = 0
    view = memoryview(BUFFER)
    while sent < size:
        n = min(len(BUFFER), size - sent)
        conn.send(first[:n] if sent == 0 else view[:n])
        sent += n
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 201, body[:300]


def download(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200
    total = 0
    while chunk := response.read(MIB):
        total += len(chunk)
    conn.close()
    return total


_round = iter(range(1, 1_000_000))


@pytest.mark.parametrize("fsync", [True, False], ids=["fsync-default", "fsync-false"])
def test_raw_put_1gib_gitstore(benchmark: object, workdir: Path, fsync: bool) -> None:
    server = _gitstore(workdir, fsync)
    path = "/api/v1/tasks/bench/big/artifacts/blob.bin"
    try:
        benchmark.pedantic(  # type: ignore[attr-defined]
            lambda: upload(server.port, path, GIB, next(_round)), setup=quiet_disk, rounds=3
        )
    finally:
        server.stop()
    s = mean_of(benchmark)
    label = "gitstore serve, fsync default" if fsync else "gitstore serve, fsync=false"
    record(UPLOAD_FIGURE, label, s, mb_per_s=GIB / s / 1e6)


class _Body(io.RawIOBase):
    """1 GiB from the random buffer, as a stream of unknown size (what the server hands put)."""

    def __init__(self, tag: int) -> None:
        self.left = GIB
        self.first = tag.to_bytes(16, "big") + BUFFER[16:]

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        k = min(self.left, len(BUFFER), n if n and n > 0 else len(BUFFER))
        out = (self.first if self.left == GIB else BUFFER)[:k]
        self.left -= k
        return out


def test_library_put_1gib_stream_in_process(benchmark: object, workdir: Path) -> None:
    """What the server's put costs without HTTP: Store.put of a 1 GiB stream, same process."""
    store_path = workdir / "lib.git"
    Store.open(store_path, create=True).close()
    with Store.open(store_path) as store:
        benchmark.pedantic(  # type: ignore[attr-defined]
            lambda: store.put("bench/lib", {"blob.bin": _Body(next(_round))}),
            setup=quiet_disk,
            rounds=3,
        )
    s = mean_of(benchmark)
    record(UPLOAD_FIGURE, "reference: library put of a stream", s, mb_per_s=GIB / s / 1e6)


def test_raw_put_1gib_peer(benchmark: object, peer: Peer) -> None:
    benchmark.pedantic(  # type: ignore[attr-defined]
        lambda: upload(peer.port, f"/raw/blob-{next(_round)}.bin", GIB, next(_round)),
        setup=quiet_disk,
        rounds=3,
    )
    s = mean_of(benchmark)
    record(UPLOAD_FIGURE, "peer: Starlette+uvicorn -> file, fsync", s, mb_per_s=GIB / s / 1e6)


def test_server_peak_rss_2gib_up_and_down(benchmark: object, workdir: Path) -> None:
    server = _gitstore(workdir)
    path = "/api/v1/tasks/bench/huge/artifacts/blob.bin"
    try:
        quiet_disk()
        t0 = time.perf_counter()
        upload(server.port, path, 2 * GIB, next(_round))
        up_s = time.perf_counter() - t0
        after_upload = vm_hwm(server.proc.pid)
        t0 = time.perf_counter()
        # One timed round (the --benchmark-only run needs the fixture used).
        got = benchmark.pedantic(lambda: download(server.port, path), rounds=1)  # type: ignore[attr-defined]
        down_s = time.perf_counter() - t0
        after_download = vm_hwm(server.proc.pid)
    finally:
        server.stop()
    assert got == 2 * GIB
    record(
        "server: 2 GiB up then down, peak RSS",
        "gitstore serve",
        None,
        rss_after_upload_mb=after_upload,
        rss_after_download_mb=after_download,
        upload_mb_per_s=2 * GIB / up_s / 1e6,
        download_mb_per_s=2 * GIB / down_s / 1e6,
    )
    assert after_download < 100


def test_peer_peak_rss_2gib_up_and_down(benchmark: object, peer: Peer) -> None:
    upload(peer.port, "/raw/huge.bin", 2 * GIB, next(_round))
    after_upload = vm_hwm(peer.proc.pid)
    got = benchmark.pedantic(lambda: download(peer.port, "/raw/huge.bin"), rounds=1)  # type: ignore[attr-defined]
    record(
        "server: 2 GiB up then down, peak RSS",
        "peer: Starlette+uvicorn -> file",
        None,
        rss_after_upload_mb=after_upload,
        rss_after_download_mb=vm_hwm(peer.proc.pid),
    )
    assert got == 2 * GIB


def _small_batch(base: str, path_of: str) -> float:
    """Wall seconds for CLIENTS threads x PER_CLIENT multipart uploads of 3 small files."""
    errors: list[str] = []
    tag = next(_round)

    def client(n: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as c:
            for i in range(PER_CLIENT):
                files = [
                    ("file", ("run.log", f"{_LOG}{tag} {n} {i}\n".encode())),
                    ("file", ("change.diff", f"{_DIFF}# {tag} {n} {i}\n".encode())),
                    ("file", ("result.json", b'{"passed": 41, "put": %d}' % i)),
                ]
                r = c.post(path_of.format(n=n), files=files)
                if r.status_code != 201:
                    errors.append(r.text[:200])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    took = time.perf_counter() - t0
    assert not errors, errors[:3]
    return took


@pytest.mark.parametrize("fsync", [True, False], ids=["fsync-default", "fsync-false"])
def test_small_uploads_gitstore(benchmark: object, workdir: Path, fsync: bool) -> None:
    server = _gitstore(workdir, fsync)
    try:
        benchmark.pedantic(  # type: ignore[attr-defined]
            lambda: _small_batch(server.url, "/api/v1/tasks/bench/t{n}/versions"),
            setup=quiet_disk,
            rounds=2,
        )
    finally:
        server.stop()
    s = mean_of(benchmark) / (CLIENTS * PER_CLIENT)
    label = "gitstore serve, fsync default" if fsync else "gitstore serve, fsync=false"
    record(SMALL_FIGURE, label, s, versions_per_s=1 / s)


def test_small_uploads_peer(benchmark: object, peer: Peer) -> None:
    base = f"http://127.0.0.1:{peer.port}"
    benchmark.pedantic(  # type: ignore[attr-defined]
        lambda: _small_batch(base, "/versions/bench/t{n}"), setup=quiet_disk, rounds=2
    )
    s = mean_of(benchmark) / (CLIENTS * PER_CLIENT)
    record(SMALL_FIGURE, "peer: Starlette+uvicorn -> plain files", s, versions_per_s=1 / s)


# -- clone over HTTP -------------------------------------------------------------------------

CLONE_FIGURE = "server: clone of a 1,000-task store over HTTP"


@pytest.fixture(scope="module")
def served_1k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``gitstore serve`` of a store of 1,000 tasks (3 small artifacts each)."""
    from conftest import DATA
    from test_remote import _store_with_tasks

    store = _store_with_tasks(DATA / "remote-1k-3art", 1_000, 3)
    server = Server(store, tmp_path_factory.mktemp("served-1k") / "server.log")
    yield server
    server.stop()


def _fresh(path: Path) -> Callable[[], None]:
    """A pedantic setup: remove the last round's clone and flush the disk."""
    import shutil

    def setup() -> None:
        shutil.rmtree(path, ignore_errors=True)
        quiet_disk()

    return setup


def test_clone_1k_tasks_over_http_gitstore(
    benchmark: object, served_1k: Server, workdir: Path
) -> None:
    dest = workdir / "clone.git"
    cmd = [sys.executable, "-m", "gitstore", "clone", served_1k.url + "/", str(dest)]
    benchmark.pedantic(  # type: ignore[attr-defined]
        lambda: subprocess.run(cmd, check=True, capture_output=True, env=GIT_ENV),
        setup=_fresh(dest),
        rounds=3,
    )
    record(CLONE_FIGURE, "gitstore clone URL", mean_of(benchmark))


def test_clone_1k_tasks_over_http_git(benchmark: object, served_1k: Server, workdir: Path) -> None:
    dest = workdir / "mirror.git"
    cmd = ["git", "clone", "-q", "--mirror", served_1k.url + "/", str(dest)]
    benchmark.pedantic(  # type: ignore[attr-defined]
        lambda: subprocess.run(cmd, check=True, capture_output=True, env=GIT_ENV),
        setup=_fresh(dest),
        rounds=3,
    )
    record(CLONE_FIGURE, "peer: git clone --mirror URL", mean_of(benchmark))
