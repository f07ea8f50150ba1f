"""Push and pull over real network peers: ``git daemon``, ``git http-backend`` and (fake) ssh.

Every server binds 127.0.0.1 on a free port, is started by its fixture and stopped by it. SSH uses
a fake ``ssh`` command (GIT_SSH_COMMAND) that runs the requested git service locally: starting a
real sshd needs host keys and root-owned paths a test should not touch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import fsck, git

from gitstore import NotAStoreError, RemoteAuthError, RemoteUnreachableError, Store
from gitstore import remote as R
from gitstore.cli.main import cli

HERE = Path(__file__).resolve().parent


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A folder of repositories to serve, holding an empty bare ``r.git``."""
    root = tmp_path / "srv"
    root.mkdir()
    bare(root / "r.git")
    return root


@pytest.fixture
def git_daemon(served: Path) -> Iterator[str]:
    """``git daemon`` on 127.0.0.1 with receive-pack enabled; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={served}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(served),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        yield f"git://127.0.0.1:{port}"
    finally:
        stop(proc)


def http_server(served: Path, tmp_path: Path, auth: str | None) -> Iterator[str]:
    portfile = tmp_path / f"port-{os.urandom(3).hex()}"
    args = [sys.executable, str(HERE / "http_backend.py"), str(served), str(portfile)]
    proc = subprocess.Popen([*args, *([auth] if auth else [])])
    try:
        deadline = time.monotonic() + 10
        while not portfile.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("http server did not start")
            time.sleep(0.02)
        port = int(portfile.read_text())
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def http(served: Path, tmp_path: Path) -> Iterator[str]:
    """Smart HTTP (``git http-backend`` behind a CGI bridge), no auth; yields its base URL."""
    yield from http_server(served, tmp_path, None)


@pytest.fixture
def http_auth(served: Path, tmp_path: Path) -> Iterator[str]:
    """The same, demanding basic auth as ``alice:s3cret``."""
    yield from http_server(served, tmp_path, "alice:s3cret")


def round_trip(url: str, served: Path, tmp_path: Path) -> None:
    """Push two tasks to ``url``, clone them back, diverge, pull a merge, push it, check all."""
    a = Store.open(tmp_path / "a.git", create=True)
    a.put("s/t", {"x.txt": "1", "big.bin": os.urandom(300_000)})
    a.put("s/u", {"y.txt": "2"})
    pushed = R.push(a, url)
    assert sorted(u.task for u in pushed.updated) == ["s/t", "s/u"]
    assert (
        git(served / "r.git", "rev-parse", "refs/artifacts/s/t").stdout.strip()
        == (a.heads()["s/t"])
    )
    b, _ = R.clone(url, tmp_path / "b.git")
    assert b.heads() == a.heads()
    a.put("s/t", {"x.txt": "a"})
    time.sleep(1.05)
    b.put("s/t", {"x.txt": "b"})
    assert not R.push(b).refused
    refused = R.push(a, url)
    assert [r.task for r in refused.refused] == ["s/t"]
    pulled = R.pull(a, url)
    assert pulled.merged[0].conflicts == ("x.txt",)
    assert not R.push(a, url).refused
    assert R.pull(b).updated[0].action == "fast-forward"
    assert a.heads() == b.heads()
    fsck(served / "r.git")
    a.close()
    b.close()


def test_git_daemon(git_daemon: str, served: Path, tmp_path: Path) -> None:
    round_trip(f"{git_daemon}/r.git", served, tmp_path)


def test_smart_http(http: str, served: Path, tmp_path: Path) -> None:
    round_trip(f"{http}/r.git", served, tmp_path)


def test_http_credentials_come_from_the_environment(
    http_auth: str, served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(tmp_path / "a.git", create=True) as a:
        a.put("s/t", {"x": "1"})
        heads = a.heads()
        with pytest.raises(RemoteAuthError):
            R.push(a, f"{http_auth}/r.git")
        monkeypatch.setenv("GITSTORE_HTTP_USERNAME", "alice")
        monkeypatch.setenv("GITSTORE_HTTP_PASSWORD", "wrong")
        with pytest.raises(RemoteAuthError):
            R.pull(a, f"{http_auth}/r.git")
        assert a.heads() == heads
        monkeypatch.setenv("GITSTORE_HTTP_PASSWORD", "s3cret")
        assert [u.task for u in R.push(a, f"{http_auth}/r.git").updated] == ["s/t"]


def test_http_credentials_from_git_credential_helper(
    http_auth: str, served: Path, tmp_path: Path
) -> None:
    home = Path(os.environ["HOME"])
    port = http_auth.rsplit(":", 1)[1]
    (home / ".git-credentials").write_text(f"http://alice:s3cret@127.0.0.1%3a{port}\n")
    subprocess.run(["git", "config", "--global", "credential.helper", "store"], check=True)
    with Store.open(tmp_path / "a.git", create=True) as a:
        a.put("s/t", {"x": "1"})
        assert [u.task for u in R.push(a, f"{http_auth}/r.git").updated] == ["s/t"]


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``ssh`` that runs the remote command locally (its last argument), like sshd would."""
    script = tmp_path / "fake-ssh"
    script.write_text('#!/bin/sh\nfor last; do :; done\nexec sh -c "$last"\n')
    script.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(script))
    return script


@pytest.mark.parametrize("form", ["ssh://", "scp"])
def test_ssh(fake_ssh: Path, served: Path, tmp_path: Path, form: str) -> None:
    repo = served / "r.git"
    url = f"ssh://git@fakehost{repo}" if form == "ssh://" else f"git@fakehost:{repo}"
    round_trip(url, served, tmp_path)


def test_unreachable_daemon_is_one_clear_error(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.git", create=True) as a:
        a.put("s/t", {"x": "1"})
        with pytest.raises(RemoteUnreachableError) as info:
            R.push(a, f"git://127.0.0.1:{free_port()}/r.git")
        assert "\n" not in str(info.value)
        with pytest.raises(RemoteUnreachableError):
            R.pull(a, f"http://127.0.0.1:{free_port()}/r.git")


def test_a_missing_repository_on_a_server_is_not_a_store(
    git_daemon: str, http: str, tmp_path: Path
) -> None:
    with Store.open(tmp_path / "a.git", create=True) as a:
        a.put("s/t", {"x": "1"})
        heads = a.heads()
        for url in (f"{git_daemon}/missing.git", f"{http}/missing.git"):
            with pytest.raises(NotAStoreError):
                R.pull(a, url)
        assert a.heads() == heads


def test_ssh_key_option_reaches_ssh(
    fake_ssh: Path, served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "ssh-args"
    logging_ssh = tmp_path / "logging-ssh"
    logging_ssh.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {fake_ssh} "$@"\n')
    logging_ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(logging_ssh))
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    store = tmp_path / "a.git"
    with Store.open(store, create=True) as a:
        a.put("s/t", {"x": "1"})
    url = f"git@fakehost:{served / 'r.git'}"
    result = CliRunner().invoke(
        cli, ["--store", str(store), "push", url, "--ssh-key", str(key)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert f"-i {key}" in log.read_text()
