"""gc: clean up what crashed or abandoned writes leave behind, without ever racing live writers.

What it does, in order:

1. removes temp files (``objects/tmp_*``, ``objects/pack/tmp_*``) that no live writer holds and
   that are older than an hour (big-blob writers hold an flock on theirs for as long as they run);
2. breaks ref lock files left by dead writers (see :mod:`gitstore._fs`);
3. merges small packs (see :mod:`gitstore.packs`) while the geometric rule finds some to merge;
4. prunes loose objects that no ref reaches and that are older than the grace period (two weeks
   by default, like git). A put freshens the mtime of every loose object it reuses before its ref
   moves, so an object a live put is about to reference is never old enough to be pruned.

Unreachable objects inside packs are left alone (they are small; stock ``git gc`` repacks them).
"""

from __future__ import annotations

import dataclasses
import os
import time

from dulwich.objects import Commit, Tag, Tree

from gitstore._fs import break_stale_lock, remove_if_stale
from gitstore.errors import IntegrityError
from gitstore.objects import DiskObjects
from gitstore.packs import merge_small_packs, packs_to_merge
from gitstore.refs import DiskRefs

__all__ = ["TEMP_GRACE", "GcReport", "collect"]

TEMP_GRACE = 3600.0


@dataclasses.dataclass(frozen=True)
class GcReport:
    """What :meth:`gitstore.Store.gc` removed or merged (or would have, with ``dry_run``)."""

    temp_files: int = 0
    stale_locks: int = 0
    merges: int = 0
    pruned_objects: int = 0
    pruned_bytes: int = 0


def collect(
    gitdir: str, objects: DiskObjects, refs: DiskRefs, *, prune_after: float, dry_run: bool
) -> GcReport:
    """Run the steps above on the store at ``gitdir``."""
    temp = 0
    for folder in (objects.path, objects.pack_dir):
        for name in _listdir(folder):
            if name.startswith("tmp_"):
                path = os.path.join(folder, name)
                if dry_run:
                    temp += _is_old(path, TEMP_GRACE)
                else:
                    temp += remove_if_stale(path, TEMP_GRACE)
    locks = 0
    for root, _dirs, files in os.walk(os.path.join(gitdir, "refs", "artifacts")):
        for name in files:
            if name.endswith(".lock"):
                path = os.path.join(root, name)
                locks += _is_old(path, 2.0) if dry_run else break_stale_lock(path)
    merged = 0
    if dry_run:
        merged = int(bool(packs_to_merge(objects.pack_dir, force=True)))
    else:
        while merge_small_packs(objects.pack_dir, fsync=objects.fsync, force=True):
            merged += 1
    pruned, pruned_bytes = _prune(gitdir, objects, refs, prune_after, dry_run)
    return GcReport(temp, locks, merged, pruned, pruned_bytes)


def _prune(
    gitdir: str, objects: DiskObjects, refs: DiskRefs, older_than: float, dry_run: bool
) -> tuple[int, int]:
    now = time.time()
    candidates: dict[str, tuple[str, int]] = {}
    for sub in _listdir(objects.path):
        if len(sub) != 2:
            continue
        for rest in _listdir(os.path.join(objects.path, sub)):
            path = os.path.join(objects.path, sub, rest)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if len(rest) == 38 and now - st.st_mtime >= older_than:
                candidates[sub + rest] = (path, st.st_size)
    if not candidates:
        return 0, 0
    # Every ref of the repository counts, not only ours: a store may live inside a project repo.
    starts = set(refs.items("refs/").values())
    head = refs.get("HEAD")
    if head:
        starts.add(head)
    reachable = _reachable(objects, starts)
    count = size = 0
    for oid, (path, nbytes) in candidates.items():
        if oid in reachable:
            continue
        count += 1
        size += nbytes
        if not dry_run:
            try:
                os.unlink(path)
            except FileNotFoundError:
                count -= 1
                size -= nbytes
    return count, size


def _reachable(objects: DiskObjects, starts: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        try:
            obj = objects.get(oid)
        except IntegrityError:
            continue  # a missing object reaches nothing; verify is where it gets reported
        if isinstance(obj, Commit):
            todo.append(obj.tree.decode())
            todo.extend(p.decode() for p in obj.parents)
        elif isinstance(obj, Tree):
            for item in obj.iteritems():
                if item.mode == 0o040000:
                    todo.append(item.sha.decode())
                elif item.mode != 0o160000:  # a submodule entry names another repo's commit
                    # Blobs reach nothing: mark them without reading (they may be GiBs).
                    seen.add(item.sha.decode())
        elif isinstance(obj, Tag):
            todo.append(obj.object[1].decode())
    return seen


def _is_old(path: str, age: float) -> int:
    try:
        return int(time.time() - os.stat(path).st_mtime >= age)
    except FileNotFoundError:
        return 0


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
