"""Fixtures shared by the whole suite.

Every test runs with git isolated from the user's configuration (HOME pointed at a temp folder,
GIT_CONFIG_NOSYSTEM=1, GIT_* variables cleared), so stock git answers the same everywhere.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import Server, serve
from support import git

from gitstore import Store


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's git config and GITSTORE_DIR out of every test."""
    home = tmp_path_factory.mktemp("home")
    for key in list(os.environ):
        if key.startswith("GIT_") or key == "GITSTORE_DIR":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.invalid")


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where a disk store for this test lives (not created yet)."""
    return tmp_path / "store.git"


@pytest.fixture
def disk_store(store_path: Path) -> Iterator[Store]:
    """A fresh store on disk."""
    with Store.open(store_path, create=True) as s:
        yield s


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The ``store`` fixture's kinds: disk and memory, and a served store ("http") for tests in
    modules marked ``served`` (``pytestmark = pytest.mark.served``)."""
    if "store" in metafunc.fixturenames:
        kinds = ["disk", "memory"]
        if metafunc.definition.get_closest_marker("served") is not None:
            kinds.append("http")
        metafunc.parametrize("store", kinds, indirect=True)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """ONE ``gitstore serve`` for the session (no tokens, loopback); tests empty it between them."""
    yield from serve(tmp_path_factory.mktemp("served"))


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same contract, run against a disk store, an in-memory store and (in modules marked
    ``served``) a store served over HTTP, emptied before each test."""
    if request.param == "memory":
        s = Store.memory()
    elif request.param == "http":
        local = request.node.get_closest_marker("local_only")
        if local is not None:
            pytest.skip(f"local stores only: {local.args[0]}")
        server: Server = request.getfixturevalue("served")
        empty_refs(server.store)
        s = Store.open(server.url)
    else:
        s = Store.open(tmp_path / "store.git", create=True)
    with s:
        yield s


def empty_refs(gitdir: Path) -> None:
    """Delete every task ref with stock git: a served store as good as new for the next test
    (the server reads refs on every request; objects left behind are unreachable)."""
    listed = git(gitdir, "for-each-ref", "--format=delete %(refname)", "refs/artifacts/")
    if listed.stdout:
        subprocess.run(
            ["git", f"--git-dir={gitdir}", "update-ref", "--stdin"],
            input=listed.stdout,
            text=True,
            check=True,
            capture_output=True,
        )
