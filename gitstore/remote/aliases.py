"""Aliases between machines: which alias refs a transfer carries, checked, and merged by one rule.

Alias refs (``refs/gitstore/aliases/<spec>/<task>/<name>``, each an annotated tag naming a
version, see :mod:`gitstore.aliases`) move with their tasks: pull, clone and bundles bring those
of the tasks in scope, push sends them. When both stores hold the alias with different values,
the later one wins (tag time, then tag id: :func:`gitstore.aliases.later`), whichever store
decides, so two stores that sync agree. A removal is a tombstone tag and wins the same way.

What arrives is hostile (DESIGN.md 7): an alias ref must have a valid spec, task and alias name
(others are ignored, as refs outside ``refs/artifacts/SPEC/TASK`` are), hold a tag of that name,
and name either a version of that very task (its whole new history checked like a task head's
by :func:`gitstore.validate.check_incoming`) or a tombstone's blob; anything else refuses the
whole transfer before any ref moves (RejectedVersionError).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dulwich.objects import ObjectID
from dulwich.refs import Ref

from gitstore import aliases as _aliases
from gitstore import names as _names
from gitstore.backend.tags import TagInfo, read_tag
from gitstore.errors import GitstoreError, IntegrityError, NotAStoreError, RejectedVersionError
from gitstore.model import TransferResult
from gitstore.remote.scope import Scope
from gitstore.store import Store
from gitstore.validate import check_incoming

__all__ = [
    "alias_of",
    "check",
    "fetch_wants",
    "integrate",
    "landed",
    "local",
    "task_ref_of",
    "to_push",
]


def alias_of(ref: str) -> tuple[str, str, str] | None:
    """``(spec, task, name)`` of an alias ref, or None for any other ref (or a bad name)."""
    if not ref.startswith(_names.ALIASES_PREFIX) or ref.endswith("^{}"):
        return None
    parts = ref[len(_names.ALIASES_PREFIX) :].split("/")
    if len(parts) != 3:
        return None
    try:
        _names.check_component(parts[0])
        _names.check_component(parts[1])
        _names.check_alias(parts[2])
    except GitstoreError:
        return None
    return parts[0], parts[1], parts[2]


def task_ref_of(ref: str) -> Ref:
    """The task ref (as the wire names it) of alias ref ``ref`` (which :func:`alias_of` read)."""
    found = alias_of(ref)
    assert found is not None
    return Ref(_names.task_ref(found[0], found[1]).encode())


def wanted(refs: Iterable[str], scope: Scope) -> list[str]:
    """The alias refs among ``refs`` that a transfer of ``scope`` carries."""
    out = []
    for ref in refs:
        found = alias_of(ref)
        if found is not None and scope.covers(f"{found[0]}/{found[1]}"):
            out.append(ref)
    return sorted(out)


def fetch_wants(
    store: Store, refs: Mapping[Ref, ObjectID], scope: Scope
) -> tuple[dict[str, str], list[ObjectID]]:
    """The alias refs a fetch of ``scope`` brings (ref -> tag id) among the remote's ``refs``,
    and the tag ids this store lacks (to ask for)."""
    names = {r.decode("utf-8", "replace"): v for r, v in refs.items() if v is not None}
    heads = {r: names[r].decode() for r in wanted(names, scope)}
    missing = sorted({ObjectID(v.encode()) for v in heads.values() if not store.versions.has(v)})
    return heads, missing


def local(store: Store, scope: Scope) -> dict[str, str]:
    """This store's alias refs in ``scope`` (tombstones included: a removal travels too)."""
    refs = store.versions.refs.items(_names.ALIASES_PREFIX)
    return {r: refs[r] for r in wanted(refs, scope)}


def check(store: Store, incoming: Mapping[str, str]) -> None:
    """Refuse the transfer unless every incoming alias (ref -> tag id) is one this store takes.

    Raises:
      RejectedVersionError: a ref that holds no tag of its name, or a tag of anything else than
        a version of its task (the version's new history checked whole) or a tombstone.
      CorruptTransferError: the tag or what it names did not arrive.
    """
    versions = store.versions
    for ref, oid in sorted(incoming.items()):
        found = alias_of(ref)
        if found is None:
            continue
        spec, task, name = found
        if versions.refs.get(ref) == oid:
            continue  # already here, checked when it came
        try:
            value = _aliases.read_value(versions.objects, spec, task, name, oid)
        except IntegrityError as e:
            raise RejectedVersionError(f"{ref}: not an alias of this store ({e})") from None
        if value.removed:
            continue
        try:
            check_incoming(
                versions.objects,
                spec,
                task,
                value.commit,
                local_head=versions.head(spec, task),
                known_number=versions.number,
            )
        except NotAStoreError as e:
            raise RejectedVersionError(f"{ref}: names no version of {spec}/{task} ({e})") from None
        except RejectedVersionError as e:
            raise RejectedVersionError(f"{ref}: {e}") from None


def integrate(store: Store, incoming: Mapping[str, str], result: TransferResult) -> None:
    """Bring checked incoming aliases in, each by compare-and-swap: a value this store lacks is
    taken, two values keep the later one (:func:`gitstore.aliases.later`)."""
    versions = store.versions
    for ref, theirs in sorted(incoming.items()):
        found = alias_of(ref)
        if found is None:
            continue
        spec, task, name = found

        def attempt(ref: str = ref, theirs: str = theirs) -> bool | None:
            ours = versions.refs.get(ref)
            if ours == theirs:
                return False
            if ours is not None:
                mine = read_tag(versions.objects, ours)
                if _aliases.later(mine, read_tag(versions.objects, theirs)) is mine:
                    return False
            return True if versions.refs.cas(ref, ours, theirs) else None

        if versions.retry(ref, attempt, doing=f"to bring in alias {name}"):
            result.aliases.append(f"{spec}/{task}@{name}")


def to_push(store: Store, scope: Scope, remote_refs: Mapping[str, str]) -> dict[str, str]:
    """The alias refs to send (ref -> our tag id): those the remote lacks, or holds with a value
    ours is later than. A remote value we have never seen is left alone (a pull brings it in
    and the rule decides then)."""
    objects = store.versions.objects
    out: dict[str, str] = {}
    for ref, mine in local(store, scope).items():
        theirs = remote_refs.get(ref)
        if theirs == mine:
            continue
        if theirs is not None:
            if not objects.has(theirs):
                continue
            try:
                other: TagInfo = read_tag(objects, theirs)
            except IntegrityError:
                continue
            if _aliases.later(read_tag(objects, mine), other).oid != mine:
                continue
        out[ref] = mine
    return out


def landed(sent: Mapping[str, str], status: Mapping[bytes, str | None]) -> list[str]:
    """``SPEC/TASK@NAME`` of each alias ref in ``sent`` that the remote did not refuse."""
    out = []
    for ref in sorted(sent):
        found = alias_of(ref)
        if found is not None and not status.get(ref.encode()):
            out.append(f"{found[0]}/{found[1]}@{found[2]}")
    return out
