"""Tokens kept hashed in the store, and the ``gitstore token`` / ``gitstore serve`` commands."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import git

import gitstore.cli.serve as serve_module
from gitstore import NotFoundError, Store, Tokens, UsageError
from gitstore.cli.main import cli
from gitstore.errors import InvalidNameError


@pytest.fixture
def tokens(disk_store: Store) -> Tokens:
    return Tokens(disk_store.path)


def test_a_token_is_stored_as_its_sha256_only(tokens: Tokens) -> None:
    info, secret = tokens.add("ci", scope="write", spec="fix-*")
    raw = Path(tokens.path).read_text()
    assert secret not in raw
    assert hashlib.sha256(secret.encode()).hexdigest() in raw
    assert stat.S_IMODE(os.stat(tokens.path).st_mode) == 0o600
    assert json.loads(raw)["tokens"][0]["name"] == "ci"
    assert (info.name, info.scope, info.spec) == ("ci", "write", "fix-*")


def test_check_finds_the_token_of_a_secret_and_nothing_else(tokens: Tokens) -> None:
    a, secret_a = tokens.add("a")
    _, secret_b = tokens.add("b", scope="admin")
    assert tokens.check(secret_a) == a
    assert tokens.check(secret_b).name == "b"  # type: ignore[union-attr]
    assert tokens.check(secret_a + "x") is None
    assert tokens.check("") is None


def test_scopes_are_ordered_and_patterns_limit_specs(tokens: Tokens) -> None:
    w, _ = tokens.add("w", scope="write", spec="fix-*")
    assert w.allows("read", "fix-1") and w.allows("write", "fix-1")
    assert not w.allows("admin", "fix-1")
    assert not w.allows("read", "other")


def test_a_removed_token_no_longer_checks(tokens: Tokens) -> None:
    _, secret = tokens.add("gone")
    tokens.remove("gone")
    assert tokens.check(secret) is None
    with pytest.raises(NotFoundError):
        tokens.remove("gone")


def test_a_second_handle_sees_changes_on_disk(disk_store: Store) -> None:
    reader = Tokens(disk_store.path)
    assert not reader
    _, secret = Tokens(disk_store.path).add("late")
    assert reader.check(secret) is not None


def test_bad_names_scopes_and_duplicates_are_refused(tokens: Tokens) -> None:
    tokens.add("one")
    with pytest.raises(UsageError):
        tokens.add("one")
    with pytest.raises(InvalidNameError):
        tokens.add("../x")
    with pytest.raises(UsageError):
        tokens.add("two", scope="root")
    with pytest.raises(InvalidNameError):
        tokens.add("three", spec="a/b")
    assert [t.name for t in tokens.all()] == ["one"]


def test_the_token_file_is_not_part_of_a_clone(tmp_path: Path, tokens: Tokens) -> None:
    tokens.add("secret-holder")
    mirror = tmp_path / "mirror.git"
    git(Path(tokens.path).parent.parent, "clone", "--mirror", "-q", ".", str(mirror))
    assert not (mirror / "gitstore" / "tokens.json").exists()
    assert "tokens" not in git(Path(tokens.path).parent.parent, "for-each-ref").stdout


def test_a_damaged_token_file_is_a_store_error(tokens: Tokens) -> None:
    from gitstore import StoreError

    Path(tokens.path).parent.mkdir(parents=True, exist_ok=True)
    Path(tokens.path).write_text("{not json")
    with pytest.raises(StoreError):
        tokens.check("x")


# -- the commands ------------------------------------------------------------------------------


def run(store: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_token_add_prints_the_secret_once_and_ls_never(store_path: Path) -> None:
    Store.open(store_path, create=True).close()
    code, out, err = run(store_path, "token", "add", "ci", "--scope", "write", "--spec", "fix-*")
    assert code == 0 and "not shown again" in err
    secret = out.strip()
    assert Tokens(store_path).check(secret) is not None
    code, out, _ = run(store_path, "token", "ls")
    assert code == 0 and "ci" in out and "write" in out and secret not in out
    code, out, _ = run(store_path, "token", "ls", "--json")
    assert json.loads(out)[0]["spec"] == "fix-*"
    assert run(store_path, "token", "rm", "ci")[0] == 0
    assert run(store_path, "token", "rm", "ci")[0] == NotFoundError.exit_code


def test_token_commands_need_an_existing_store(store_path: Path) -> None:
    assert run(store_path, "token", "ls")[0] == 4
    assert not store_path.exists()


def test_serve_refuses_a_public_address_without_tokens(store_path: Path) -> None:
    code, _, err = run(store_path, "serve", "--host", "0.0.0.0", "--port", "0")
    assert code == UsageError.exit_code
    assert "without tokens" in err and len(err.strip().splitlines()) == 1


def test_serve_without_the_extra_says_how_to_install_it(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = serve_module.importlib.util.find_spec

    def missing(name: str, *a: object) -> object:
        return None if name == "starlette" else real(name)

    monkeypatch.setattr(serve_module.importlib.util, "find_spec", missing)
    code, _, err = run(store_path, "serve")
    assert code == UsageError.exit_code
    assert err.strip() == "gitstore: " + serve_module.INSTALL_HINT
    assert "pip install 'gitstore-artifacts[server]'" in err


def test_serve_refuses_a_bad_max_upload(store_path: Path) -> None:
    code, _, err = run(store_path, "serve", "--max-upload", "lots")
    assert code == UsageError.exit_code and "--max-upload" in err


def test_serve_listens_on_a_tcp_socket_that_asyncio_sets_nodelay_on() -> None:
    # With proto 0, asyncio skips TCP_NODELAY on accepted connections and every small answer
    # waits ~40 ms for a delayed ACK.
    sock = serve_module._listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
