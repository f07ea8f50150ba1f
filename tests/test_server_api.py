"""The REST API against a real ``gitstore serve`` on 127.0.0.1: reads, writes, bytes out.

One server (no tokens, loopback: open) serves the module; each test uses tasks of its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serving import Server, serve, store_files
from support import fsck, git

from gitstore import Store

API = "/api/v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("api"), "--max-upload", "4M")


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def refs(store: Path) -> str:
    return git(store, "for-each-ref").stdout


def put(http: httpx.Client, task: str, name: str, data: bytes, **params: str) -> httpx.Response:
    return http.put(f"{API}/tasks/{task}/artifacts/{name}", content=data, params=params)


# -- writing -----------------------------------------------------------------------------------


def test_multipart_upload_makes_one_version_with_every_part(
    server: Server, http: httpx.Client
) -> None:
    r = http.post(
        f"{API}/tasks/up/t1/versions",
        files=[
            ("file", ("log.log", b"line 1\n", "text/plain")),
            ("file", ("reports/junit.xml", b"<testsuite/>", "application/xml")),
            ("file", ("diff.diff", b"--- a\n+++ b\n", "application/octet-stream")),
        ],
        data={"run_id": "run-1", "message": "first", "metadata": '{"model": "m1"}', "tag": "k=v"},
    )
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["version"] == 1 and doc["created"] is True and doc["run_id"] == "run-1"
    assert doc["metadata"] == {"model": "m1"}
    arts = {a["name"]: a for a in doc["artifacts"]}
    assert set(arts) == {"log.log", "reports/junit.xml", "diff.diff"}
    assert arts["reports/junit.xml"]["content_type"] == "application/xml"
    # octet-stream says nothing: the library's guess from the name takes over.
    assert arts["diff.diff"]["content_type"] == "text/x-diff"
    assert arts["log.log"]["tags"] == {"k": "v"}
    assert r.headers["location"] == f"{API}/tasks/up/t1/versions/{doc['commit']}"
    with Store.open(server.store) as store:
        assert [v.commit for v in store.log("up/t1")] == [doc["commit"]]
        assert store.get("up/t1", "log.log") == b"line 1\n"
    fsck(server.store)


def test_raw_put_adds_one_artifact_to_a_new_version(server: Server, http: httpx.Client) -> None:
    first = put(http, "raw/t1", "a.txt", b"one", run_id="r1")
    second = put(http, "raw/t1", "logs/b.log", b"two", message="more", tag="x=1")
    assert first.status_code == second.status_code == 201
    doc = second.json()
    assert doc["version"] == 2 and doc["message"] == "more"
    assert {a["name"] for a in doc["artifacts"]} == {"a.txt", "logs/b.log"}
    with Store.open(server.store) as store:
        assert store.get("raw/t1", "logs/b.log") == b"two"
        assert store.artifact("raw/t1", "logs/b.log").tags == {"x": "1"}


def test_raw_put_of_unchanged_bytes_makes_no_version(http: httpx.Client) -> None:
    assert put(http, "raw/same", "a", b"x").status_code == 201
    again = put(http, "raw/same", "a", b"x")
    assert again.status_code == 200 and again.json()["created"] is False


def test_raw_put_content_type_comes_from_the_request(http: httpx.Client) -> None:
    r = http.put(
        f"{API}/tasks/raw/types/artifacts/report",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert r.json()["artifacts"][0]["content_type"] == "application/json"


def test_raw_put_streams_a_body_over_the_small_blob_size(
    server: Server, http: httpx.Client
) -> None:
    data = os.urandom(3 << 20)

    def body() -> Iterator[bytes]:  # chunked: no Content-Length
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    r = http.put(f"{API}/tasks/raw/big/artifacts/blob.bin", content=body())
    assert r.status_code == 201, r.text
    assert r.json()["artifacts"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    with Store.open(server.store) as store:
        assert store.get("raw/big", "blob.bin") == data


def test_delete_names_makes_a_version_without_them(http: httpx.Client) -> None:
    put(http, "rm/t1", "a", b"1")
    put(http, "rm/t1", "dir/b", b"2")
    put(http, "rm/t1", "c", b"3")
    r = http.delete(f"{API}/tasks/rm/t1/artifacts", params=[("name", "a"), ("name", "dir")])
    assert r.status_code == 200, r.text
    assert [a["name"] for a in r.json()["artifacts"]] == ["c"]


def test_delete_task_needs_if_match_and_refuses_a_moved_task(
    server: Server, http: httpx.Client
) -> None:
    v1 = put(http, "del/t1", "a", b"1").json()["commit"]
    assert http.delete(f"{API}/tasks/del/t1").status_code == 428
    v2 = put(http, "del/t1", "a", b"2").json()["commit"]
    moved = http.delete(f"{API}/tasks/del/t1", headers={"If-Match": f'"{v1}"'})
    assert moved.status_code == 412, moved.text
    assert "del/t1" in refs(server.store)
    ok = http.delete(f"{API}/tasks/del/t1", headers={"If-Match": f'"{v2}"'})
    assert ok.status_code == 200
    assert ok.json() == {"address": "del/t1", "deleted": True, "commit": v2}
    assert "refs/artifacts/del/t1" not in refs(server.store)


# -- reading -----------------------------------------------------------------------------------


def test_reads_return_the_library_wire_shapes(server: Server, http: httpx.Client) -> None:
    put(http, "rd/t1", "a.txt", b"one")
    put(http, "rd/t1", "a.txt", b"two")
    with Store.open(server.store) as store:
        assert http.get(f"{API}/specs").json() == [s.to_dict() for s in store.spec_summaries()]
        assert http.get(f"{API}/specs/rd/tasks").json() == [
            t.to_dict() for t in store.task_heads("rd")
        ]
        assert http.get(f"{API}/tasks/rd/t1/versions", params={"limit": 1}).json() == [
            v.to_dict(artifacts=False) for v in store.log("rd/t1", limit=1)
        ]
        for rev in ("latest", "v1", "~1", store.show("rd/t1@v1").commit[:8]):
            shown = http.get(f"{API}/tasks/rd/t1/versions/{rev}")
            address = "rd/t1" if rev == "latest" else f"rd/t1@{rev}"
            assert shown.json() == store.show(address).to_dict(), rev
        uri = store.artifact("rd/t1@v1", "a.txt").uri
        assert (
            http.get(f"{API}/resolve", params={"uri": uri}).json() == store.resolve(uri).to_dict()
        )
        diff = http.get(f"{API}/diff", params={"old": "rd/t1@v1", "new": "rd/t1@v2"})
        assert diff.json() == store.diff("rd/t1@v1", "rd/t1@v2").to_dict()


def test_find_takes_the_cli_conditions(http: httpx.Client) -> None:
    http.put(f"{API}/tasks/fd/t1/artifacts/a", content=b"1", params={"run_id": "run-f1"})
    http.put(f"{API}/tasks/fd/t2/artifacts/a", content=b"2", params={"run_id": "run-f2"})
    found = http.get(f"{API}/find", params={"run": "run-f2"}).json()
    assert [(v["spec"], v["task"]) for v in found] == [("fd", "t2")]
    assert len(http.get(f"{API}/find", params={"task": "fd", "limit": 1}).json()) == 1


def test_errors_are_problem_documents_from_the_one_table(http: httpx.Client) -> None:
    cases = {
        f"{API}/tasks/nope/t1/versions/latest": (404, "TaskNotFoundError", 4),
        f"{API}/tasks/bad..spec/t1/versions/latest": (422, "InvalidNameError", 3),
        f"{API}/tasks/rd/t1/versions?limit=0": (422, "InvalidParameterError", 2),
        f"{API}/nothing/here": (404, "NotFoundError", 4),
    }
    for url, (status, error, code) in cases.items():
        r = http.get(url)
        assert r.status_code == status, (url, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        doc = r.json()
        assert (doc["status"], doc["error"], doc["exit_code"]) == (status, error, code)
        assert doc["type"] == "about:blank" and doc["title"] and doc["detail"]


# -- bytes out ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blob(server: Server) -> tuple[bytes, dict[str, str]]:
    data = bytes(range(256)) * 5000  # 1.28 MB: a loose, streamed blob
    with server.client() as c:
        r = c.put(f"{API}/tasks/bytes/t1/artifacts/out/r%C3%A9sum%C3%A9.bin", content=data)
    assert r.status_code == 201, r.text
    return data, r.json()["artifacts"][0]


BYTES = f"{API}/tasks/bytes/t1/versions/latest/artifacts/out/r%C3%A9sum%C3%A9.bin"


def test_artifact_bytes_come_with_type_digests_etag_and_name(
    http: httpx.Client, blob: tuple[bytes, dict[str, str]]
) -> None:
    data, info = blob
    r = http.get(BYTES)
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == info["content_type"]
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["etag"] == f'"{info["oid"]}"'
    assert r.headers["x-gitstore-sha256"] == hashlib.sha256(data).hexdigest()
    b64 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert r.headers["repr-digest"] == f"sha-256=:{b64}:"
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_.bin\"; filename*=UTF-8''r%C3%A9sum%C3%A9.bin"
    )
    assert r.headers["accept-ranges"] == "bytes"


def test_if_none_match_gives_304(http: httpx.Client, blob: tuple[bytes, dict[str, str]]) -> None:
    _, info = blob
    r = http.get(BYTES, headers={"If-None-Match": f'"{info["oid"]}"'})
    assert r.status_code == 304 and r.content == b""
    assert http.get(BYTES, headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=100-199", 100, 200),
        ("bytes=1000000-", 1000000, 1280000),
        ("bytes=-10", 1279990, 1280000),
        ("bytes=1279999-5000000", 1279999, 1280000),
    ],
)
def test_a_range_is_206_with_exactly_those_bytes(
    http: httpx.Client, blob: tuple[bytes, dict[str, str]], header: str, start: int, stop: int
) -> None:
    data, _ = blob
    r = http.get(BYTES, headers={"Range": header})
    assert r.status_code == 206, r.text
    assert r.content == data[start:stop]
    assert r.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(data)}"
    assert r.headers["content-length"] == str(stop - start)


def test_a_range_past_the_end_is_416(
    http: httpx.Client, blob: tuple[bytes, dict[str, str]]
) -> None:
    data, _ = blob
    r = http.get(BYTES, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(data)}"


def test_if_range_with_another_etag_sends_the_whole_artifact(
    http: httpx.Client, blob: tuple[bytes, dict[str, str]]
) -> None:
    data, _ = blob
    r = http.get(BYTES, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == data


def test_head_sends_headers_without_the_body(
    http: httpx.Client, blob: tuple[bytes, dict[str, str]]
) -> None:
    data, _ = blob
    r = http.head(BYTES)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(len(data))


def test_a_pinned_url_keeps_its_bytes_after_a_new_version(http: httpx.Client) -> None:
    commit = put(http, "pin/t1", "a", b"old").json()["commit"]
    put(http, "pin/t1", "a", b"new")
    r = http.get(f"{API}/tasks/pin/t1/versions/{commit}/artifacts/a")
    assert r.content == b"old" and "immutable" in r.headers["cache-control"]
    assert http.get(f"{API}/tasks/pin/t1/artifacts/a").content == b"new"


# -- caller digests and size limits ------------------------------------------------------------


def test_raw_put_with_a_wrong_digest_is_422_and_writes_nothing(
    server: Server, http: httpx.Client
) -> None:
    put(http, "dg/t1", "a", b"first")
    before_refs, before_files = refs(server.store), store_files(server.store)
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    for data in (b"small body", os.urandom(2 << 20)):
        r = http.put(
            f"{API}/tasks/dg/t1/artifacts/b",
            content=data,
            headers={"Repr-Digest": f"sha-256=:{wrong}:"},
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "DigestMismatchError"
    assert refs(server.store) == before_refs
    assert store_files(server.store) == before_files
    fsck(server.store)


def test_raw_put_with_the_right_digest_is_stored(http: httpx.Client) -> None:
    data = b"checked"
    r = put(http, "dg/t2", "a", data, sha256="sha256:" + hashlib.sha256(data).hexdigest())
    assert r.status_code == 201


def test_multipart_sha256_field_is_checked_per_file(server: Server, http: httpx.Client) -> None:
    before = refs(server.store)
    r = http.post(
        f"{API}/tasks/dg/t3/versions",
        files=[("file", ("a", b"aaa")), ("file", ("b", b"bbb"))],
        data={
            "sha256": [
                "a=sha256:" + hashlib.sha256(b"aaa").hexdigest(),
                "b=sha256:" + hashlib.sha256(b"not b").hexdigest(),
            ]
        },
    )
    assert r.status_code == 422 and r.json()["error"] == "DigestMismatchError"
    assert refs(server.store) == before


def test_content_length_over_the_limit_is_413_before_reading(
    server: Server, http: httpx.Client
) -> None:
    before_refs, before_files = refs(server.store), store_files(server.store)
    r = put(http, "big/t1", "a", b"x" * ((4 << 20) + 1))
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLargeError"
    assert refs(server.store) == before_refs
    assert store_files(server.store) == before_files


def test_a_chunked_body_over_the_limit_is_413_by_count(server: Server, http: httpx.Client) -> None:
    before_refs, before_files = refs(server.store), store_files(server.store)
    data = b"y" * ((4 << 20) + 10)

    def body() -> Iterator[bytes]:
        yield data  # one piece: the client has sent it all before the answer comes

    r = http.put(f"{API}/tasks/big/t2/artifacts/a", content=body())
    assert r.status_code == 413, r.text
    assert refs(server.store) == before_refs
    assert store_files(server.store) == before_files


# -- the OpenAPI document ----------------------------------------------------------------------


def test_openapi_lists_every_route_and_nothing_else(http: httpx.Client) -> None:
    from gitstore.server import create_app
    from gitstore.server.openapi import openapi_path

    doc = http.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    documented = {(p, m.upper()) for p, methods in doc["paths"].items() for m in methods}
    app = create_app(Store.memory())
    served = {
        (openapi_path(r.path), m)
        for r in app.routes
        for m in getattr(r, "methods", ()) or ()
        if m != "HEAD"
    }
    assert documented == served
    ids = [op["operationId"] for methods in doc["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))
    json.dumps(doc)  # plain JSON throughout
