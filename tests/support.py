"""Helpers for tests: stock git as the second opinion on what gitstore writes, and disk stores
built on wrapping backends."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitstore import Store
from gitstore.backend import config, repo
from gitstore.backend.objects import DiskObjects
from gitstore.backend.refs import DiskRefs


def git(gitdir: Path | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run stock git against ``gitdir`` and return the finished process (text output)."""
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", *args],
        capture_output=True,
        text=True,
        check=check,
    )


def fsck(gitdir: Path | str) -> None:
    """Assert that ``git fsck --strict`` finds nothing wrong with the store."""
    result = git(gitdir, "fsck", "--strict", "--no-dangling", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line and not line.startswith(("notice:", "Checking"))
    ]
    assert not bad, bad


def open_store(
    path: Path | str,
    *,
    objects: type[DiskObjects] = DiskObjects,
    refs: type[DiskRefs] = DiskRefs,
) -> Store:
    """The disk store at ``path`` (created if need be) as ``Store.open`` builds it, but with
    backends of the classes given: subclasses of the disk backends that count calls or let
    another writer in at a chosen moment, passed to ``Store(...)`` like any backend."""
    gitdir = repo.locate(path, create=True)
    s = config.settings(gitdir)
    return Store(
        objects(os.path.join(gitdir, "objects"), fsync=s.fsync, compression=s.compression),
        refs(gitdir, fsync=s.fsync),
        path=gitdir,
        settings=s,
    )


def compressible(size: int) -> bytes:
    """``size`` bytes of hex digits, random yet compressible: a big blob of these is stored as a
    loose object (incompressible big blobs go into a pack of their own), for tests that damage,
    age or lose loose object files."""
    return os.urandom((size + 1) // 2).hex().encode()[:size]
