"""What the REST API takes so that gitstore's own HTTP client loses nothing a local put records.

A multipart upload may carry an ``artifacts`` field: per file part, what ``Artifact.to_dict``
says (content type, tags, executable bit, masked secrets, truncation) and the sha256 the
client computed while sending it, checked before any ref moves. A task's log may start at
a revision and carry each version's artifacts, as ``Store.log`` does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest
from serving import Server, serve

from gitstore import Store

API = "/api/v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("fields"))


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def upload(http: httpx.Client, task: str, facts: object, **fields: str) -> httpx.Response:
    return http.post(
        f"{API}/tasks/{task}/versions",
        files=[
            ("file", ("run.sh", b"#!/bin/sh\n", "application/octet-stream")),
            ("file", ("out.log", b"kept\n", "text/plain")),
        ],
        data={"artifacts": json.dumps(facts), **fields},
    )


def test_artifacts_field_records_each_files_facts(server: Server, http: httpx.Client) -> None:
    facts = {
        "run.sh": {"executable": True, "tags": {"role": "tool"}, "content_type": "text/x-sh"},
        "out.log": {
            "masked_secrets": 2,
            "truncated": {"original_size": 9, "original_sha256": "ab" * 32, "kept": [[0, 5]]},
        },
    }
    r = upload(http, "facts/t1", facts, tag="run=1")
    assert r.status_code == 201, r.text
    with Store.open(server.store) as store:
        tool = store.artifact("facts/t1", "run.sh")
        log = store.artifact("facts/t1", "out.log")
    assert (tool.executable, tool.content_type, dict(tool.tags)) == (
        True,
        "text/x-sh",
        {"run": "1", "role": "tool"},
    )
    assert (log.executable, log.content_type, log.masked_secrets) == (False, "text/plain", 2)
    assert json.loads(json.dumps(log.truncated)) == {
        "original_size": 9,
        "original_sha256": "ab" * 32,
        "kept": [[0, 5]],
    }


def test_artifacts_field_naming_no_file_part_is_refused(http: httpx.Client) -> None:
    r = upload(http, "facts/t2", {"missing.txt": {"executable": True}})
    assert r.status_code == 422, r.text
    assert "missing.txt" in r.json()["detail"]


@pytest.mark.parametrize(
    "facts",
    [{"run.sh": {"colour": "red"}}, {"run.sh": {"executable": "yes"}}, ["run.sh"], "not json"],
)
def test_artifacts_field_of_the_wrong_shape_is_refused(http: httpx.Client, facts: object) -> None:
    files = [("file", ("run.sh", b"x", "text/plain"))]
    raw = facts if isinstance(facts, str) else json.dumps(facts)
    r = http.post(f"{API}/tasks/facts/t3/versions", files=files, data={"artifacts": raw})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "InvalidUploadError"


def test_log_starts_at_a_revision_and_carries_artifacts_when_asked(
    server: Server, http: httpx.Client
) -> None:
    for i in range(3):
        http.put(f"{API}/tasks/lg/t1/artifacts/a", content=str(i).encode())
    r = http.get(f"{API}/tasks/lg/t1/versions", params={"rev": "v2", "artifacts": "true"})
    assert r.status_code == 200, r.text
    with Store.open(server.store) as store:
        assert r.json() == [v.to_dict() for v in store.log("lg/t1@v2")]
    plain = http.get(f"{API}/tasks/lg/t1/versions").json()
    assert [v["version"] for v in plain] == [3, 2, 1]
    assert all("artifacts" not in v for v in plain)


def test_artifacts_field_digest_is_checked_before_the_version_is_made(
    server: Server, http: httpx.Client
) -> None:
    good = hashlib.sha256(b"kept\n").hexdigest()
    ok = upload(http, "facts/t4", {"out.log": {"sha256": f"sha256:{good}"}})
    assert ok.status_code == 201, ok.text
    bad = upload(http, "facts/t5", {"out.log": {"sha256": "sha256:" + "0" * 64}})
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"] == "DigestMismatchError"
    with Store.open(server.store) as store:
        assert "facts/t5" not in store.heads("facts")
