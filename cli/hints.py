"""Loud mistakes: "did you mean ...?" for a misspelt spec, task, revision, artifact or remote.

When a command's library call says something is not there (a :class:`~gitstore.NotFoundError`),
:func:`did_you_mean` looks at what the store does hold next to the name that was asked for and
adds the nearest names (:func:`difflib.get_close_matches`) to the message; the error class, and
so the exit code, stay the same. It reads ref names and one manifest at most, and only on the
error path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from gitstore import GitstoreError, NotFoundError, UsageError

if TYPE_CHECKING:
    from gitstore import Store

__all__ = [
    "close",
    "did_you_mean",
    "listing",
    "refuse_misplaced_remote",
    "suggest",
    "suggest_scope",
    "with_hint",
]


def close(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The names among ``choices`` nearest to ``word`` (difflib's ratio >= 0.6), best first."""
    import difflib  # only on the error path

    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)


def listing(names: Sequence[str], limit: int = 8) -> str:
    """``a, b, c`` (and ``... and N more`` past ``limit``)."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _few(what: str, names: Sequence[str], most: int = 8) -> str | None:
    """Nothing is close, but a short list is worth showing whole (``t3`` when t1, t2 exist)."""
    if not names or len(names) > most:
        return None
    return f"the {what}: {listing(list(names))}"


def _mean(found: list[str]) -> str:
    return "did you mean " + " or ".join(repr(f) for f in found) + "?"


def suggest(store: Store, address: str | None, name: str | None = None) -> str | None:
    """What is near ``address`` (``SPEC[/TASK[@REV]]``) and artifact ``name`` in ``store``.

    Walks down the address and stops at the first part that is missing: a spec, a task, a
    version, then the artifact. None when nothing near is found (or the address is fine).
    """
    from gitstore import parse_address

    if address is None:
        return None
    try:
        addr = parse_address(address)
        specs = store.specs()
        if addr.spec not in specs:
            found = close(addr.spec, specs)
            return _mean(found) if found else _few("specs", specs)
        if addr.task is None:
            return None
        tasks = store.tasks(addr.spec)
        if addr.task not in tasks:
            found = close(addr.task, tasks)
            if found:
                return _mean([f"{addr.spec}/{t}" for t in found])
            return _few(f"tasks of {addr.spec}", tasks)
        bare = f"{addr.spec}/{addr.task}"
        try:
            version = store.show(address)
        except NotFoundError:
            latest = store.show(bare)
            return f"{bare} has v1 to v{latest.version}"
        if name is None:
            return None
        names = [a.name for a in version.artifacts]
        if name in names:
            return None
        found = close(name, names)
        return _mean(found) if found else f"it has {listing(names)}"
    except GitstoreError:
        return None  # a hint must never replace the real error


@contextlib.contextmanager
def did_you_mean(store: Store, address: str | None, name: str | None = None) -> Iterator[None]:
    """Re-raise a NotFoundError from the body with :func:`suggest`'s hint added to its message."""
    try:
        yield
    except NotFoundError as e:
        hint = suggest(store, address, name)
        if hint is None:
            raise
        raise type(e)(with_hint(str(e), hint)) from None


def with_hint(message: str, hint: str) -> str:
    """``message (hint)``, or ``message (its note; hint)`` when it already ends in a note."""
    if message.endswith(")"):
        return f"{message[:-1]}; {hint})"
    return f"{message} ({hint})"


def suggest_scope(store: Store, item: str, remotes: Sequence[str]) -> str:
    """The message for a push/pull scope item that matches no task of ``store``.

    Names the nearest spec or task, and says so when the item looks like a misspelt remote
    (``push orign``): REMOTE goes first, and an unknown first word is taken as a scope.
    """
    head = item.split("/", 1)[0]
    near_remote = close(head, remotes) if "/" not in item else []
    hint = suggest(store, item)
    parts = []
    if near_remote:
        parts.append(f"did you mean the remote {near_remote[0]!r}?")
    elif hint:
        parts.append(hint)
    what = "task" if "/" in item else "spec"
    where = f" ({' '.join(parts)})" if parts else ""
    return f"no {what} {item!r} in this store{where}"


def refuse_misplaced_remote(args: Sequence[str], remotes: Sequence[str], verb: str) -> None:
    """Raise UsageError when a remote name comes after a scope (``push s/t origin``)."""
    for i, arg in enumerate(args[1:], start=1):
        if arg in remotes:
            rest = [a for j, a in enumerate(args) if j != i]
            raise UsageError(
                f"{arg!r} is a remote: REMOTE goes first (gitstore {verb} {arg} {' '.join(rest)})"
            )
