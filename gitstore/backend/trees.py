"""Trees and commits: a version's objects written, and read back as plain values.

Above the backend nothing handles dulwich's object classes. A commit is read as a
:class:`CommitInfo`, a tree as a list of :class:`TreeEntry`, a blob as bytes; a version is written
by :func:`write_version` (the put's small blobs, the manifest blob, the ``.gitstore/`` tree, the
nested artifact trees and the commit, all in one pack); :func:`reachable` walks what refs reach
(for gc). Reading an object of another kind than asked for raises :class:`KindError`, an
:class:`~gitstore.errors.IntegrityError` that says what the object is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any, NamedTuple

from dulwich.errors import ObjectFormatException
from dulwich.objects import Blob, Commit, ShaFile, Tag, Tree, parse_tree

from gitstore.backend.objects import ObjectBackend, RawObject
from gitstore.errors import IntegrityError
from gitstore.meta import (
    MANIFEST_DIR,
    MANIFEST_FILE,
    Manifest,
    encode_manifest,
    format_commit_message,
)

__all__ = [
    "MODE_EXEC",
    "MODE_FILE",
    "MODE_GITLINK",
    "MODE_LINK",
    "MODE_TREE",
    "CommitInfo",
    "KindError",
    "TreeEntry",
    "VersionBatch",
    "add_blobs",
    "entry_named",
    "lookup",
    "parse_commit",
    "reachable",
    "read_blob",
    "read_commit",
    "read_tree",
    "write_version",
]

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_TREE = 0o040000
MODE_LINK = 0o120000
MODE_GITLINK = 0o160000


class KindError(IntegrityError):
    """The object is there, but of another kind than the one asked for (a tree, not a commit)."""

    def __init__(self, oid: str, kind: str, wanted: str) -> None:
        super().__init__(f"object {oid} is a {kind}, not a {wanted}")
        self.kind = kind


class CommitInfo(NamedTuple):
    """A commit as gitstore reads it: its tree, parents, message, time and raw bytes."""

    oid: str
    tree: str
    parents: tuple[str, ...]
    message: bytes
    commit_time: int
    raw: bytes


class TreeEntry(NamedTuple):
    """One entry of a tree: its name (raw bytes, as stored), mode and object id."""

    name: bytes
    mode: int
    oid: str


def _get(objects: ObjectBackend, oid: str, cls: type[Any], wanted: str) -> Any:
    obj = objects.get(oid)
    if not isinstance(obj, cls):
        raise KindError(oid, obj.type_name.decode(), wanted)
    return obj


def _raw(objects: ObjectBackend, oid: str, wanted: str) -> bytes:
    kind, raw = objects.get_raw(oid)
    if kind != wanted:
        raise KindError(oid, kind, wanted)
    return raw


def read_commit(objects: ObjectBackend, oid: str) -> CommitInfo:
    """Commit ``oid``; KindError if it is no commit, IntegrityError if it cannot be read or
    names no tree, or names one (or a parent) by something else than an object id."""
    return parse_commit(oid, _raw(objects, oid, "commit"))


def parse_commit(oid: str, raw: bytes) -> CommitInfo:
    """The commit whose bytes are ``raw`` (see :func:`read_commit`).

    Parsed here rather than by dulwich, whose parser cost more than reading the commit: the
    headers end at the first empty line (a multi-line header continues with a space), ``tree``
    and ``parent`` give the links, the committer line the time, and the message follows.
    """
    head, _, message = raw.partition(b"\n\n")
    tree: str | None = None
    parents: list[str] = []
    when = 0
    try:
        for line in head.split(b"\n"):
            key, _, value = line.partition(b" ")
            if key == b"tree" and tree is None:
                tree = _hex_id(value)
            elif key == b"parent":
                parents.append(_hex_id(value))
            elif key == b"committer":
                when = int(value.rsplit(b" ", 2)[-2])
    except (ValueError, IndexError):
        raise IntegrityError(
            f"commit {oid} is malformed (a bad tree, parent or committer line)"
        ) from None
    if tree is None:
        raise IntegrityError(f"commit {oid} is malformed (no tree)")
    return CommitInfo(oid, tree, tuple(parents), message, when, raw)


def _hex_id(value: bytes) -> str:
    text = value.decode("ascii")
    if len(text) != 40 or not _HEX.issuperset(text):
        raise ValueError(text)
    return text


_HEX = frozenset("0123456789abcdef")


def read_tree(objects: ObjectBackend, oid: str, *, strict: bool = False) -> list[TreeEntry]:
    """The entries of tree ``oid``.

    ``strict`` parses the tree's bytes again as git's fsck does, entry by entry and in stored
    order, so that duplicate names survive to be refused (the parsed tree keeps one of each);
    it raises ValueError for bytes that do not parse.
    """
    tree: Tree = _get(objects, oid, Tree, "tree")
    if not strict:
        return [TreeEntry(i.path, i.mode, i.sha.decode()) for i in tree.iteritems()]
    try:
        raw = list(parse_tree(tree.as_raw_string(), 20, strict=True))
    except (ObjectFormatException, ValueError) as e:
        raise ValueError(str(e)) from None
    return [TreeEntry(name, mode, sha.decode()) for name, mode, sha in raw]


def read_blob(objects: ObjectBackend, oid: str) -> bytes:
    """The bytes of blob ``oid``, whole (for small blobs; large ones stream with open_blob)."""
    return _raw(objects, oid, "blob")


def lookup(objects: ObjectBackend, tree: str, path: str) -> TreeEntry | None:
    """The entry at ``path`` (``a/b/c``) below tree ``tree``; None where the path leads nowhere
    (a missing name, or a file where a folder should be). Of two entries of one name (a
    malformed tree), the last counts."""
    entry = TreeEntry(b"", MODE_TREE, tree)
    for part in path.split("/"):
        if entry.mode != MODE_TREE:
            return None
        found = entry_named(entry.oid, _raw(objects, entry.oid, "tree"), part.encode())
        if found is None:
            return None
        entry = found
    return entry


def entry_named(oid: str, raw: bytes, name: bytes) -> TreeEntry | None:
    """The entry ``name`` of tree ``oid`` whose bytes are ``raw`` (of two of one name, the
    last: see :func:`lookup`); None if there is none; IntegrityError if the bytes do not parse."""
    found = None
    try:
        for entry_name, mode, sha in parse_tree(raw, 20):
            if entry_name == name:
                found = TreeEntry(entry_name, mode, sha.decode())
    except (ObjectFormatException, ValueError) as e:
        raise IntegrityError(f"tree {oid} is malformed ({e})") from None
    return found


def add_blobs(objects: ObjectBackend, blobs: Sequence[bytes]) -> None:
    """Write small blobs as one pack (a put's early flush of what it gathered)."""
    objects.add_objects([Blob.from_string(b) for b in blobs])


def write_version(
    objects: ObjectBackend,
    manifest: Manifest,
    parents: Sequence[str],
    summary: str,
    *,
    identity: bytes,
    when: int,
    carry: Sequence[bytes] = (),
) -> str:
    """Write the objects of a version and return its commit id.

    ``carry`` (small blobs not written yet), the manifest blob, the trees and the commit go into
    one pack. The tree holds each artifact at its name (mode 100755 when executable) and
    ``.gitstore/manifest.json``; the commit's author and committer are ``identity`` at ``when``
    (UTC), its message the summary and trailers of :func:`gitstore.meta.format_commit_message`.
    """
    batch = VersionBatch()
    batch.add_blobs(carry)
    commit = batch.add_version(manifest, parents, summary, identity=identity, when=when)
    batch.write(objects)
    return commit


class VersionBatch:
    """The objects of several versions (and small blobs) gathered to be written as ONE pack.

    A batch of puts (``Store.put_many``, concurrent puts coalesced) builds each version here in
    memory and writes them all with one :meth:`write`: one pack, one round of fsyncs.

    Objects are built as raw bytes (git's canonical form) and hashed once: building dulwich
    objects serialized each one two or three times, which was most of a small put's CPU.
    """

    def __init__(self) -> None:
        self._objects: list[RawObject] = []

    def __len__(self) -> int:
        return len(self._objects)

    def _add(self, kind: int, raw: bytes) -> bytes:
        sha = hashlib.sha1(b"%s %d\0" % (_KIND_NAMES[kind], len(raw)))
        sha.update(raw)
        binary = sha.digest()
        self._objects.append(RawObject(kind, raw, binary))
        return binary

    def add_blobs(self, blobs: Iterable[bytes]) -> None:
        """Gather small blobs (a put's ``carry``)."""
        for b in blobs:
            self._add(_BLOB, b)

    def add_version(
        self,
        manifest: Manifest,
        parents: Sequence[str],
        summary: str,
        *,
        identity: bytes,
        when: int,
    ) -> str:
        """Gather the objects of one version (see :func:`write_version`); return its commit id."""
        mblob = self._add(_BLOB, encode_manifest(manifest))
        meta_tree = self._add(_TREE, _tree_raw([(MANIFEST_FILE.encode(), MODE_FILE, mblob)]))
        nested: dict[str, Any] = {}
        for name, entry in manifest.artifacts.items():
            node = nested
            parts = name.split("/")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = (entry.oid, entry.executable)
        root = self._tree(nested, [(MANIFEST_DIR.encode(), MODE_TREE, meta_tree)])
        stamp = b"%d +0000" % when
        lines = [b"tree " + root.hex().encode()]
        lines.extend(b"parent " + p.encode() for p in parents)
        lines.append(b"author " + identity + b" " + stamp)
        lines.append(b"committer " + identity + b" " + stamp)
        lines.append(b"encoding UTF-8")
        raw = b"\n".join(lines) + b"\n\n" + format_commit_message(manifest, summary)
        return self._add(_COMMIT, raw).hex()

    def _tree(self, node: dict[str, Any], extra: list[tuple[bytes, int, bytes]]) -> bytes:
        """Write the tree of one folder (and every tree below it); return its binary id."""
        entries = list(extra)
        for key, value in node.items():
            if isinstance(value, dict):
                entries.append((key.encode(), MODE_TREE, self._tree(value, [])))
            else:
                oid, executable = value
                mode = MODE_EXEC if executable else MODE_FILE
                entries.append((key.encode(), mode, bytes.fromhex(oid)))
        return self._add(_TREE, _tree_raw(entries))

    def write(self, objects: ObjectBackend) -> None:
        """Write everything gathered (one pack, or a few past PACK_FLUSH_BYTES) and start over."""
        if self._objects:
            objects.add_raw(self._objects)
        self._objects = []


_BLOB, _TREE, _COMMIT = 3, 2, 1
_KIND_NAMES = {_BLOB: b"blob", _TREE: b"tree", _COMMIT: b"commit"}


def _tree_raw(entries: list[tuple[bytes, int, bytes]]) -> bytes:
    """A tree's canonical bytes: entries in git's order (a folder sorts as if its name ended
    with ``/``), each ``<octal mode> <name>\\0<20-byte id>``."""
    entries.sort(key=lambda e: e[0] + b"/" if e[1] == MODE_TREE else e[0])
    return b"".join(b"%o %s\0%s" % (mode, name, sha) for name, mode, sha in entries)


def reachable(
    objects: ObjectBackend, tips: Mapping[str, str], known: Set[str] = frozenset()
) -> set[str]:
    """Every object that refs ``tips`` (ref name -> object id) reach, read one by one, except
    what is reached through ``known`` (objects already found reachable: not read again).

    Blobs are marked without being read (they reach nothing and may be GiBs); a submodule entry
    names another repository's commit and is not followed. An object that cannot be read raises
    IntegrityError naming it and the ref it was reached from.
    """
    seen: set[str] = set()
    todo: list[tuple[str, str]] = [(oid, ref) for ref, oid in tips.items()]
    while todo:
        oid, ref = todo.pop()
        if oid in seen or oid in known:
            continue
        seen.add(oid)
        try:
            obj = objects.get(oid)
        except IntegrityError as e:
            raise IntegrityError(f"{e}, reached from {ref}") from None
        todo.extend((o, ref) for o in _children(obj, seen))
    # Blobs go into seen as their trees are read, known or not.
    return seen - known if known else seen


def _children(obj: ShaFile, blobs: set[str]) -> Iterable[str]:
    """What ``obj`` points at that needs reading; its blobs go straight into ``blobs``."""
    if isinstance(obj, Commit):
        yield obj.tree.decode()
        yield from (p.decode() for p in obj.parents)
    elif isinstance(obj, Tree):
        for item in obj.iteritems():
            if item.mode == MODE_TREE:
                yield item.sha.decode()
            elif item.mode != MODE_GITLINK:
                blobs.add(item.sha.decode())
    elif isinstance(obj, Tag):
        yield obj.object[1].decode()
