"""Uploads that stall: dropped after the body timeout, and never starving the reads.

These run the app on uvicorn in a thread of the test process (real sockets on 127.0.0.1), so the
server's configuration can be set beyond what ``gitstore serve`` exposes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from serving import status_of, store_files
from support import git

from gitstore import Store
from gitstore.server import ServerConfig, create_app


@contextlib.contextmanager
def running(store_path: Path, config: ServerConfig) -> Iterator[int]:
    """The app on uvicorn in a thread; yields the port."""
    with Store.open(store_path, create=True) as store:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        server = uvicorn.Server(
            uvicorn.Config(create_app(store, config), lifespan="off", log_level="warning")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True
            thread.join(timeout=20)
            sock.close()


def stalled_upload(port: int) -> socket.socket:
    """A raw PUT that announces 1 MB and sends 10 bytes, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(
        b"PUT /api/v1/tasks/s/t/artifacts/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        + b"0123456789"
    )
    return sock


def test_an_upload_that_stops_sending_is_408_and_writes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store.git"
    Store.open(store, create=True).close()
    before = store_files(store)
    config = ServerConfig(open_without_tokens=True, body_timeout=0.5)
    with running(store, config) as port:
        sock = stalled_upload(port)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
        sock.close()
        assert status_of(answer) == 408, answer
        assert b"BodyTimeoutError" in answer
    assert store_files(store) == before
    assert git(store, "for-each-ref").stdout == ""


def test_stalled_uploads_never_take_the_threads_reads_need(tmp_path: Path) -> None:
    # More stalled uploads than anyio's default pool has threads (40): reads still answer.
    with running(tmp_path / "store.git", ServerConfig(open_without_tokens=True)) as port:
        stalled = [stalled_upload(port) for _ in range(45)]
        try:
            time.sleep(0.5)
            r = httpx.get(f"http://127.0.0.1:{port}/api/v1/specs", timeout=10)
            assert r.status_code == 200 and r.json() == []
        finally:
            for sock in stalled:
                sock.close()
