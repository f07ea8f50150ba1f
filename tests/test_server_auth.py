"""Tokens over HTTP: every route of the app refuses what it must, on a real server.

The routes are enumerated from the app itself, so a route added later is covered without
touching these tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serving import Server, make_token, serve

from gitstore import Store, Tokens
from gitstore.server import create_app

SAMPLE = {"spec": "s", "task": "t", "rev": "latest", "name": "a", "jobId": "j1", "artifactId": "x"}


def routes() -> list[tuple[str, str]]:
    """(method, url) for every method of every route the app serves (HEAD goes with GET)."""
    out = []
    for route in create_app(Store.memory()).routes:
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if method == "HEAD" or path is None:
                continue
            url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLE[m.group(1)], path)
            out.append((method, url))
    assert len(out) >= 17
    return out


ROUTES = routes()
READS = [r for r in ROUTES if r[0] == "GET"]
WRITES = [r for r in ROUTES if r[0] != "GET"]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("auth")
    store = tmp / "store.git"
    Store.open(store, create=True).close()
    made = {
        "read": make_token(store, "reader", "read"),
        "write": make_token(store, "writer", "write"),
        "admin": make_token(store, "boss", "admin"),
        "limited": make_token(store, "lim", "write", spec="ok-*"),
    }
    for server in serve(tmp, store=store):
        yield server, made


def send(server: Server, method: str, url: str, **kw: object) -> httpx.Response:
    with server.client() as c:
        return c.request(method, url, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_route_refuses_a_missing_token(
    tokens: tuple[Server, dict[str, str]], method: str, url: str
) -> None:
    server, _ = tokens
    r = send(server, method, url)
    assert r.status_code == 401, r.text
    challenges = r.headers.get_list("www-authenticate")
    assert any("Bearer" in c for c in challenges) and any("Basic" in c for c in challenges)


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_every_route_refuses_an_unknown_token(
    tokens: tuple[Server, dict[str, str]], method: str, url: str
) -> None:
    server, _ = tokens
    r = send(server, method, url, headers={"Authorization": "Bearer gst_not-a-token"})
    assert r.status_code == 401, r.text


@pytest.mark.parametrize(("method", "url"), WRITES)
def test_a_read_token_cannot_write_by_any_route(
    tokens: tuple[Server, dict[str, str]], method: str, url: str
) -> None:
    server, made = tokens
    r = send(server, method, url, headers={"Authorization": f"Bearer {made['read']}"})
    assert r.status_code == 403, r.text


@pytest.mark.parametrize(("method", "url"), READS)
def test_a_read_token_reads_by_every_read_route(
    tokens: tuple[Server, dict[str, str]], method: str, url: str
) -> None:
    server, made = tokens
    r = send(server, method, url, headers={"Authorization": f"Bearer {made['read']}"})
    assert r.status_code not in (401, 403), r.text


def test_the_token_may_be_the_password_of_basic_auth(
    tokens: tuple[Server, dict[str, str]],
) -> None:
    server, made = tokens
    with httpx.Client(base_url=server.url, auth=("anyone", made["read"]), timeout=30) as c:
        assert c.get("/api/v1/specs").status_code == 200
    with httpx.Client(base_url=server.url, auth=("anyone", "wrong"), timeout=30) as c:
        assert c.get("/api/v1/specs").status_code == 401


def test_deleting_a_task_needs_admin(tokens: tuple[Server, dict[str, str]]) -> None:
    server, made = tokens
    with server.client(made["write"]) as c:
        commit = c.put("/api/v1/tasks/s/del/artifacts/a", content=b"1").json()["commit"]
        assert c.delete("/api/v1/tasks/s/del", headers={"If-Match": commit}).status_code == 403
    with server.client(made["admin"]) as c:
        assert c.delete("/api/v1/tasks/s/del", headers={"If-Match": commit}).status_code == 200


def test_a_spec_pattern_limits_what_a_token_reaches(
    tokens: tuple[Server, dict[str, str]],
) -> None:
    server, made = tokens
    with server.client(made["write"]) as c:
        assert c.put("/api/v1/tasks/other/t/artifacts/a", content=b"x").status_code == 201
    with server.client(made["limited"]) as c:
        assert c.put("/api/v1/tasks/ok-1/t/artifacts/a", content=b"x").status_code == 201
        assert c.put("/api/v1/tasks/other/t/artifacts/a", content=b"y").status_code == 403
        assert c.get("/api/v1/tasks/other/t/versions/latest").status_code == 403
        uri = c.get("/api/v1/tasks/ok-1/t/versions/latest").json()["artifacts"][0]["uri"]
        other = uri.replace("ok-1/t", "other/t")
        assert c.get("/api/v1/resolve", params={"uri": other}).status_code == 403
        assert {s["name"] for s in c.get("/api/v1/specs").json()} == {"ok-1"}
        assert {v["spec"] for v in c.get("/api/v1/find").json()} == {"ok-1"}
        # The agent-job routes live in spec "jobs", which the pattern does not cover.
        assert c.get("/api/queue/jobs/j1/artifacts").status_code == 403


def test_a_removed_token_is_refused_on_the_next_request(tmp_path: Path) -> None:
    store = tmp_path / "store.git"
    Store.open(store, create=True).close()
    secret = make_token(store, "temp", "read")
    for server in serve(tmp_path, store=store):
        with server.client(secret) as c:
            assert c.get("/api/v1/specs").status_code == 200
            Tokens(store).remove("temp")
            assert c.get("/api/v1/specs").status_code == 401


def test_the_first_token_closes_an_open_loopback_server(tmp_path: Path) -> None:
    for server in serve(tmp_path):
        with server.client() as c:
            assert c.put("/api/v1/tasks/s/t/artifacts/a", content=b"open").status_code == 201
            secret = make_token(server.store, "first", "write")
            assert c.put("/api/v1/tasks/s/t/artifacts/a", content=b"closed").status_code == 401
        with server.client(secret) as c:
            assert c.put("/api/v1/tasks/s/t/artifacts/a", content=b"token").status_code == 201


def test_public_read_lets_reads_through_and_nothing_else(tmp_path: Path) -> None:
    store = tmp_path / "store.git"
    with Store.open(store, create=True) as s:
        s.put("s/t", {"a": b"public"})
    secret = make_token(store, "w", "write")
    for server in serve(tmp_path, "--public-read", store=store):
        with server.client() as c:
            assert c.get("/api/v1/tasks/s/t/artifacts/a").content == b"public"
            assert c.put("/api/v1/tasks/s/t/artifacts/a", content=b"no").status_code == 401
            bad = c.get("/api/v1/specs", headers={"Authorization": "Bearer wrong"})
            assert bad.status_code == 401  # a token sent is judged, even where none is needed
        with server.client(secret) as c:
            assert c.put("/api/v1/tasks/s/t/artifacts/a", content=b"yes").status_code == 201
