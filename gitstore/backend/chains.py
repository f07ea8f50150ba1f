"""Objects for rewriting history: trees edited path by path, commits copied onto new parents.

A rewritten version keeps everything its commit said (author, committer, their dates and zones,
encoding, message) and changes only its parents and, when artifacts were removed or replaced,
its tree. :func:`copy_commit` writes that copy; :func:`edit_tree` writes the trees along the
changed paths only (a folder left empty disappears, as git has no empty trees).
:func:`sharded_tree` and :func:`sharded_entries` keep small records in a two-level fan-out tree
(``ab/cdef...``), the layout of the rewrite and purge records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree

from gitstore.backend.objects import ObjectBackend
from gitstore.backend.trees import MODE_FILE, MODE_TREE, KindError, read_tree

__all__ = [
    "blob_id",
    "copy_commit",
    "edit_tree",
    "new_commit",
    "sharded_entries",
    "sharded_tree",
]


def blob_id(data: bytes) -> str:
    """The Git blob id of ``data`` (nothing is written)."""
    return Blob.from_string(data).id.decode()


def edit_tree(
    objects: ObjectBackend,
    root: str,
    changes: Mapping[str, tuple[int, str] | None],
    *,
    blobs: Sequence[bytes] = (),
) -> str:
    """Tree ``root`` with each path of ``changes`` set to ``(mode, oid)`` or removed (None).

    Only the trees along changed paths are written, with ``blobs`` (new small blobs), in one
    pack. Returns the new root tree id.
    """
    out: list[ShaFile] = [Blob.from_string(b) for b in blobs]
    grouped: dict[str, Any] = {}
    for path, value in changes.items():
        node = grouped
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    tree = _edit(objects, root, grouped, out)
    if tree is None:
        tree = Tree()
        out.append(tree)
    objects.add_objects(out)
    return tree.id.decode()


def _edit(
    objects: ObjectBackend, oid: str | None, changes: dict[str, Any], out: list[ShaFile]
) -> Tree | None:
    """The edited tree (appended to ``out``), or None when it ends up empty."""
    tree = Tree()
    if oid is not None:
        for entry in read_tree(objects, oid):
            tree.add(entry.name, entry.mode, ObjectID(entry.oid.encode()))
    for name, value in changes.items():
        key = name.encode()
        if isinstance(value, dict):
            current = tree[key] if key in tree else None  # noqa: SIM401 - Tree has no get()
            sub_oid = current[1].decode() if current and current[0] == MODE_TREE else None
            sub = _edit(objects, sub_oid, value, out)
            if sub is None:
                if key in tree:
                    del tree[key]
            else:
                tree.add(key, MODE_TREE, sub.id)
        elif value is None:
            if key in tree:
                del tree[key]
        else:
            mode, blob = value
            tree.add(key, mode, ObjectID(blob.encode()))
    if not len(tree):
        return None
    out.append(tree)
    return tree


def copy_commit(
    objects: ObjectBackend, oid: str, *, tree: str | None = None, parents: Sequence[str]
) -> str:
    """Write commit ``oid`` again with ``parents`` (and ``tree``, if given); return its id.

    Author, committer, dates, zones, encoding and message are kept byte for byte; a signature is
    dropped (it signed the old commit, and would not verify on the copy).
    """
    old = objects.get(oid)
    if not isinstance(old, Commit):
        raise KindError(oid, old.type_name.decode(), "commit")
    new = Commit.from_string(old.as_raw_string())
    if tree is not None:
        new.tree = ObjectID(tree.encode())
    new.parents = [ObjectID(p.encode()) for p in parents]
    new.gpgsig = None
    objects.add_objects([new])
    return new.id.decode()


def new_commit(
    objects: ObjectBackend,
    tree: str,
    parents: Sequence[str],
    message: bytes,
    *,
    identity: bytes,
    when: int,
) -> str:
    """Write a plain commit (records kept beside the versions, not versions); return its id."""
    c = Commit()
    c.tree = ObjectID(tree.encode())
    c.parents = [ObjectID(p.encode()) for p in parents]
    c.author = c.committer = identity
    c.author_time = c.commit_time = when
    c.author_timezone = c.commit_timezone = 0
    c.encoding = b"UTF-8"
    c.message = message
    objects.add_objects([c])
    return c.id.decode()


def sharded_tree(objects: ObjectBackend, root: str | None, records: Mapping[str, bytes]) -> str:
    """Tree ``root`` (None: empty) with record ``key -> bytes`` stored at ``key[:2]/key[2:]``."""
    changes: dict[str, tuple[int, str] | None] = {}
    blobs = []
    for key, data in records.items():
        blobs.append(data)
        changes[f"{key[:2]}/{key[2:]}"] = (MODE_FILE, blob_id(data))
    if root is None:
        root = _empty_tree(objects)
    return edit_tree(objects, root, changes, blobs=blobs)


def sharded_entries(
    objects: ObjectBackend, root: str, *, prefix: str = ""
) -> Iterator[tuple[str, int, str]]:
    """``(path, mode, oid)`` of every entry of sharded tree ``root``, two levels deep
    (``ab/cdef...``; the key is the path less its ``/``), those whose key starts ``prefix``.

    Entries are read strictly (as git's fsck does); an entry that is no two-level record is
    yielded with its raw path, for a caller checking a tree from elsewhere to refuse.
    """
    for top in read_tree(objects, root, strict=True):
        name = top.name.decode("utf-8", "replace")
        if not (name.startswith(prefix[:2]) or prefix[:2].startswith(name)):
            continue
        if top.mode != MODE_TREE:
            yield name, top.mode, top.oid
            continue
        for entry in read_tree(objects, top.oid, strict=True):
            path = f"{name}/{entry.name.decode('utf-8', 'replace')}"
            if path.replace("/", "", 1).startswith(prefix):
                yield path, entry.mode, entry.oid


def _empty_tree(objects: ObjectBackend) -> str:
    empty = Tree()
    objects.add_objects([empty])
    return empty.id.decode()
