"""The HTTP client (``Store.open("http://...")``) beyond the store contract it shares.

Tokens and the order they are looked for in, errors mapped back to the library's classes (a
tiny fake server crafts the answers a real one would not give), streaming both ways in bounded
memory, masking on the caller's side, and the calls a served store refuses. The contract itself
runs against a live server in test_store_contract.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import empty_refs
from serving import ROOT, Server, make_token, serve
from support import git

from gitstore import (
    ConflictError,
    InputError,
    IntegrityError,
    NotAStoreError,
    RemoteAuthError,
    RemoteError,
    RemoteUnreachableError,
    SecretsFoundError,
    Store,
    TaskNotFoundError,
    UsageError,
    bundle_create,
    push,
)
from gitstore.client import HttpStore

# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def remote(served: Server) -> Iterator[Store]:
    """The session's served store, emptied, opened through its URL."""
    empty_refs(served.store)
    with Store.open(served.url) as store:
        yield store


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server whose store has tokens, so every request needs one."""
    tmp = tmp_path_factory.mktemp("guarded")
    path = tmp / "store.git"
    Store.open(path, create=True).close()
    made = {"read": make_token(path, "reader", "read"), "write": make_token(path, "w", "write")}
    for server in serve(tmp, store=path):
        yield server, made


def credential_helper(home: Path, url: str, secret: str) -> None:
    """Make git's credential-store helper hold ``secret`` as the password for ``url``."""
    stored = home / "git-credentials"
    host = url.split("://", 1)[1]
    stored.write_text(f"http://gitstore:{secret}@{host}\n")
    subprocess.run(
        ["git", "config", "--global", "credential.helper", f"store --file={stored}"], check=True
    )


