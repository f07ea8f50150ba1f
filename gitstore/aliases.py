"""Aliases: names for versions (``best``, ``shipped``), addressable as ``SPEC/TASK@NAME``.

An alias is the ref ``refs/gitstore/aliases/<spec>/<task>/<name>``, pointing at an annotated tag
object whose target is the version's commit and whose tagger time says when it was set
(:mod:`gitstore.backend.tags`). Stock git carries such refs and keeps what they reach; gitstore
moves them by compare-and-swap (:mod:`gitstore.cas`) like task refs.

The one rule for two values of the same alias (two machines that set it differently): the value
set later wins, by the tag's time, then by the larger tag id (:func:`later`). A set never goes
back in time: it is stamped at least one second after the value it replaces, so a value a
machine has seen always loses to the one it sets next, whatever the clocks say. Removing an alias
writes a tombstone (a tag of a small blob) rather than deleting the ref, so that the removal wins
over an older value coming back from a remote, by the same rule.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterator, Mapping

from gitstore import cas
from gitstore.backend.objects import ObjectBackend
from gitstore.backend.refs import RefBackend
from gitstore.backend.tags import TagInfo, read_tag, write_tag
from gitstore.errors import GitstoreError, IntegrityError, NotFoundError
from gitstore.names import ALIASES_PREFIX, alias_ref, check_alias, check_component

__all__ = ["AliasValue", "follow", "later", "lookup", "remove", "scan", "set_alias", "set_at"]

# The tag's own name field for aliases (stock git shows it in `git cat-file -p`).
_KIND_COMMIT = "commit"
_KIND_BLOB = "blob"


class AliasValue:
    """What one alias ref holds: its tag, read; ``removed`` for a tombstone."""

    __slots__ = ("name", "spec", "tag", "task")

    def __init__(self, spec: str, task: str, name: str, tag: TagInfo) -> None:
        self.spec, self.task, self.name, self.tag = spec, task, name, tag

    @property
    def removed(self) -> bool:
        """Is this a tombstone (the alias was removed)?"""
        return self.tag.kind == _KIND_BLOB

    @property
    def commit(self) -> str:
        """The version the alias names (meaningless for a tombstone)."""
        return self.tag.target


def set_at(tag: TagInfo) -> str:
    """When ``tag`` was made, as an RFC 3339 UTC time."""
    return _dt.datetime.fromtimestamp(tag.time, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def later(a: TagInfo, b: TagInfo) -> TagInfo:
    """The value of an alias that wins when two stores disagree: the later tag time, then the
    larger tag id. Symmetric, so every store that sees both picks the same one."""
    return a if (a.time, a.oid) >= (b.time, b.oid) else b


def read_value(objects: ObjectBackend, spec: str, task: str, name: str, oid: str) -> AliasValue:
    """The alias ``name`` of ``spec/task`` held by tag ``oid``, checked for shape.

    Raises IntegrityError when ``oid`` is no tag, names another alias, or names something other
    than a commit or a tombstone's blob. (Whether the commit is a version of that task is
    checked where it is used: resolve reads its manifest, a pull validates it whole.)
    """
    tag = read_tag(objects, oid)
    where = alias_ref(spec, task, name)
    if tag.name != name:
        raise IntegrityError(f"{where}: its tag {oid} is named {tag.name!r}, not {name!r}")
    if tag.kind not in (_KIND_COMMIT, _KIND_BLOB):
        raise IntegrityError(f"{where}: its tag {oid} names a {tag.kind}, not a version")
    return AliasValue(spec, task, name, tag)


def lookup(objects: ObjectBackend, refs: RefBackend, spec: str, task: str, name: str) -> str:
    """The commit alias ``name`` of ``spec/task`` names.

    Raises NotFoundError when there is no such alias (or it was removed), IntegrityError when
    its ref does not hold an alias tag.
    """
    oid = refs.get(alias_ref(spec, task, name))
    value = None if oid is None else read_value(objects, spec, task, name, oid)
    if value is None or value.removed:
        raise NotFoundError(f"{spec}/{task} has no alias {name!r}")
    return value.commit


def scan(
    objects: ObjectBackend,
    refs: RefBackend,
    spec: str | None = None,
    task: str | None = None,
    *,
    removed: bool = False,
) -> Iterator[AliasValue]:
    """Every alias of the store (of ``spec``, of ``spec/task``), sorted by spec, task, name.

    Tombstones are left out unless ``removed``. A ref below the prefix that gitstore could not
    have written (a bad name, no alias tag) is skipped: listings show what resolves.
    """
    prefix = ALIASES_PREFIX
    if spec is not None:
        prefix += f"{spec}/" if task is None else f"{spec}/{task}/"
    for ref, oid in sorted(refs.items(prefix).items()):
        parts = ref[len(ALIASES_PREFIX) :].split("/")
        if len(parts) != 3:
            continue
        try:
            check_component(parts[0])
            check_component(parts[1])
            check_alias(parts[2])
            value = read_value(objects, parts[0], parts[1], parts[2], oid)
        except GitstoreError:
            continue
        if removed or not value.removed:
            yield value


def _message(spec: str, task: str, name: str, commit: str | None) -> str:
    what = f"points at {commit}" if commit else "was removed"
    return f"gitstore alias {name} of {spec}/{task} {what}\n"


def set_alias(
    objects: ObjectBackend,
    refs: RefBackend,
    spec: str,
    task: str,
    name: str,
    commit: str | None,
    *,
    identity: bytes,
    timeout: float,
    must_exist: bool = False,
) -> tuple[AliasValue, AliasValue | None]:
    """Point alias ``name`` of ``spec/task`` at ``commit`` (None: remove it), by compare-and-swap.

    The new tag is stamped now, or one second after the value it replaces if that is later (a
    clock behind another machine's must not make a new value lose to an old one).

    Returns the new value and the one it replaced (None when there was none).

    Raises:
      NotFoundError: ``must_exist`` and there is no alias to replace (removing one never set).
      ConflictError: other writers kept moving the alias for ``timeout`` seconds.
    """
    ref = alias_ref(spec, task, name)

    def attempt() -> tuple[AliasValue, AliasValue | None] | None:
        old = refs.get(ref)
        previous = None if old is None else read_value(objects, spec, task, name, old).tag
        if must_exist and (previous is None or previous.kind == _KIND_BLOB):
            raise NotFoundError(f"{spec}/{task} has no alias {name!r}")
        when = int(time.time())
        if previous is not None:
            when = max(when, previous.time + 1)
        oid = write_tag(
            objects,
            name,
            target=commit,
            message=_message(spec, task, name, commit),
            identity=identity,
            when=when,
        )
        if not refs.cas(ref, old, oid):
            return None
        before = None if previous is None else AliasValue(spec, task, name, previous)
        return read_value(objects, spec, task, name, oid), before

    return cas.retry(attempt, ref=ref, timeout=timeout, doing=f"to set alias {name}")


def remove(
    objects: ObjectBackend,
    refs: RefBackend,
    spec: str,
    task: str,
    name: str,
    *,
    identity: bytes,
    timeout: float,
) -> AliasValue:
    """Remove alias ``name`` (a tombstone, see the module docstring); return the value it had.

    Raises NotFoundError when it is not set."""
    _, before = set_alias(
        objects, refs, spec, task, name, None, identity=identity, timeout=timeout, must_exist=True
    )
    assert before is not None  # must_exist
    return before


def follow(
    objects: ObjectBackend,
    refs: RefBackend,
    spec: str,
    task: str,
    mapping: Mapping[str, str | None],
    *,
    identity: bytes,
    timeout: float,
) -> list[str]:
    """Move the aliases of ``spec/task`` after a rewrite of its chain (``mapping``: old commit
    -> the commit that holds that version now, None when it was dropped); return their names.

    An alias naming a replaced commit is set to its new commit (a new tag, stamped like a set),
    one naming a dropped version is removed (retention never drops an aliased version; a forced
    drop takes the name with it), so no alias keeps what a rewrite removed (a purged secret)
    reachable. An alias moved meanwhile by someone else is left as they set it.
    """
    moved = []
    for value in list(scan(objects, refs, spec, task)):
        old = value.commit
        if old not in mapping:
            continue
        new = mapping[old]
        ref = alias_ref(spec, task, value.name)

        def attempt(
            ref: str = ref, old: str = old, new: str | None = new, name: str = value.name
        ) -> bool | None:
            current = refs.get(ref)
            tag = None if current is None else read_tag(objects, current)
            if tag is None or tag.kind != _KIND_COMMIT or tag.target != old:
                return False  # moved or removed meanwhile: theirs stands
            oid = write_tag(
                objects,
                name,
                target=new,
                message=_message(spec, task, name, new),
                identity=identity,
                when=max(int(time.time()), tag.time + 1),
            )
            return True if refs.cas(ref, current, oid) else None

        if cas.retry(attempt, ref=ref, timeout=timeout, doing="to follow a rewrite"):
            moved.append(value.name)
    return moved
