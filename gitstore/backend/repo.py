"""The repository a store lives in: found at a path, or created there as a bare Git repository.

A store is any bare repository (or a repository's ``.git``); a new one is made by dulwich's
``init_bare`` plus the config a store wants: ``gitstore.format``, and git's auto-gc and reflogs
off, since many processes write a store at once and git's own gc must not repack under them.
"""

from __future__ import annotations

import os

from dulwich.config import ConfigFile
from dulwich.repo import Repo

from gitstore.backend import config
from gitstore.errors import StoreError, StoreNotFoundError

__all__ = ["init_bare", "is_gitdir", "locate"]


def is_gitdir(path: str) -> bool:
    """Does ``path`` look like a Git directory (HEAD, objects/, refs/)?"""
    return (
        os.path.isfile(os.path.join(path, "HEAD"))
        and os.path.isdir(os.path.join(path, "objects"))
        and os.path.isdir(os.path.join(path, "refs"))
    )


def locate(path: str | os.PathLike[str], *, create: bool = False) -> str:
    """The Git directory of the store at ``path`` (a bare repository, or a repository's ``.git``).

    With ``create`` a missing path (or an empty folder) becomes a new bare repository.

    Raises:
      StoreNotFoundError: nothing at ``path`` (and not ``create``).
      StoreError: something else is there, or the store cannot be created.
    """
    root = os.path.abspath(os.fspath(path))
    gitdir = root
    if os.path.isdir(os.path.join(root, ".git")):
        gitdir = os.path.join(root, ".git")
    if is_gitdir(gitdir):
        return gitdir
    if not create:
        if os.path.exists(root):
            raise StoreError(f"{root} is not a gitstore (no bare Git repository there)")
        raise StoreNotFoundError(f"no store at {root} (run 'gitstore init' or put something)")
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise StoreError(f"{root} exists and is not an empty folder or a Git repository")
    init_bare(root)
    return root


def init_bare(path: str) -> None:
    """Make ``path`` a new bare repository set up for a store; StoreError if it cannot be."""

    def setup(c: ConfigFile) -> None:
        c.set((b"gitstore",), b"format", b"1")
        # A store is written by many processes; git's own auto-gc must not repack under them.
        c.set((b"gc",), b"auto", b"0")
        c.set((b"core",), b"logAllRefUpdates", b"false")

    try:
        os.makedirs(path, exist_ok=True)
        Repo.init_bare(path).close()
        config.update(path, setup)
    except OSError as e:
        raise StoreError(f"cannot create a store at {path}: {e.strerror or e}") from None
