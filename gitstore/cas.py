"""The one compare-and-swap retry loop: every move of a task ref goes through :func:`retry`.

A writer reads the ref, decides what it should become and swaps it only if it still holds what
was read (``RefBackend.cas`` / ``delete``). When another writer moved it first (the swap returns
False) or holds its lock at that moment (:class:`~gitstore.backend.refs.Busy`), the writer waits
and decides again on what it finds then, so whatever the other writer did is kept; once the
store's ``gitstore.casTimeout`` has passed it gives up with
:class:`~gitstore.errors.ConflictError`. put, rm, rm_task and pull's integrate all use this loop.

The wait grows exponentially and is drawn at random below its cap ("full jitter"): writers that
collided once must not come back at the same instant and collide again. (The merge of a pull
used to wait without jitter; put's loop had it; this is the one kept.)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from gitstore.backend.refs import Busy
from gitstore.errors import ConflictError

__all__ = ["FIRST_DELAY", "MAX_DELAY", "backoff", "retry"]

# The cap of the first wait, doubling per attempt up to MAX_DELAY (seconds).
FIRST_DELAY = 0.0005
MAX_DELAY = 0.05

_T = TypeVar("_T")


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (0 first): random below a cap
    that doubles per attempt from :data:`FIRST_DELAY` up to :data:`MAX_DELAY`."""
    return random.uniform(0, min(MAX_DELAY, FIRST_DELAY * 2 ** min(attempt, 7)))


def retry(attempt: Callable[[], _T | None], *, ref: str, timeout: float, doing: str = "") -> _T:
    """Call ``attempt`` until it returns a value, backing off in between; return that value.

    ``attempt`` reads the ref, decides, and tries its swap: it returns None when the swap lost
    (or raises Busy: the ref's lock is held), anything else when it is done (swapped, or nothing
    left to do). Errors it raises pass through.

    Raises:
      ConflictError: still losing after ``timeout`` seconds; ``doing`` says what the swap was
        for (``"to bring in <commit>"``), if the ref alone does not.
    """
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        try:
            done = attempt()
        except Busy:
            done = None
        if done is not None:
            return done
        if time.monotonic() > deadline:
            what = f" {doing}" if doing else ""
            raise ConflictError(
                f"{ref}: gave up after {tries + 1} attempts{what} (other writers kept winning)"
            )
        time.sleep(backoff(tries))
        tries += 1
