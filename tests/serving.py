"""A real ``gitstore serve`` in a subprocess on 127.0.0.1, for tests that speak HTTP to it.

The server is started as the CLI starts it (``python -m cli.main --store S serve --port 0``),
its port read from the line it prints, and it is waited for until it answers; clients use real
sockets. Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from gitstore import Tokens

ROOT = Path(__file__).resolve().parent.parent


def server_env(home: Path) -> dict[str, str]:
    """The environment of a server process: git isolated from the user's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.pop("GITSTORE_DIR", None)
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        PYTHONPATH=str(ROOT),
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
    )
    return env


class Server:
    """A running server: its base URL, store path and process; stop() ends it."""

    def __init__(self, store: Path, log: Path, *args: str) -> None:
        self.store = store
        self.log = log
        home = log.parent / "home"
        home.mkdir(exist_ok=True)
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gitstore",
                "--store",
                str(store),
                "serve",
                "--port",
                "0",
                *args,
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=server_env(home),
            cwd=ROOT,
        )
        self.url = self._wait_for_port()
        self._wait_until_answering()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].rstrip("/"))

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _wait_for_port(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"at (http://127\.0\.0\.1:\d+)/", self.output())
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server printed no address within 30 s:\n{self.output()}")

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/openapi.json", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer within 30 s:\n{self.output()}")

    def client(self, token: str | None = None, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._out.close()


def serve(tmp: Path, *args: str, store: Path | None = None) -> Iterator[Server]:
    """Start a server on a store in ``tmp`` (created), yield it, stop it."""
    store = store or tmp / "store.git"
    server = Server(store, tmp / "server.log", *args)
    try:
        yield server
    finally:
        server.stop()


def make_token(store: Path, name: str, scope: str, spec: str | None = None) -> str:
    """A token's secret, made through the library (the store must exist)."""
    return Tokens(store).add(name, scope=scope, spec=spec)[1]


def store_files(store: Path) -> set[str]:
    """Every file under the store (paths relative to it): what 'nothing written' compares."""
    return {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()}


def raw_request(port: int, data: bytes, *, read: bool = True, timeout: float = 10) -> bytes:
    """Send raw bytes to the server and return what it answers (until it closes or times out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if not read:
            return b""
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length: (\d+)", head)
    return m is not None and len(body) >= int(m.group(1))


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response."""
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert m, response[:200]
    return int(m.group(1))