class Canned(BaseHTTPRequestHandler):
    """Answers every request with the status, headers and body the test set on the server."""

    def do_GET(self) -> None:
        self.server.seen = self.path  # type: ignore[attr-defined]
        answer = self.server.answer  # type: ignore[attr-defined]
        status, headers, body, cut = answer
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        if cut:
            self.close_connection = True

    do_DELETE = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[ThreadingHTTPServer]:
    """A server on 127.0.0.1 that answers what ``fake.answer`` says."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def answer(
    fake: ThreadingHTTPServer,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    cut: bool = False,
) -> str:
    fake.answer = (status, headers or {}, body, cut)  # type: ignore[attr-defined]
    return f"http://127.0.0.1:{fake.server_address[1]}"


def problem(status: int, error: str, exit_code: int, detail: str = "what went wrong") -> bytes:
    doc = {"type": "about:blank", "title": "t", "status": status, "detail": detail}
    return json.dumps({**doc, "error": error, "exit_code": exit_code}).encode()


# -- opening ---------------------------------------------------------------------------------


def test_a_url_opens_a_served_store_and_makes_no_request_until_a_call() -> None:
    store = Store.open("http://127.0.0.1:1/", create=True)
    assert isinstance(store, HttpStore) and store.url == "http://127.0.0.1:1"
    assert store.path is None
    with pytest.raises(RemoteUnreachableError, match=r"127\.0\.0\.1:1.*Connection refused"):
        store.specs()


def test_a_path_after_the_host_is_kept_for_a_proxys_prefix(fake: ThreadingHTTPServer) -> None:
    base = answer(fake, 200, b"[]")
    assert Store.open(f"{base}/stores/runs/").specs() == []
    assert fake.seen == "/stores/runs/api/v1/specs"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://host/store", "http:// or https://"),
        ("file:///srv/store.git", "http:// or https://"),
        ("http://user:secret@host:8080", "holds credentials"),
        ("http://host:8080/?token=secret", r"no \?query"),
        ("http:///store", "names no host"),
    ],
)
def test_a_store_url_that_is_not_a_plain_http_url_is_refused(url: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as caught:
        Store.open(url)
    assert "secret" not in str(caught.value)


def test_a_token_for_a_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="served store"):
        Store.open(tmp_path / "store.git", create=True, token="t")


def test_http_store_overrides_every_public_store_call() -> None:
    # A call Store gains later must be written for the served store too (or listed here with
    # the reason it is safe), else it would run the local code on a store with no files.
    safe = {"check_put"}  # static: checks arguments, touches no store
    public = {name for name in dir(Store) if not name.startswith("_")}
    missing = sorted(public - safe - set(vars(HttpStore)))
    assert missing == []


# -- tokens ----------------------------------------------------------------------------------


def test_the_token_argument_comes_first(
    guarded: tuple[Server, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, tokens = guarded
    monkeypatch.setenv("GITSTORE_TOKEN", "gst_not-a-token")
    assert Store.open(server.url, token=tokens["read"]).specs() == []
    monkeypatch.setenv("GITSTORE_TOKEN", tokens["read"])
    with pytest.raises(RemoteAuthError, match="not known"):
        Store.open(server.url, token="gst_not-a-token").specs()


def test_the_environment_comes_before_git_credentials(
    guarded: tuple[Server, dict[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server, tokens = guarded
    credential_helper(tmp_path, server.url, "gst_not-a-token")
    monkeypatch.setenv("GITSTORE_TOKEN", tokens["read"])
    assert Store.open(server.url).specs() == []
    monkeypatch.delenv("GITSTORE_TOKEN")
    with pytest.raises(RemoteAuthError, match="not known"):
        Store.open(server.url).specs()


def test_git_credentials_are_used_when_nothing_else_is_given(
    guarded: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, tokens = guarded
    credential_helper(tmp_path, server.url, tokens["write"])
    assert Store.open(server.url).put("s/t", {"a": b"a"}).version >= 1


def test_no_token_anywhere_is_refused_by_a_server_that_needs_one(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    server, _ = guarded
    with pytest.raises(RemoteAuthError, match="401") as caught:
        Store.open(server.url).specs()
    assert caught.value.exit_code == 12


def test_a_read_token_cannot_write_even_a_big_streamed_put(
    guarded: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, tokens = guarded
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (8 << 20))  # refused before the body is read: the answer still arrives
    store = Store.open(server.url, token=tokens["read"])
    with pytest.raises(RemoteAuthError, match="403"):
        store.put("s/denied", {"big.bin": big})
    assert "s/denied" not in Store.open(server.url, token=tokens["read"]).heads("s")


# -- errors come back as the library's classes -----------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected", "message"),
    [
        (404, problem(404, "TaskNotFoundError", 4, "no task s/t"), TaskNotFoundError, "no task"),
        (500, problem(500, "IntegrityError", 6, "object abc is corrupt"), IntegrityError, "abc"),
        # Server-only classes come back as the library class of their exit code.
        (412, problem(412, "PreconditionFailedError", 5), ConflictError, "what went wrong"),
        (422, problem(422, "InvalidParameterError", 2), UsageError, "what went wrong"),
        (403, problem(403, "ForbiddenError", 12, "scope read"), RemoteAuthError, "scope read"),
        (401, b"no", RemoteAuthError, "401"),
        (500, problem(500, "InternalError", 70, "internal error"), RemoteError, "server failed"),
        (404, b"<html>Not Found</html>", NotAStoreError, "not a gitstore|is this a gitstore"),
        (200, b"<html>a web page</html>", NotAStoreError, "not JSON"),
        (200, b'{"spec": 1}', NotAStoreError, "not the document expected"),
    ],
)
def test_answers_are_raised_as_the_library_classes(
    fake: ThreadingHTTPServer,
    status: int,
    body: bytes,
    expected: type[Exception],
    message: str,
) -> None:
    store = Store.open(answer(fake, status, body))
    with pytest.raises(expected, match=message) as caught:
        store.show("s/t")
    assert type(caught.value) is expected  # the class itself, not a subclass of the server's


def test_a_stale_expect_on_rm_task_is_a_conflict_as_locally(remote: Store) -> None:
    first = remote.put("s/t", {"a": b"1"}).commit
    remote.put("s/t", {"a": b"2"})
    with pytest.raises(ConflictError):
        remote.rm_task("s/t", expect=first)
    assert "s/t" in remote.heads()


def test_a_bad_time_in_find_is_a_usage_error_as_locally(remote: Store) -> None:
    from gitstore import find

    with pytest.raises(UsageError, match="ISO 8601"):
        find(remote, since="yesterday-ish")


# -- streaming -------------------------------------------------------------------------------

RSS_SCRIPT = """
import resource, sys
from pathlib import Path
from gitstore import Store

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

url, path = sys.argv[1], Path(sys.argv[2])
store = Store.open(url)
store.put("rss/warm", {"a": b"x" * 2_000_000})  # imports, pools and buffers, before the count
store.get("rss/warm", "a")
base = peak_mb()
store.put("rss/t", {"file.bin": path})
with open(path, "rb") as stream:
    store.put("rss/t", {"stream.bin": stream})
total = 0
for name in ("file.bin", "stream.bin"):
    with store.open_artifact("rss/t", name, verify=True) as reader:
        for chunk in reader.iter_chunks():
            total += len(chunk)
