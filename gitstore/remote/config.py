"""Remotes as the store's git config records them: listed, added, removed, and a name or URL
resolved to the URL a transfer uses.

A remote is an ordinary Git remote (``remote.NAME.url``, fetch refspec
``+refs/artifacts/*:refs/artifacts/*``), so stock git sees it too. A URL holding a password is
refused: credentials come from the environment or git's credential helpers (see
:mod:`gitstore.remote.transport`).
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.parse

from dulwich.config import ConfigFile

from gitstore.backend.config import read as read_config
from gitstore.backend.config import update as update_config
from gitstore.errors import NotFoundError, UsageError
from gitstore.model import Remote
from gitstore.store import Store

__all__ = [
    "DEFAULT_REMOTE",
    "FETCH_REFSPEC",
    "add_remote",
    "check_url",
    "remotes",
    "remove_remote",
    "resolve_remote",
    "store_gitdir",
]

FETCH_REFSPEC = "+refs/artifacts/*:refs/artifacts/*"

DEFAULT_REMOTE = "origin"

_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def remotes(store: Store) -> list[Remote]:
    """Every remote recorded in the store's git config, by name."""
    config = read_config(store_gitdir(store))
    out = []
    for section in config.sections():
        if len(section) == 2 and section[0] == b"remote":
            with contextlib.suppress(KeyError):
                url = config.get(section, b"url").decode()
                out.append(Remote(section[1].decode(), url))
    return sorted(out, key=lambda r: r.name)


def add_remote(store: Store, name: str, url: str) -> Remote:
    """Record remote ``name`` at ``url`` (with the task refspec) in the store's git config."""
    _check_remote_name(name)
    check_url(url)
    section = (b"remote", name.encode())

    def add(config: ConfigFile) -> None:
        if config.has_section(section):
            raise UsageError(f"remote {name!r} already exists (remove it first)")
        config.set(section, b"url", url.encode())
        config.set(section, b"fetch", FETCH_REFSPEC.encode())

    update_config(store_gitdir(store), add, fsync=store.settings.fsync)
    return Remote(name, url)


def remove_remote(store: Store, name: str) -> Remote:
    """Forget remote ``name``; raises NotFoundError if there is none."""
    section = (b"remote", name.encode())

    def remove(config: ConfigFile) -> str:
        try:
            url = config.get(section, b"url").decode()
            del config[section]
        except KeyError:
            raise NotFoundError(f"no remote {name!r}") from None
        return url

    return Remote(name, update_config(store_gitdir(store), remove, fsync=store.settings.fsync))


def store_gitdir(store: Store) -> str:
    """The Git directory of ``store``; UsageError for a memory store, which has no remotes."""
    if store.path is None:
        # In memory, or served over HTTP (gitstore.client): no folder here to transfer from.
        raise UsageError(
            "this store has no folder on this machine (it is in memory, or served over HTTP): "
            "remotes, transfers and bundles need a store on disk"
        )
    return store.path


def _check_remote_name(name: str) -> None:
    if not _REMOTE_NAME.match(name) or name.endswith(".lock") or ".." in name:
        raise UsageError(f"remote name {name!r}: use letters, digits, '.', '_' and '-'")


def check_url(url: str) -> None:
    """Refuse what is no URL or path, and an HTTP URL holding a password (UsageError)."""
    if not url or "\n" in url or "\0" in url:
        raise UsageError(f"{url!r} is not a URL or path")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("http", "https") and parsed.password:
        raise UsageError(
            "refusing a URL that holds a password: put it in GITSTORE_HTTP_PASSWORD or "
            "GITSTORE_HTTP_TOKEN, or in git's credential helper"
        )


def resolve_remote(store: Store, remote: str | None) -> tuple[str, str]:
    """``(name, url)`` of a remote name, or of a URL/path given directly."""
    name = remote or DEFAULT_REMOTE
    for r in remotes(store):
        if r.name == name:
            return r.name, r.url
    if remote is None:
        raise UsageError("no remote given and no remote 'origin' (see 'gitstore remote add')")
    if _REMOTE_NAME.match(remote) and not os.path.exists(remote):
        raise NotFoundError(f"no remote {remote!r} (see 'gitstore remote ls')")
    check_url(remote)
    return remote, remote
