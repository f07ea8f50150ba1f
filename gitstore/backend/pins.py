"""Pins: writers that rely on objects already in the store, kept apart from what removes objects.

A put that finds a blob already stored does not write it again: from that moment until its ref
moves, the put depends on an object that no ref reaches yet. Something that removes unreachable
objects at that moment (gc's pack rewrite, :func:`gitstore.gc.expunge`) would leave the new
version pointing at nothing. So a writer *pins* the store for that span, and a remover waits
until no pin is held before it removes anything, then reads the refs again.

Two flocks make a turnstile (a readers-writer lock that cannot starve the remover). They are
taken on folders every store has, so no file is added to the store:

- ``objects/``: pinned writers hold its flock shared; a remover takes it exclusively.
- the repository folder itself (the *gate*): a writer takes it shared only for the instant it
  takes its pin; a remover holds it exclusively while it waits for the pins and while it
  removes, so that new writers queue at the gate instead of keeping the pins shared forever.

flocks vanish with the process that held them: a writer killed while pinned blocks nobody.
Stock git neither knows nor needs these locks (it never removes objects without a grace period
unless told to).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from gitstore.errors import ConflictError

__all__ = ["GATE", "PINS", "exclusive", "pinned"]

PINS = "objects"
GATE = "."
# How often a remover that waits looks again (seconds).
_POLL = 0.005


def _open(gitdir: str, name: str) -> int:
    return os.open(os.path.join(gitdir, name), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


@contextlib.contextmanager
def pinned(gitdir: str) -> Iterator[None]:
    """Hold a pin on the store at ``gitdir`` for the block: no object is removed meanwhile.

    Blocks while a remover holds the gate (for as long as its removal takes).
    """
    gate = _open(gitdir, GATE)
    try:
        fcntl.flock(gate, fcntl.LOCK_SH)
        pins = _open(gitdir, PINS)
        try:
            fcntl.flock(pins, fcntl.LOCK_SH)
        except BaseException:
            os.close(pins)
            raise
    finally:
        os.close(gate)  # closing drops the gate's flock: it was only the way in
    try:
        yield
    finally:
        os.close(pins)


@contextlib.contextmanager
def exclusive(gitdir: str, timeout: float) -> Iterator[None]:
    """Hold the store alone against pinned writers: wait until every pin is released.

    New writers wait at the gate until the block ends. Raises
    :class:`~gitstore.errors.ConflictError` if pins are still held after ``timeout`` seconds
    (a writer stuck between finding an object and moving its ref), having removed nothing.
    """
    deadline = time.monotonic() + timeout
    gate = _open(gitdir, GATE)
    try:
        _take(gate, deadline, "a remover (gc or expunge) in another process")
        pins = _open(gitdir, PINS)
        try:
            _take(pins, deadline, "writers")
            yield
        finally:
            os.close(pins)
    finally:
        os.close(gate)


def _take(fd: int, deadline: float, who: str) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise ConflictError(
                    f"{who} kept the store busy; nothing was removed, try again"
                ) from None
            time.sleep(_POLL)
