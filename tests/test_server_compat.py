"""The agent-job upload routes, as the runner projects call them, against a real server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest
from serving import Server, make_token, serve, store_files
from support import fsck, git

from gitstore import Store

Q = "/api/queue/jobs"
KEYS = {"id", "jobId", "name", "contentType", "sizeBytes", "digest", "storagePath", "createdAt"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("compat")
    store = tmp / "store.git"
    Store.open(store, create=True).close()
    made = {
        "w1": make_token(store, "worker-1", "write"),
        "r": make_token(store, "reader", "read"),
    }
    for s in serve(tmp, "--max-upload", "1M", store=store):
        yield s, made


@pytest.fixture
def http(server: tuple[Server, dict[str, str]]) -> Iterator[httpx.Client]:
    s, made = server
    with s.client(made["w1"]) as c:
        yield c


def upload(http: httpx.Client, job: str, data: bytes, **fields: str) -> httpx.Response:
    # The part's own file name says nothing here: the name field names the artifact.
    return http.post(f"{Q}/{job}/artifacts/upload", files={"file": ("upload", data)}, data=fields)


def detail(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["detail"]["code"]


def test_upload_answers_the_contract_shape(
    server: tuple[Server, dict[str, str]], http: httpx.Client
) -> None:
    data = b"hello job"
    r = upload(
        http,
        "job-1",
        data,
        name="out/result.json",
        contentType="application/json",
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
        workerId="worker-1",
    )
    assert r.status_code == 201, r.text
    doc = r.json()
    assert set(doc) == KEYS
    assert (doc["jobId"], doc["name"], doc["contentType"], doc["sizeBytes"]) == (
        "job-1",
        "out/result.json",
        "application/json",
        len(data),
    )
    assert doc["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert doc["storagePath"].startswith("gitstore://jobs/job-1@")
    s, _ = server
    with Store.open(s.store) as store:
        assert store.get(doc["storagePath"]) == data
        assert store.show("jobs/job-1").metadata == {"worker_id": "worker-1"}
    fsck(s.store)


def test_list_is_newest_first_and_download_by_id_is_stable(http: httpx.Client) -> None:
    first = upload(http, "job-2", b"v1", name="log.txt").json()
    second = upload(http, "job-2", b"other", name="b.bin").json()
    third = upload(http, "job-2", b"v2", name="log.txt").json()
    items = http.get(f"{Q}/job-2/artifacts").json()["items"]
    assert [i["id"] for i in items] == [third["id"], second["id"], first["id"]]
    assert [
        i["id"] for i in http.get(f"{Q}/job-2/artifacts", params={"limit": 2}).json()["items"]
    ] == [
        third["id"],
        second["id"],
    ]
    old = http.get(f"{Q}/job-2/artifacts/{first['id']}/download")
    assert old.status_code == 200 and old.content == b"v1"
    assert old.headers["content-type"] == "application/octet-stream"
    assert 'filename="log.txt"' in old.headers["content-disposition"]
    assert http.get(f"{Q}/job-2/artifacts/{third['id']}/download").content == b"v2"


def test_refusals_carry_the_contract_codes(
    server: tuple[Server, dict[str, str]], http: httpx.Client
) -> None:
    s, made = server
    upload(http, "job-3", b"x", name="a")
    other = upload(http, "job-4", b"y", name="b").json()
    before_refs, before_files = git(s.store, "for-each-ref").stdout, store_files(s.store)
    assert detail(upload(http, "job-3", b"x", name="../etc/passwd")) == (
        422,
        "invalid_queue_payload",
    )
    assert detail(upload(http, "job-3", b"x", name="/abs")) == (422, "invalid_queue_payload")
    assert detail(upload(http, "job-3", b"", name="empty")) == (422, "invalid_queue_payload")
    no_name = http.post(f"{Q}/job-3/artifacts/upload", files={"file": ("", b"x")})
    assert detail(no_name) == (422, "invalid_queue_payload")
    wrong = "sha256:" + "0" * 64
    assert detail(upload(http, "job-3", b"x", name="d", digest=wrong)) == (
        422,
        "invalid_queue_payload",
    )
    assert detail(upload(http, "job-3", b"z" * (1 << 20), name="big")) == (
        413,
        "artifact_too_large",
    )
    assert detail(upload(http, "job-3", b"x", name="w", workerId="worker-2")) == (
        403,
        "worker_not_authorized",
    )
    assert git(s.store, "for-each-ref").stdout == before_refs
    assert store_files(s.store) == before_files
    assert detail(http.get(f"{Q}/no-such-job/artifacts")) == (404, "job_not_found")
    assert detail(http.get(f"{Q}/no-such-job/artifacts/{other['id']}/download")) == (
        404,
        "job_not_found",
    )
    assert detail(http.get(f"{Q}/job-3/artifacts/{other['id']}/download")) == (
        409,
        "artifact_job_mismatch",
    )
    assert detail(http.get(f"{Q}/job-3/artifacts/not-an-id/download")) == (
        404,
        "artifact_not_found",
    )
    assert detail(http.get(f"{Q}/job-3/artifacts", params={"limit": 501})) == (
        422,
        "invalid_queue_payload",
    )
    with s.client(made["r"]) as reader:
        assert detail(upload(reader, "job-3", b"x", name="r")) == (403, "forbidden")
    with s.client() as anonymous:
        assert detail(anonymous.get(f"{Q}/job-3/artifacts")) == (401, "unauthorized")
