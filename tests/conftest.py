"""Fixtures shared by the whole suite.

Every test runs with git isolated from the user's configuration (HOME pointed at a temp folder,
GIT_CONFIG_NOSYSTEM=1, GIT_* variables cleared), so stock git answers the same everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(params=["disk", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same contract, run against a disk store and an in-memory store."""
    if request.param == "memory":
        s = Store.memory()
    else:
        s = Store.open(tmp_path / "store.git", create=True)
    with s:
        yield s
