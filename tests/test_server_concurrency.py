"""Many clients uploading at once through a real server: every 201 is a version in the history."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serving import Server, serve
from support import fsck

from gitstore import Store

CLIENTS = 16
UPLOADS = 50


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(tmp_path)


@pytest.mark.slow
def test_sixteen_clients_fifty_uploads_each_lose_nothing(server: Server) -> None:
    acknowledged: list[tuple[str, str]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            for i in range(UPLOADS):
                # Every other upload goes to the task all clients share.
                task = "shared" if i % 2 == 0 else f"own-{n}"
                r = c.post(
                    f"/api/v1/tasks/conc/{task}/versions",
                    files=[
                        ("file", ("log.log", f"client {n} upload {i}\n".encode())),
                        ("file", (f"c{n}/result.json", f'{{"i": {i}}}'.encode())),
                    ],
                    data={"run_id": f"run-{n}"},
                )
                with lock:
                    if r.status_code == 201:
                        acknowledged.append((task, r.json()["commit"]))
                    else:
                        failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)  # ~40 s on an idle 2-core machine; far longer when it is shared
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert len(acknowledged) == CLIENTS * UPLOADS
    with Store.open(server.store) as store:
        history = {
            task: {v.commit for v in store.log(f"conc/{task}")}
            for task in {t for t, _ in acknowledged}
        }
    for task, commit in acknowledged:
        assert commit in history[task]
    assert len(history["shared"]) == CLIENTS * UPLOADS // 2
    fsck(server.store)
