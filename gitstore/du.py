"""du: the bytes on disk and the logical bytes of a store, per spec, task and content type.

What "on disk" means, object by object:

- a packed object costs its entry in the pack: the entry header plus its compressed data (for a
  delta git made, the delta, not the object it rebuilds). Read from the pack's index (the
  distance to the next entry), so no object is inflated to size it;
- a loose object costs its file;
- an object stored twice (in two packs, or packed and loose) costs its first copy, packs first;
  the others are ``other`` in the store's total.

Every object is counted once. Tasks are visited in ``SPEC/TASK`` order and each one's objects
are what its history reaches and no task before it did: an artifact shared by two tasks (the
same bytes put twice) belongs to the first. Within a task, a blob's content type is the one its
newest version that names it gives it. Commits, trees and manifests count for their task and,
among content types, as ``(versions)``.

``logical`` is the artifacts' own sizes (as ``ls`` shows them), each distinct blob once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

import msgspec

from gitstore.backend.objects import DiskObjects, ObjectBackend
from gitstore.backend.repack import PackedReader
from gitstore.backend.trees import MODE_GITLINK, MODE_TREE, read_blob, read_commit, read_tree
from gitstore.errors import IntegrityError
from gitstore.meta import decode_manifest
from gitstore.model import MANIFEST_PATH, DiskUsage, UsagePart
from gitstore.quota import disk_usage
from gitstore.versions import Versions

__all__ = ["VERSIONS_TYPE", "du"]

# The content type under which commits, trees and manifests are counted.
VERSIONS_TYPE = "(versions)"


class _Tally:
    def __init__(self) -> None:
        self.disk = 0
        self.logical = 0
        self.objects = 0

    def part(self, name: str) -> UsagePart:
        return UsagePart(name, self.disk, self.logical, self.objects)


def du(versions: Versions, heads: Mapping[str, str], scope: str | None) -> DiskUsage:
    """Measure the tasks ``heads`` (``SPEC/TASK -> head``, the scope ``scope``: None for the
    whole store). Raises IntegrityError if something a head reaches cannot be read."""
    reader = _Reader(versions.objects)
    try:
        return _measure(reader, heads, scope)
    finally:
        reader.close()


def _measure(reader: _Reader, heads: Mapping[str, str], scope: str | None) -> DiskUsage:
    objects = reader.objects
    sizes = reader.sizes()
    seen: set[str] = set()
    specs: dict[str, _Tally] = {}
    tasks: dict[str, _Tally] = {}
    by_type: dict[str, _Tally] = {}
    sizes_get = sizes.get
    untyped = (VERSIONS_TYPE, 0)
    for key in sorted(heads):
        spec = key.split("/", 1)[0]
        new, kinds = _walk(reader, heads[key], seen)
        kinds_get = kinds.get
        task_tally = tasks.setdefault(key, _Tally())
        for oid in new:
            disk = sizes_get(oid, 0)
            kind, logical = kinds_get(oid, untyped) if kinds else untyped
            task_tally.disk += disk
            task_tally.logical += logical
            tally = by_type.get(kind)
            if tally is None:
                tally = by_type[kind] = _Tally()
            tally.disk += disk
            tally.logical += logical
            tally.objects += 1
        task_tally.objects += len(new)
        spec_tally = specs.setdefault(spec, _Tally())
        spec_tally.disk += task_tally.disk
        spec_tally.logical += task_tally.logical
        spec_tally.objects += task_tally.objects
    reached = sum(t.disk for t in tasks.values())
    logical = sum(t.logical for t in tasks.values())
    unreachable = other = 0
    total = reached
    if scope is None and isinstance(objects, DiskObjects):
        total = disk_usage(objects.path)
        unreachable = sum(n for oid, n in sizes.items() if oid not in seen)
        other = max(0, total - reached - unreachable)
    return DiskUsage(
        scope=scope,
        total=total,
        logical=logical,
        unreachable=unreachable,
        other=other,
        specs=tuple(t.part(n) for n, t in sorted(specs.items())),
        tasks=tuple(t.part(n) for n, t in sorted(tasks.items())),
        types=tuple(t.part(n) for n, t in sorted(by_type.items(), key=lambda kv: -kv[1].disk)),
    )


def _walk(
    reader: _Reader, head: str, seen: set[str]
) -> tuple[list[str], dict[str, tuple[str, int]]]:
    """The objects ``head``'s history reaches that are not in ``seen`` (added to it), and
    blob id -> (content type, size) from its versions' manifests, newest first.

    One read per commit and tree and one per manifest: what :func:`reachable` and the manifests
    cost together, without reading a commit or a tree twice. IntegrityError if one cannot be
    read.
    """
    new: list[str] = []
    kinds: dict[str, tuple[str, int]] = {}
    commits = [head]
    while commits:
        commit = commits.pop()
        if commit in seen:
            continue
        seen.add(commit)
        new.append(commit)
        root, parents = reader.commit(commit)
        commits.extend(reversed(parents))  # the first parent next: newest first
        manifest = None
        trees = [(root, "")]
        while trees:
            tree, prefix = trees.pop()
            if tree in seen:
                continue
            seen.add(tree)
            new.append(tree)
            for name, mode, oid in reader.tree(tree):
                path = prefix + name.decode("utf-8", "replace")
                if mode == MODE_TREE:
                    trees.append((oid, path + "/"))
                    continue
                if mode == MODE_GITLINK:
                    continue  # another repository's commit: not here
                if path == MANIFEST_PATH:
                    manifest = oid
                if oid not in seen:
                    seen.add(oid)
                    new.append(oid)
        if manifest is not None:
            try:
                artifacts = decode_manifest(reader.blob(manifest)).artifacts
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # not a manifest gitstore can read: its blobs count as untyped
            for a in artifacts.values():
                kinds.setdefault(a.oid, (a.content_type, a.size))
    return new, kinds


class _Reader:
    """Commits, trees and manifests as du reads them: straight from the packs where it can
    (:class:`~gitstore.backend.repack.PackedReader`), through the object store otherwise (loose
    objects, deltas, a store in memory)."""

    def __init__(self, objects: ObjectBackend) -> None:
        self.objects = objects
        self.packed = PackedReader(objects.pack_dir) if isinstance(objects, DiskObjects) else None

    def close(self) -> None:
        if self.packed is not None:
            self.packed.close()

    def _raw(self, oid: str, kind: bytes) -> bytes | None:
        if self.packed is None:
            return None
        try:
            found = self.packed.read(oid)
        except ValueError as e:
            raise IntegrityError(str(e)) from None
        if found is None:
            return None
        if found[0] != kind:
            raise IntegrityError(f"object {oid} is a {found[0].decode()}, not a {kind.decode()}")
        return found[1]

    def commit(self, oid: str) -> tuple[str, list[str]]:
        """The tree and parents of commit ``oid``."""
        raw = self._raw(oid, b"commit")
        if raw is None:
            info = read_commit(self.objects, oid)
            return info.tree, list(info.parents)
        tree, parents = "", []
        for line in raw.split(b"\n\n", 1)[0].split(b"\n"):
            key, _, value = line.partition(b" ")
            if key == b"tree":
                tree = value.decode("ascii", "replace")
            elif key == b"parent":
                parents.append(value.decode("ascii", "replace"))
        return tree, parents

    def tree(self, oid: str) -> list[tuple[bytes, int, str]]:
        """(name, mode, id) of every entry of tree ``oid``."""
        raw = self._raw(oid, b"tree")
        if raw is None:
            return [(e.name, e.mode, e.oid) for e in read_tree(self.objects, oid)]
        out = []
        i = 0
        try:
            while i < len(raw):
                space = raw.index(b" ", i)
                nul = raw.index(b"\0", space)
                sha = raw[nul + 1 : nul + 21]
                if len(sha) != 20:
                    raise ValueError
                out.append((raw[space + 1 : nul], int(raw[i:space], 8), sha.hex()))
                i = nul + 21
        except ValueError:
            raise IntegrityError(f"object {oid}: a tree that does not parse") from None
        return out

    def blob(self, oid: str) -> bytes:
        """The bytes of (small) blob ``oid``."""
        raw = self._raw(oid, b"blob")
        return raw if raw is not None else read_blob(self.objects, oid)

    def sizes(self) -> dict[str, int]:
        """Object id -> bytes on disk of its first copy (packs first, then loose files);
        empty for a store in memory, which has no disk."""
        if self.packed is None or not isinstance(self.objects, DiskObjects):
            return {}
        sizes = dict(self.packed.sizes)
        path = self.objects.path
        for sub in sorted(os.listdir(path)):
            if len(sub) != 2:
                continue
            try:
                with os.scandir(os.path.join(path, sub)) as it:
                    for entry in it:
                        if len(entry.name) == 38 and sub + entry.name not in sizes:
                            with contextlib.suppress(FileNotFoundError):
                                sizes[sub + entry.name] = entry.stat(follow_symlinks=False).st_size
            except NotADirectoryError:
                continue
        return sizes
