"""Hostile requests against a real server: each gets a clear 4xx where the client is still there
to read it, nothing is written (refs unchanged, no file added to the store), and the server keeps
serving. Requests are crafted byte by byte on raw sockets where an HTTP client would clean them.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from serving import Server, raw_request, serve, status_of, store_files
from support import fsck, git

PUT_PATH = "/api/v1/tasks/h/t1/artifacts"
POST_PATH = "/api/v1/tasks/h/t1/versions"
BOUNDARY = "gitstoreboundary"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for s in serve(tmp_path_factory.mktemp("hostile"), "--max-upload", "64M"):
        with s.client() as c:
            assert c.put(f"{PUT_PATH}/seed", content=b"seed").status_code == 201
        yield s


@pytest.fixture
def unchanged(server: Server) -> Iterator[None]:
    """Assert after the test that refs and files are as before and the server still serves."""
    refs = git(server.store, "for-each-ref").stdout
    files = store_files(server.store)
    yield
    # A request whose client left may still be winding down in the server: wait (bounded).
    deadline = time.monotonic() + 15
    while store_files(server.store) != files and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store_files(server.store) == files
    assert git(server.store, "for-each-ref").stdout == refs
    assert server.alive()
    with server.client() as c:
        r = c.put(f"{PUT_PATH}/after", content=str(time.time()).encode())
        assert r.status_code == 201, r.text
        refs_after = git(server.store, "for-each-ref").stdout
    # Undo nothing: the following request's version is expected; the hostile one left none.
    assert refs_after != refs
    fsck(server.store)


def head(method: str, path: str, length: int | None, extra: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode("latin-1")


def multipart(*parts: tuple[str, bytes], close: bool = True) -> bytes:
    out = b""
    for disposition, data in parts:
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data
        out += b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


MP_TYPE = f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("kind", ["raw", "multipart"])
def test_a_client_that_leaves_mid_upload_writes_nothing(server: Server, kind: str) -> None:
    size = 1 << 20
    if kind == "raw":
        request = head("PUT", f"{PUT_PATH}/gone", size)
    else:
        request = head("POST", POST_PATH, size, MP_TYPE)
        request += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '.encode()
        request += b'filename="gone"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + b"x" * (size // 2))
        time.sleep(0.2)


@pytest.mark.usefixtures("unchanged")
def test_a_body_shorter_than_its_content_length_writes_nothing(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head("PUT", f"{PUT_PATH}/short", 1000) + b"y" * 500)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    # Either the server answers a 4xx, or it closes without answering: never a 2xx.
    assert answer == b"" or 400 <= status_of(answer) < 500, answer


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "body",
    [
        b"this is not multipart at all",
        multipart(('form-data; name="file"; filename="a"', b"data"), close=False),
        f"--{BOUNDARY}\r\nno headers end here".encode(),
        multipart(('attachment; filename="a"', b"data")),
        multipart(("form-data", b"no name")),
    ],
    ids=["garbage", "no-closing-boundary", "broken-headers", "not-form-data", "no-name"],
)
def test_a_malformed_multipart_body_is_400(server: Server, body: bytes) -> None:
    answer = raw_request(server.port, head("POST", POST_PATH, len(body), MP_TYPE) + body)
    assert status_of(answer) == 400, answer


@pytest.mark.usefixtures("unchanged")
def test_multipart_without_a_boundary_is_415(server: Server) -> None:
    answer = raw_request(
        server.port,
        head("POST", POST_PATH, 4, "Content-Type: multipart/form-data\r\n") + b"abcd",
    )
    assert status_of(answer) == 415, answer


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "filename",
    [
        "../x",
        "a/../../b",
        "/etc/passwd",
        "a\x01b",
        "a\x1b[31mred",
        ".git/config",
        ".gitstore/x",
        "",
    ],
)
def test_a_refused_part_name_is_422(server: Server, filename: str) -> None:
    body = multipart(
        ('form-data; name="file"; filename="ok"', b"fine"),
        (f'form-data; name="file"; filename="{filename}"', b"evil"),
    )
    answer = raw_request(server.port, head("POST", POST_PATH, len(body), MP_TYPE) + body)
    assert status_of(answer) == 422, answer
    assert b"InvalidNameError" in answer


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "path", ["../x", "a/../../b", "%2e%2e/x", "a/%2e%2e/%2e%2e/b", "/etc/passwd", "a%00b", "a%0ab"]
)
def test_a_refused_raw_put_name_is_422(server: Server, path: str) -> None:
    answer = raw_request(server.port, head("PUT", f"{PUT_PATH}/{path}", 4) + b"evil")
    assert status_of(answer) == 422, answer


@pytest.mark.usefixtures("unchanged")
def test_a_header_with_a_control_character_is_400(server: Server) -> None:
    answer = raw_request(
        server.port, head("PUT", f"{PUT_PATH}/ctl", 4, "X-Evil: a\x01b\r\n") + b"evil"
    )
    assert status_of(answer) == 400, answer


@pytest.mark.usefixtures("unchanged")
def test_ten_thousand_parts_are_413(server: Server) -> None:
    body = multipart(*[(f'form-data; name="file"; filename="p{i}"', b"x") for i in range(10_000)])
    answer = raw_request(server.port, head("POST", POST_PATH, len(body), MP_TYPE) + body)
    assert status_of(answer) == 413, answer


@pytest.mark.usefixtures("unchanged")
def test_unknown_form_fields_are_422(server: Server) -> None:
    with server.client() as c:
        r = c.post(POST_PATH, files={"file": ("a", b"1")}, data={"mesage": "typo"})
    assert r.status_code == 422 and "mesage" in r.json()["detail"]


def test_the_server_survives_all_of_it(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/api/v1/tasks/h/t1/artifacts/seed").content == b"seed"
