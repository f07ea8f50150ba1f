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

import os
from collections.abc import Mapping

import msgspec

from gitstore.backend.objects import DiskObjects, ObjectBackend
from gitstore.backend.repack import entry_lengths
from gitstore.backend.trees import MODE_GITLINK, MODE_TREE, read_blob, read_commit, read_tree
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

    def add(self, disk: int, logical: int) -> None:
        self.disk += disk
        self.logical += logical
        self.objects += 1

    def part(self, name: str) -> UsagePart:
        return UsagePart(name, self.disk, self.logical, self.objects)


def du(versions: Versions, heads: Mapping[str, str], scope: str | None) -> DiskUsage:
    """Measure the tasks ``heads`` (``SPEC/TASK -> head``, the scope ``scope``: None for the
    whole store). Raises IntegrityError if something a head reaches cannot be read."""
    objects = versions.objects
    sizes = _object_sizes(objects)
    seen: set[str] = set()
    specs: dict[str, _Tally] = {}
    tasks: dict[str, _Tally] = {}
    types: dict[str, _Tally] = {}
    for key in sorted(heads):
        spec = key.split("/", 1)[0]
        new, kinds = _walk(objects, heads[key], seen)
        spec_tally = specs.setdefault(spec, _Tally())
        task_tally = tasks.setdefault(key, _Tally())
        for oid in new:
            disk = sizes.get(oid, 0)
            kind, logical = kinds.get(oid, (VERSIONS_TYPE, 0))
            spec_tally.add(disk, logical)
            task_tally.add(disk, logical)
            types.setdefault(kind, _Tally()).add(disk, logical)
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
        types=tuple(t.part(n) for n, t in sorted(types.items(), key=lambda kv: -kv[1].disk)),
    )


def _walk(
    objects: ObjectBackend, head: str, seen: set[str]
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
        info = read_commit(objects, commit)
        commits.extend(reversed(info.parents))  # the first parent next: newest first
        manifest = None
        trees = [(info.tree, "")]
        while trees:
            tree, prefix = trees.pop()
            if tree in seen:
                continue
            seen.add(tree)
            new.append(tree)
            for entry in read_tree(objects, tree):
                path = prefix + entry.name.decode("utf-8", "replace")
                if entry.mode == MODE_TREE:
                    trees.append((entry.oid, path + "/"))
                    continue
                if entry.mode == MODE_GITLINK:
                    continue  # another repository's commit: not here
                if path == MANIFEST_PATH:
                    manifest = entry.oid
                if entry.oid not in seen:
                    seen.add(entry.oid)
                    new.append(entry.oid)
        if manifest is not None:
            try:
                artifacts = decode_manifest(read_blob(objects, manifest)).artifacts
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # not a manifest gitstore can read: its blobs count as untyped
            for a in artifacts.values():
                kinds.setdefault(a.oid, (a.content_type, a.size))
    return new, kinds


def _object_sizes(objects: ObjectBackend) -> dict[str, int]:
    """Object id -> bytes on disk of its first copy (packs first, then loose files); empty for
    a store in memory, which has no disk."""
    if not isinstance(objects, DiskObjects):
        return {}
    sizes: dict[str, int] = {}
    try:
        names = sorted(os.listdir(objects.pack_dir))
    except FileNotFoundError:
        names = []
    for name in names:
        if name.endswith(".idx") and name[:-4] + ".pack" in names:
            try:
                lengths = entry_lengths(os.path.join(objects.pack_dir, name[:-4]))
            except (OSError, ValueError):
                continue  # unreadable: its bytes stay in the total, as "other"
            for oid, n in lengths.items():
                sizes.setdefault(oid, n)
    for sub in sorted(os.listdir(objects.path)):
        if len(sub) != 2:
            continue
        try:
            with os.scandir(os.path.join(objects.path, sub)) as it:
                for entry in it:
                    if len(entry.name) == 38 and sub + entry.name not in sizes:
                        try:
                            sizes[sub + entry.name] = entry.stat(follow_symlinks=False).st_size
                        except FileNotFoundError:
                            continue
        except NotADirectoryError:
            continue
    return sizes
