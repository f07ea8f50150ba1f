"""What each remote was last seen to hold: one head per task, kept in a file beside the refs.

Push and pull with a named remote record, per task, the head that remote holds
(``<store>/gitstore-remote-heads.json``: ``{remote: {"SPEC/TASK": commit}}``); retention reads
it for ``--min-copies`` (a version is on a remote when the remote's head reaches it).

A file and not remote-tracking refs: a ref keeps every object it reaches, so a tracking ref at
a pre-rewrite head would keep the versions retention dropped (and the bytes purge must remove)
alive in this store. The file pins nothing; a head whose objects are gone here tells only that
the remote holds something we no longer can check, which counts as no copy. The file is
rewritten whole under its git-style lock, read inside the lock, so two transfers at once both
land.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from gitstore._fs import Busy, atomic_write
from gitstore.errors import StoreError

__all__ = ["FILE", "read", "record"]

FILE = "gitstore-remote-heads.json"
# How long a transfer waits for another one's lock on the file.
LOCK_WAIT = 30.0


def read(gitdir: str) -> dict[str, dict[str, str]]:
    """``remote -> {SPEC/TASK: head}`` as last recorded (empty when nothing was)."""
    try:
        with open(os.path.join(gitdir, FILE), "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # Damaged state is no knowledge: nothing counts as a copy, so nothing is dropped for it.
        return {}
    if not isinstance(doc, dict):
        return {}
    return {
        str(remote): {str(k): str(v) for k, v in heads.items() if isinstance(v, str)}
        for remote, heads in doc.items()
        if isinstance(heads, dict)
    }


def record(gitdir: str, remote: str, heads: Mapping[str, str], *, fsync: bool = True) -> None:
    """Remember that ``remote`` holds ``heads`` (``SPEC/TASK -> commit``; other tasks as they
    were recorded).

    Raises:
      StoreError: another transfer held the file's lock for too long.
    """
    if not heads:
        return
    path = os.path.join(gitdir, FILE)
    try:
        with atomic_write(path, lock=True, wait=LOCK_WAIT, fsync=fsync) as out:
            state = read(gitdir)
            state.setdefault(remote, {}).update(heads)
            out.write(json.dumps(state, sort_keys=True, separators=(",", ":")).encode())
    except Busy:
        raise StoreError(f"{path}: another transfer holds its lock; try again") from None
