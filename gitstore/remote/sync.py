"""clone and sync: a new store from a remote, and pull-then-push until both sides agree."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence

from gitstore.errors import UsageError
from gitstore.model import TransferResult
from gitstore.remote.config import DEFAULT_REMOTE, add_remote, check_url, resolve_remote
from gitstore.remote.pull import pull_url
from gitstore.remote.push import push_url
from gitstore.remote.scope import Scope
from gitstore.remote.transport import Progress
from gitstore.store import Store

__all__ = ["SYNC_ROUNDS", "clone", "sync"]

# Sync repeats pull-then-push while another writer keeps moving the remote; past this it says so.
SYNC_ROUNDS = 5


def clone(
    url: str,
    path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    ssh_key: str | None = None,
) -> tuple[Store, TransferResult]:
    """Make a new store at ``path`` holding every task of ``url``, with ``url`` as ``origin``.

    ``path`` must not exist or be an empty folder. On failure nothing is left behind.
    """
    root = os.path.abspath(os.fspath(path))
    existed = os.path.exists(root)
    if existed and (not os.path.isdir(root) or os.listdir(root)):
        raise UsageError(f"{root} exists and is not an empty folder")
    check_url(url)
    store = Store.open(root, create=True)
    try:
        add_remote(store, DEFAULT_REMOTE, url)
        result = pull_url(store, DEFAULT_REMOTE, url, Scope(()), progress, ssh_key)
    except BaseException:
        store.close()
        if existed:
            for entry in os.listdir(root):
                full = os.path.join(root, entry)
                if os.path.isdir(full):
                    shutil.rmtree(full, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(full)
        else:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return store, result


def sync(
    store: Store,
    remote: str | None = None,
    scope: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    allow_secrets: bool = False,
    ssh_key: str | None = None,
) -> TransferResult:
    """Pull, then push, until both sides hold the same task refs (or :data:`SYNC_ROUNDS` pass).

    A push refused because the remote moved after our pull makes another round; what is still
    refused after the last round is in ``refused``.
    """
    name, url = resolve_remote(store, remote)
    sel = Scope(scope)
    total = TransferResult(name, url)
    for _ in range(SYNC_ROUNDS):
        total.absorb(pull_url(store, name, url, sel, progress, ssh_key))
        pushed = push_url(store, name, url, sel, progress, allow_secrets, ssh_key)
        total.absorb(pushed)
        # Only a remote that moved meanwhile is worth another round; secrets stay secrets.
        if not any(r.kind != "secrets" for r in pushed.refused):
            break
    return total
