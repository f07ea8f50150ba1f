"""Records kept beside the versions: which commits a rewrite replaced, and which bytes were purged.

Two refs, each naming a commit whose tree holds one small JSON record per key, at
``key[:2]/key[2:]`` (a fan-out, so one lookup reads two small trees, whatever the number):

* ``refs/gitstore/rewrites``: old commit id -> :class:`RewriteRecord` (the commit that replaces
  it, or None when the version was dropped, with when and why). ``resolve`` consults it, so a URI
  that pins a version that was rewritten keeps resolving, and one that pins a dropped version is
  refused as gone, never answered by another version.
* ``refs/gitstore/purges``: blob id -> :class:`PurgeRecord` (the purged bytes' digest and size,
  when, why, and the text of the tombstone that replaces them).

Commit ids inside records are data, not links: a record never keeps an object alive (gc may prune
what a rewrite left behind). Every update is a new commit on top of the ref's value, moved by
compare-and-swap (:mod:`gitstore.cas`), so two writers recording at once both land.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

import msgspec

from gitstore import cas
from gitstore.backend.chains import blob_id, new_commit, sharded_entries, sharded_tree
from gitstore.backend.config import DEFAULT_IDENTITY
from gitstore.backend.objects import ObjectBackend
from gitstore.backend.refs import RefBackend
from gitstore.backend.trees import MODE_FILE, MODE_TREE, read_blob, read_commit, read_tree
from gitstore.errors import IntegrityError

__all__ = [
    "MAX_RECORD_BYTES",
    "PURGES_REF",
    "RECORDS_PREFIX",
    "REWRITES_REF",
    "PurgeRecord",
    "RecordBook",
    "RewriteRecord",
    "decode_record",
]

RECORDS_PREFIX = "refs/gitstore/"
REWRITES_REF = "refs/gitstore/rewrites"
PURGES_REF = "refs/gitstore/purges"
# One record is a few hundred bytes; a tombstone's text is at most 4 KiB.
MAX_RECORD_BYTES = 8192
# Records trees kept parsed (a root and its 256 fan-out trees, twice over).
TREE_CACHE = 512


class RewriteRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What became of one version a rewrite replaced.

    ``new`` is the commit that now holds it (same number, artifacts and metadata, other parents,
    maybe fewer artifacts), or None when it was dropped. ``by`` names the verb (``retention``,
    ``purge``), ``why`` the rule or reason, ``at`` when.
    """

    spec: str
    task: str
    version: int
    new: str | None = None
    at: str
    by: str
    why: str = ""


class PurgeRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Bytes purged from the store: blob ``oid`` (``sha256``, ``size``) gone since ``at``.

    ``tombstone`` is the text that replaces the bytes in every version that held them; every
    store that applies the record writes the same tombstone, so their rewritten versions agree.
    """

    oid: str
    sha256: str
    size: int
    at: str
    why: str = ""
    tombstone: str


R = TypeVar("R", RewriteRecord, PurgeRecord)

_encoder = msgspec.json.Encoder(order="sorted")


def decode_record(data: bytes, kind: type[R]) -> R:
    """A stored record; raises msgspec.DecodeError/ValidationError when it is not one."""
    record: R = msgspec.json.decode(data, type=kind)
    return record


class RecordBook(Generic[R]):
    """The records under one ref (``REWRITES_REF`` or ``PURGES_REF``), read and added to.

    Lookups cache the ref's tree: a ref that did not move is not read again.
    """

    def __init__(
        self,
        objects: ObjectBackend,
        refs: RefBackend,
        ref: str,
        kind: type[R],
        *,
        identity: bytes = DEFAULT_IDENTITY,
        cas_timeout: float = 60.0,
    ) -> None:
        self._objects = objects
        self._refs = refs
        self.ref = ref
        self.kind: type[R] = kind
        self.identity = identity
        self.cas_timeout = cas_timeout
        self._tree: tuple[str, str] | None = None
        self._trees: dict[str, dict[str, tuple[int, str]]] = {}
        self._lock = threading.Lock()

    def head(self) -> str | None:
        """The commit the ref names (None: nothing recorded yet)."""
        return self._refs.get(self.ref)

    def tree(self) -> str | None:
        """The tree of the records (None: nothing recorded yet)."""
        head = self.head()
        if head is None:
            return None
        with self._lock:
            if self._tree is not None and self._tree[0] == head:
                return self._tree[1]
        tree = read_commit(self._objects, head).tree
        with self._lock:
            self._tree = (head, tree)
        return tree

    def get(self, key: str) -> R | None:
        """The record of ``key`` (a 40-hex id), or None."""
        tree = self.tree()
        if tree is None or len(key) != 40:
            return None
        oid = self._stored(tree, key)
        if oid is None:
            return None
        try:
            return decode_record(read_blob(self._objects, oid), self.kind)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise IntegrityError(f"{self.ref}: the record of {key} is damaged ({e})") from None

    def _stored(self, tree: str, key: str) -> str | None:
        """The blob of ``key``'s record in records tree ``tree`` (trees read once, cached:
        resolve and sync look many keys up, and a tree never changes)."""
        root = self._entries(tree)
        shard = root.get(key[:2])
        if shard is None or shard[0] != MODE_TREE:
            return None
        entry = self._entries(shard[1]).get(key[2:])
        return entry[1] if entry is not None and entry[0] == MODE_FILE else None

    def _entries(self, tree: str) -> dict[str, tuple[int, str]]:
        with self._lock:
            cached = self._trees.get(tree)
        if cached is not None:
            return cached
        entries = {
            e.name.decode("utf-8", "replace"): (e.mode, e.oid)
            for e in read_tree(self._objects, tree)
        }
        with self._lock:
            self._trees[tree] = entries
            if len(self._trees) > TREE_CACHE:
                self._trees.pop(next(iter(self._trees)))
        return entries

    def keys(self, prefix: str = "") -> list[str]:
        """The keys recorded (those starting with ``prefix``), sorted."""
        tree = self.tree()
        if tree is None:
            return []
        return sorted(
            path.replace("/", "", 1)
            for path, _m, _o in sharded_entries(self._objects, tree, prefix=prefix)
        )

    def iter_records(self) -> Iterator[R]:
        """Every record, one at a time (stop early to read fewer)."""
        tree = self.tree()
        if tree is None:
            return
        for _path, _mode, oid in sharded_entries(self._objects, tree):
            yield decode_record(read_blob(self._objects, oid), self.kind)

    def all(self) -> dict[str, R]:
        """Every record, by key (reads them all: for sync and purge, not for lookups)."""
        tree = self.tree()
        if tree is None:
            return {}
        out: dict[str, R] = {}
        for path, _mode, oid in sharded_entries(self._objects, tree):
            out[path.replace("/", "", 1)] = decode_record(read_blob(self._objects, oid), self.kind)
        return out

    def add(self, records: Mapping[str, R], *, merge_from: str | None = None) -> str | None:
        """Record ``records`` (key -> record) in one new commit, moved in by compare-and-swap.

        A key already recorded keeps its record unless the new one differs (then the new one
        wins: the caller decided with the old one in view). ``merge_from`` (a records commit of
        another store, already checked) becomes a second parent, so the union descends from
        both. Returns the new commit (None when nothing changed).
        """
        encoded = {k: encode_record(r) for k, r in records.items()}

        def attempt() -> tuple[str | None] | None:
            head = self.head()
            base = read_commit(self._objects, head).tree if head else None
            changed = {
                k: data
                for k, data in encoded.items()
                if base is None or self._stored(base, k) != blob_id(data)
            }
            if not changed and (merge_from is None or merge_from == head):
                return (None,)
            tree = sharded_tree(self._objects, base, changed)
            parents = [head] if head else []
            if merge_from is not None and merge_from != head:
                parents.append(merge_from)
            message = f"gitstore: {len(changed)} record(s) in {self.ref}\n".encode()
            commit = new_commit(
                self._objects,
                tree,
                parents,
                message,
                identity=self.identity,
                when=int(time.time()),
            )
            if not self._refs.cas(self.ref, head, commit):
                return None
            return (commit,)

        return cas.retry(attempt, ref=self.ref, timeout=self.cas_timeout)[0]


def encode_record(record: RewriteRecord | PurgeRecord) -> bytes:
    """A record as stored: JSON with sorted keys and a trailing newline."""
    return _encoder.encode(record) + b"\n"
