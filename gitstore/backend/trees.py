"""Trees and commits: a version's objects written, and read back as plain values.

Above the backend nothing handles dulwich's object classes. A commit is read as a
:class:`CommitInfo`, a tree as a list of :class:`TreeEntry`, a blob as bytes; a version is written
by :func:`write_version` (the put's small blobs, the manifest blob, the ``.gitstore/`` tree, the
nested artifact trees and the commit, all in one pack); :func:`reachable` walks what refs reach
(for gc). Reading an object of another kind than asked for raises :class:`KindError`, an
:class:`~gitstore.errors.IntegrityError` that says what the object is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any, NamedTuple

from dulwich.errors import ObjectFormatException
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tag, Tree, parse_tree

from gitstore.backend.objects import ObjectBackend
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
    "add_blobs",
    "lookup",
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


def read_commit(objects: ObjectBackend, oid: str) -> CommitInfo:
    """Commit ``oid``; KindError if it is no commit, IntegrityError if it cannot be read."""
    c: Commit = _get(objects, oid, Commit, "commit")
    return CommitInfo(
        oid,
        c.tree.decode(),
        tuple(p.decode() for p in c.parents),
        c.message,
        int(c.commit_time),
        c.as_raw_string(),
    )


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
    blob: Blob = _get(objects, oid, Blob, "blob")
    return blob.as_raw_string()


def lookup(objects: ObjectBackend, tree: str, path: str) -> TreeEntry | None:
    """The entry at ``path`` (``a/b/c``) below tree ``tree``; None where the path leads nowhere
    (a missing name, or a file where a folder should be)."""
    entry = TreeEntry(b"", MODE_TREE, tree)
    for part in path.split("/"):
        if entry.mode != MODE_TREE:
            return None
        node: Tree = _get(objects, entry.oid, Tree, "tree")
        try:
            mode, sha = node[part.encode()]
        except KeyError:
            return None
        entry = TreeEntry(part.encode(), mode, sha.decode())
    return entry


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
    objs: list[ShaFile] = [Blob.from_string(b) for b in carry]
    mblob = Blob.from_string(encode_manifest(manifest))
    objs.append(mblob)
    meta_tree = Tree()
    meta_tree.add(MANIFEST_FILE.encode(), MODE_FILE, mblob.id)
    objs.append(meta_tree)
    nested: dict[str, Any] = {}
    for name, entry in manifest.artifacts.items():
        node = nested
        parts = name.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = (entry.oid, entry.executable)
    root = _build(nested, objs)
    root.add(MANIFEST_DIR.encode(), MODE_TREE, meta_tree.id)
    objs.append(root)
    commit = Commit()
    commit.tree = root.id
    commit.parents = [ObjectID(p.encode()) for p in parents]
    commit.author = commit.committer = identity
    commit.author_time = commit.commit_time = when
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = format_commit_message(manifest, summary)
    objs.append(commit)
    objects.add_objects(objs)
    return commit.id.decode()


def _build(node: dict[str, Any], out: list[ShaFile]) -> Tree:
    """The tree of one folder; every tree below it is appended to ``out``."""
    tree = Tree()
    for key, value in node.items():
        if isinstance(value, dict):
            sub = _build(value, out)
            out.append(sub)
            tree.add(key.encode(), MODE_TREE, sub.id)
        else:
            oid, executable = value
            tree.add(key.encode(), MODE_EXEC if executable else MODE_FILE, oid.encode())
    return tree


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
    return seen


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