print(base, peak_mb(), total)
"""


@pytest.mark.slow
def test_put_and_get_of_a_big_artifact_never_hold_it_in_memory(
    remote: Store, served: Server, tmp_path: Path
) -> None:
    size = 128 << 20
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
        for i in range(size >> 20):
            f.write(block[:-8] + i.to_bytes(8, "big"))
    # A process of its own, so that its peak RSS counts the client only (the server is another).
    done = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, served.url, str(big)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    base, peak, total = map(int, done.stdout.split())
    assert total == 2 * size
    # Two puts (a file, a stream) and two gets of 128 MiB each: holding one would add 128 MB.
    assert peak - base < 32, (base, peak)


def test_a_response_cut_short_is_an_error_never_a_short_artifact(fake: ThreadingHTTPServer) -> None:
    data = b"0123456789" * 1000
    headers = {"ETag": '"' + "a" * 40 + '"', "X-Gitstore-Sha256": hashlib.sha256(data).hexdigest()}
    store = Store.open(answer(fake, 200, data, headers, cut=True))
    with pytest.raises(RemoteUnreachableError), store.open_artifact("s/t", "a") as reader:
        reader.read()


def test_verify_refuses_bytes_that_do_not_hash_to_the_recorded_sha256(
    fake: ThreadingHTTPServer,
) -> None:
    headers = {"ETag": '"' + "a" * 40 + '"', "X-Gitstore-Sha256": hashlib.sha256(b"x").hexdigest()}
    store = Store.open(answer(fake, 200, b"not x", headers))
    assert store.get("s/t", "a") == b"not x"
    with pytest.raises(IntegrityError, match="sha256"):
        store.get("s/t", "a", verify=True)


class Failing(io.RawIOBase):
    """A stream that gives 3 MiB, then fails as a broken pipe or disk would."""

    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.sent >= 3 << 20:
            raise OSError(5, "Input/output error")
        n = min(len(b), 1 << 20)
        memoryview(b)[:n] = b"y" * n
        self.sent += n
        return n


def test_a_stream_that_fails_midway_is_an_input_error_and_makes_no_version(remote: Store) -> None:
    before = remote.put("s/t", {"a": b"a"}).commit
    with pytest.raises(InputError, match="Input/output error"):
        remote.put("s/t", {"big": Failing()})  # type: ignore[dict-item]
    assert remote.heads() == {"s/t": before}


def test_a_file_that_grows_while_sent_is_an_input_error(remote: Store, tmp_path: Path) -> None:
    path = tmp_path / "growing.log"
    path.write_bytes(b"z" * (3 << 20))
    grown = False

    def grow(_: int) -> None:
        nonlocal grown
        if not grown:  # after the first piece is read: the size put saw is no longer true
            grown = True
            with open(path, "ab") as f:
                f.write(b"more")

    with pytest.raises(InputError, match="changed while"):
        remote.put("s/t", {"growing.log": path}, progress=grow)
    assert remote.heads() == {}


# -- masking happens on the caller's side ----------------------------------------------------


def test_mask_secrets_masks_with_the_callers_environment_before_sending(
    remote: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set after the server started: only this process knows the value, so if it comes back
    # masked, this side masked it.
    secret = "callers-own-deploy-value-4242"
    monkeypatch.setenv("CLIENT_SIDE_TOKEN", secret)
    v = remote.put(
        "s/t",
        {"log.log": f"using {secret}\n".encode()},
        message=f"deployed with {secret}",
        metadata={"key": secret},
        tags={"t": secret},
        mask_secrets=True,
    )
    art = v.artifact("log.log")
    assert remote.get(art.uri) == b"using ***MASKED***\n"
    assert art.masked_secrets == 1
    shown = remote.show("s/t")
    assert secret not in json.dumps(shown.to_dict())


def test_a_secret_run_id_is_refused_before_anything_is_sent(
    remote: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLIENT_SIDE_TOKEN", "callers-own-deploy-value-4242")
    with pytest.raises(SecretsFoundError):
        remote.put("s/t", {"a": b"a"}, run_id="callers-own-deploy-value-4242", mask_secrets=True)
    assert remote.heads() == {}


# -- what needs the store's files ------------------------------------------------------------


@pytest.mark.parametrize("call", ["verify", "scan", "gc"])
def test_calls_that_read_the_stores_files_are_refused_naming_them(remote: Store, call: str) -> None:
    with pytest.raises(UsageError, match=f"{call} needs a store on this machine"):
        getattr(remote, call)()


def test_transfers_need_a_local_store(remote: Store, tmp_path: Path) -> None:
    remote.put("s/t", {"a": b"a"})
    with pytest.raises(UsageError):
        push(remote, str(tmp_path / "elsewhere.git"))
    with pytest.raises(UsageError, match="no folder on this machine"):
        bundle_create(remote, tmp_path / "x.bundle")
    assert not (tmp_path / "x.bundle").exists()


def test_a_served_version_is_what_stock_git_sees_on_the_server(
    remote: Store, served: Server, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "run.sh").write_bytes(b"#!/bin/sh\n")
    (tmp_path / "out" / "run.sh").chmod(0o755)
    (tmp_path / "out" / "data.txt").write_bytes(b"d")
    v = remote.put("s/t", {"bin": tmp_path / "out"})
    tree = git(served.store, "ls-tree", "-r", v.commit).stdout
    assert "100755 blob" in tree.split("bin/run.sh")[0].splitlines()[-1]
    assert git(served.store, "cat-file", "-p", f"{v.commit}:bin/data.txt").stdout == "d"


def test_a_put_of_more_files_than_the_server_takes_is_an_input_error(
    remote: Store, tmp_path: Path
) -> None:
    # The server takes at most 1,000 file parts in one upload (one version), where a local put
    # has no limit: its 413 comes back as an InputError naming the limit, and nothing is made.
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1001):
        (folder / f"f{i:04d}.txt").write_bytes(b"x")
    with pytest.raises(InputError, match="more than 1000 files"):
        remote.put("s/t", {"many": folder})
    assert remote.heads() == {}
