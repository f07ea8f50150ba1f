"""Rewritten chains between stores: the rewrite and purge records carried, checked and applied.

Retention and purge rewrite chains (:mod:`gitstore.rewrite`) and record what they replaced in
``refs/gitstore/rewrites`` and ``refs/gitstore/purges`` (:mod:`gitstore.records`). Between stores:

* **carried**: push, pull, clone and bundles move both refs beside the task refs. What arrives
  is merged into the local records as a deterministic union (a key both sides recorded
  differently keeps the earlier purge, or the smaller record), in a commit whose second parent
  is the other side's, so the next push of the records is a fast-forward;
* **checked**: records from elsewhere are hostile input (:func:`read_incoming`): a commit whose
  tree holds only ``ab/<38 hex>`` files, at most :data:`MAX_RECORDS` of them, each at most
  :data:`~gitstore.records.MAX_RECORD_BYTES` and a well-formed record of its key. A record can
  only make a store drop or tombstone data: a rewrite record redirects a commit only to the same
  task's version of the same number (checked when used), a purge record replaces bytes with a
  short text;
* **applied**: a pull first brings the local chains up to the records (versions the records
  drop go, rewritten ones are replaced, purged bytes become tombstones, and what was put on top
  is rebuilt on the new chain), then the fetched heads likewise, before they are integrated;
  purged blobs are then expunged. A push may replace a remote head that the local records say
  was rewritten into a version our head holds (instead of "pull first" for ever).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypeVar

import msgspec
from dulwich.objects import ObjectID
from dulwich.refs import Ref

from gitstore import names as _names
from gitstore import purge as _purge
from gitstore.backend.chains import sharded_entries
from gitstore.backend.objects import ObjectBackend
from gitstore.backend.trees import MODE_FILE, KindError, read_commit
from gitstore.errors import (
    CorruptTransferError,
    GitstoreError,
    IntegrityError,
    InvalidNameError,
    RejectedVersionError,
    UsageError,
)
from gitstore.meta import parse_iso
from gitstore.names import task_ref
from gitstore.records import (
    MAX_RECORD_BYTES,
    PURGES_REF,
    REWRITES_REF,
    PurgeRecord,
    RecordBook,
    RewriteRecord,
    decode_record,
    encode_record,
)
from gitstore.remote.merge import is_ancestor
from gitstore.rewrite import Rewritten, rebuild, record_rewrites, translate
from gitstore.store import Store
from gitstore.validate import escape
from gitstore.versions import Versions, walk_commits

__all__ = [
    "MAX_RECORDS",
    "RECORD_REFS",
    "absorb",
    "expunge_purged",
    "known",
    "offered",
    "read_incoming",
    "receive_records",
    "record_refs",
    "record_updates",
    "records_of",
    "settle",
    "settle_fetched",
    "settle_local",
    "split_records",
    "superseded",
]

RECORD_REFS = (REWRITES_REF, PURGES_REF)
# Retention of 10k tasks x 10 versions replaces ~100k commits; ten times that is an attack.
MAX_RECORDS = 1_000_000
MAX_WHY = 1024
MAX_TOMBSTONE = _purge.MAX_TOMBSTONE

_PATH = re.compile(r"[0-9a-f]{2}/[0-9a-f]{38}\Z")
_HEX40 = re.compile(r"[0-9a-f]{40}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_BY = re.compile(r"[a-z][a-z-]{0,31}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

R = TypeVar("R", RewriteRecord, PurgeRecord)


def _book(versions: Versions, ref: str) -> RecordBook[RewriteRecord] | RecordBook[PurgeRecord]:
    return versions.rewrites if ref == REWRITES_REF else versions.purges


# -- checking what arrives -------------------------------------------------------------------


def read_incoming(
    objects: ObjectBackend, ref: str, commit: str
) -> dict[str, RewriteRecord | PurgeRecord]:
    """The records of ``ref`` at ``commit`` (received from elsewhere), every one checked.

    Raises:
      RejectedVersionError: anything that is not a records commit as gitstore writes them
        (named: the ref, the entry, what is wrong); nothing is applied.
      CorruptTransferError: an object the records need did not arrive.
    """
    try:
        tree = read_commit(objects, commit).tree
        out: dict[str, RewriteRecord | PurgeRecord] = {}
        for path, mode, oid in sharded_entries(objects, tree):
            where = f"{ref}: entry {escape(path)!r}"
            if not _PATH.match(path) or mode != MODE_FILE:
                raise RejectedVersionError(f"{where} is not a record (ab/<38 hex> files only)")
            if len(out) >= MAX_RECORDS:
                raise RejectedVersionError(f"{ref}: more than {MAX_RECORDS} records")
            with objects.open_blob(oid) as f:
                if f.size > MAX_RECORD_BYTES:
                    raise RejectedVersionError(f"{where} is {f.size} bytes (a record is small)")
                data = f.read()
            key = path.replace("/", "", 1)
            try:
                record: RewriteRecord | PurgeRecord = (
                    decode_record(data, RewriteRecord)
                    if ref == REWRITES_REF
                    else decode_record(data, PurgeRecord)
                )
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise RejectedVersionError(f"{where} is not a record ({escape(str(e))})") from None
            problem = _problem(key, record)
            if problem:
                raise RejectedVersionError(f"{where}: {problem}; nothing applied")
            out[key] = record
    except KindError as e:
        raise RejectedVersionError(f"{ref}: {e}; nothing applied") from None
    except ValueError as e:
        raise RejectedVersionError(f"{ref}: a malformed tree ({escape(str(e))})") from None
    except IntegrityError as e:
        if "missing" in str(e):
            raise CorruptTransferError(f"{ref}: {e}; nothing applied") from None
        raise RejectedVersionError(f"{ref}: {e}; nothing applied") from None
    return out


def _problem(key: str, r: RewriteRecord | PurgeRecord) -> str | None:
    """What is wrong with record ``r`` of ``key``, or None."""
    if not _time_ok(r.at):
        return f"its time {r.at[:40]!r} is not a timestamp"
    if len(r.why) > MAX_WHY or _CONTROL.search(r.why):
        return "its reason is too long or holds control characters"
    if isinstance(r, RewriteRecord):
        try:
            _names.check_component(r.spec, "spec")
            _names.check_component(r.task, "task")
        except InvalidNameError as e:
            return str(e)
        if not 1 <= r.version < 10**18:
            return f"version {r.version} is out of range"
        if r.new is not None and (not _HEX40.match(r.new) or r.new == key):
            return f"its new commit {r.new[:50]!r} is not another commit id"
        if not _BY.match(r.by):
            return f"its verb {r.by[:40]!r} is not a word"
        return None
    if r.oid != key:
        return f"it is the record of {r.oid[:50]!r}, not of {key}"
    if not _HEX64.match(r.sha256) or r.size < 0:
        return "its sha256 or size is malformed"
    if len(r.tombstone.encode()) > MAX_TOMBSTONE or _CONTROL.search(r.tombstone):
        return f"its tombstone is over {MAX_TOMBSTONE} bytes or holds control characters"
    return None


def _time_ok(text: str) -> bool:
    try:
        parse_iso(text)
    except (ValueError, OverflowError):
        return False
    return True


# -- merging and applying --------------------------------------------------------------------


def _pick(a: R, b: R) -> R:
    """The record a key keeps when two stores recorded it differently: the same on both."""
    if isinstance(a, PurgeRecord) and isinstance(b, PurgeRecord) and a.at != b.at:
        return a if a.at < b.at else b
    return a if encode_record(a) <= encode_record(b) else b


def absorb(
    versions: Versions, offered: Mapping[str, str]
) -> tuple[set[str], dict[str, PurgeRecord]]:
    """Merge the records another store offered (``ref -> commit``, objects already here) into
    ours; return the rewrite keys and the purge records that are new here.

    Raises RejectedVersionError or CorruptTransferError (see :func:`read_incoming`) before
    anything is recorded.
    """
    incoming: dict[str, tuple[str, dict[str, RewriteRecord | PurgeRecord]]] = {}
    for ref, commit in sorted(offered.items()):
        head = _book(versions, ref).head()
        if head == commit or (head is not None and _holds(versions, head, commit)):
            continue
        incoming[ref] = (commit, read_incoming(versions.objects, ref, commit))
    new_keys: set[str] = set()
    new_purges: dict[str, PurgeRecord] = {}
    if REWRITES_REF in incoming:
        commit, records = incoming[REWRITES_REF]
        theirs_r = {k: r for k, r in records.items() if isinstance(r, RewriteRecord)}
        new_keys = set(_merge(versions.rewrites, commit, theirs_r))
    if PURGES_REF in incoming:
        commit, records = incoming[PURGES_REF]
        theirs_p = {k: r for k, r in records.items() if isinstance(r, PurgeRecord)}
        new_purges = _merge(versions.purges, commit, theirs_p)
    return new_keys, new_purges


def _merge(book: RecordBook[R], commit: str, theirs: Mapping[str, R]) -> dict[str, R]:
    """Union ``theirs`` (records commit ``commit``) into ``book``; the records that changed."""
    mine = book.all()
    changes: dict[str, R] = {}
    for key, record in theirs.items():
        ours = mine.get(key)
        chosen = record if ours is None else _pick(ours, record)
        if chosen is not ours:
            changes[key] = chosen
    book.add(changes, merge_from=commit)
    return changes


def _holds(versions: Versions, head: str, commit: str) -> bool:
    """Is records commit ``commit`` in the history of ``head`` (already merged here)?"""
    return commit in walk_commits([head], versions.parents)


def settle_local(
    store: Store, rewritten: set[str], purged: Mapping[str, PurgeRecord]
) -> list[Rewritten]:
    """Bring the local chains up to newly learnt records: versions they drop or replace, and
    bytes they purge. Versions put meanwhile are kept (compare-and-swap, rebuilt on top)."""
    versions = store.versions
    done: list[Rewritten] = []
    if rewritten:
        for key in store.heads():
            spec, task = key.split("/", 1)
            moved = _translate_ref(versions, spec, task)
            if moved is not None:
                done.append(moved)
        record_rewrites(versions, done, by="sync")
    if purged:
        done += _purge.enforce(versions, store.heads(), purged)
    return done


def _translate_ref(versions: Versions, spec: str, task: str) -> Rewritten | None:
    """Translate the chain of ``spec/task`` (:func:`gitstore.rewrite.translate`) and move its
    ref by compare-and-swap; a version put meanwhile is translated with the rest."""
    ref = task_ref(spec, task)

    def attempt() -> tuple[Rewritten | None] | None:
        head = versions.refs.get(ref)
        if head is None:
            return (None,)
        moved = translate(versions, spec, task, head)
        if moved.new_head == head:
            return (None,)
        return (moved,) if versions.refs.cas(ref, head, moved.new_head) else None

    return versions.retry(ref, attempt, doing="to bring its chain up to the rewrite records")[0]


def settle_fetched(store: Store, heads: Mapping[str, str]) -> dict[str, str]:
    """The fetched ``SPEC/TASK -> head`` as this store's records say they are now: dropped and
    rewritten versions replaced, purged bytes tombstoned, what was added on top rebuilt. The
    rebuilt commits are recorded (so a later push knows the old heads are superseded)."""
    versions = store.versions
    purges = versions.purges.all() if versions.purges.head() else {}
    out: dict[str, str] = {}
    done: list[Rewritten] = []
    for key, head in heads.items():
        spec, task = key.split("/", 1)
        moved = translate(versions, spec, task, head)
        new_head = moved.new_head
        done.append(moved)
        if purges:
            todo, when = _purge.plans(versions, {key: new_head}, purges)
            if key in todo:
                edited = rebuild(versions, spec, task, new_head, todo[key], at=when)
                done.append(edited)
                new_head = edited.new_head
        out[key] = new_head
    record_rewrites(versions, [d for d in done if d.mapping], by="sync")
    return out


def expunge_purged(store: Store, oids: set[str] | None = None) -> int:
    """Expunge the purged blobs (all recorded, or ``oids``) still in this store; the count.

    A blob some ref still reaches (a chain the records could not rewrite) is left, not an error:
    the next pull or purge tries again."""
    versions = store.versions
    keys = set(versions.purges.keys()) if oids is None else oids
    present = sorted(k for k in keys if versions.has(k))
    if not present:
        return 0
    try:
        return store.expunge(present).objects
    except UsageError:
        return 0


def superseded(versions: Versions, theirs: str, mine: str) -> bool:
    """Does the remote head ``theirs`` stand for versions our head ``mine`` holds rewritten
    (our records name it, and what it became is in our history)? Then a push replaces it."""
    record = versions.rewrites.get(theirs)
    if record is None:
        return False
    found = versions.follow(record.spec, record.task, theirs)
    if found is None:
        return False
    target = found[0]
    return target is None or is_ancestor(versions, target, mine)


def record_updates(
    versions: Versions, remote: Mapping[Ref, ObjectID]
) -> dict[str, tuple[str | None, str]]:
    """The record refs a push sends: ``ref -> (their value, ours)`` where ours descends from
    theirs (or they have none); a remote whose records we have not merged is left alone."""
    out: dict[str, tuple[str | None, str]] = {}
    for ref in RECORD_REFS:
        ours = _book(versions, ref).head()
        theirs_b = remote.get(Ref(ref.encode()))
        theirs = theirs_b.decode() if theirs_b is not None else None
        if ours is None or ours == theirs:
            continue
        if theirs is None or (versions.has(theirs) and _holds(versions, ours, theirs)):
            out[ref] = (theirs, ours)
    return out


def settle(store: Store, heads: Mapping[str, str], offered: Mapping[str, str]) -> dict[str, str]:
    """Pull's step between checking the fetched heads and integrating them: merge the records
    ``offered`` (``ref -> commit``), bring the local chains up to what is new in them, and
    return the fetched heads as the records say they are now."""
    rewritten, purged = absorb(store.versions, offered)
    settle_local(store, rewritten, purged)
    if store.versions.rewrites.head() is None and store.versions.purges.head() is None:
        return dict(heads)
    return settle_fetched(store, heads)


def known(versions: Versions, commit: str) -> bool:
    """Do our records say what became of ``commit`` (a head not worth fetching again)?"""
    return versions.rewrites.get(commit) is not None


def offered(ref: bytes, sha: bytes | None, into: dict[str, str]) -> bool:
    """Note ``ref`` in ``into`` if it is a records ref (with a value); True then."""
    name = ref.decode("utf-8", "replace")
    if sha is None or name not in RECORD_REFS:
        return False
    into[name] = sha.decode()
    return True


def record_refs(versions: Versions) -> list[Ref]:
    """The record refs this store has (for a bundle to carry)."""
    return [Ref(r.encode()) for r in RECORD_REFS if _book(versions, r).head() is not None]


def records_of(refs: Mapping[str, str]) -> dict[str, str]:
    """The record refs among a bundle's ``ref -> commit``."""
    return {r: v for r, v in refs.items() if r in RECORD_REFS}


def split_records(
    updates: Sequence[tuple[str, str, str]],
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Pushed ``(ref, old, new)`` updates: those of record refs, and the rest."""
    records = [u for u in updates if u[0] in RECORD_REFS]
    return records, [u for u in updates if u[0] not in RECORD_REFS]


def receive_records(
    store: Store, updates: Sequence[tuple[str, str, str]], *, unrestricted: bool
) -> list[tuple[str, str | None]]:
    """Records pushed to a served store: checked, merged into its own (never simply set),
    applied to its chains, purged blobs expunged. ``(ref, None)`` when done, else the reason.
    Only a pusher who may write every spec may push records (they can drop any version)."""
    out: list[tuple[str, str | None]] = []
    for ref, _old, new in updates:
        if not unrestricted:
            out.append((ref, "records are pushed by a token that may write every spec"))
            continue
        if new == "0" * 40:
            out.append((ref, "records are never deleted"))
            continue
        try:
            rewritten, purged = absorb(store.versions, {ref: new})
            settle_local(store, rewritten, purged)
            expunge_purged(store, set(purged))
        except GitstoreError as e:
            out.append((ref, escape(str(e))))
            continue
        out.append((ref, None))
    return out
