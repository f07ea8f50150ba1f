"""gc: clean up what crashed or abandoned writes leave behind, without ever racing live writers.

What it does, in order:

1. removes temp files (``objects/tmp_*``, ``objects/pack/tmp_*``) that no live writer holds and
   that are older than an hour (big-blob writers hold an flock on theirs for as long as they run);
2. breaks ref lock files left by dead writers (see :mod:`gitstore._fs`);
3. decides which loose objects to prune: those that no ref reaches and that are older than the
   grace period (two weeks by default, like git). A put freshens the mtime of every loose object
   it reuses before its ref moves, so an object a live put is about to reference is never old
   enough to be pruned. Every ref of the repository counts (``refs/*``, packed refs, ``HEAD``),
   and reaching means reading: if a ref cannot be read, or an object it reaches cannot (missing,
   in a pack without its index, damaged, unreadable), gc stops here with an
   :class:`~gitstore.errors.IntegrityError` naming it, before any pack or object is touched, as
   ``git gc`` stops on a bad object. What the unread object reaches is unknown, so nothing may go;
4. merges small packs (see :mod:`gitstore.backend.packs`) while the geometric rule finds some
   to merge;
5. prunes what step 3 decided.

Unreachable objects inside packs are left alone (they are small; stock ``git gc`` repacks them).
"""

from __future__ import annotations

import os
import re
import time

from gitstore._fs import break_stale_lock, remove_if_stale
from gitstore.backend.objects import DiskObjects
from gitstore.backend.packs import merge_small_packs, packs_to_merge
from gitstore.backend.refs import DiskRefs
from gitstore.backend.trees import reachable
from gitstore.errors import IntegrityError
from gitstore.model import GcReport

__all__ = ["TEMP_GRACE", "GcReport", "collect"]

TEMP_GRACE = 3600.0

_OID = re.compile("[0-9a-f]{40}")


def collect(
    gitdir: str, objects: DiskObjects, refs: DiskRefs, *, prune_after: float, dry_run: bool
) -> GcReport:
    """Run the steps above on the store at ``gitdir``.

    Raises :class:`~gitstore.errors.IntegrityError` (after steps 1 and 2, before anything else)
    when something the refs reach cannot be read; ``dry_run`` raises it just the same.
    """
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
    doomed = _unreachable(gitdir, objects, refs, prune_after)
    merged = 0
    if dry_run:
        merged = int(bool(packs_to_merge(objects.pack_dir, force=True)))
    else:
        while merge_small_packs(objects.pack_dir, fsync=objects.fsync, force=True):
            merged += 1
    count = size = 0
    for path, nbytes in doomed.values():
        if not dry_run:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
        count += 1
        size += nbytes
    return GcReport(temp, locks, merged, count, size, dry_run)


def _unreachable(
    gitdir: str, objects: DiskObjects, refs: DiskRefs, older_than: float
) -> dict[str, tuple[str, int]]:
    """Loose objects old enough to prune that no ref reaches: oid -> (path, size)."""
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
        return {}
    # Listed before the refs are read: an object written after the listing is no candidate, and
    # one written before it is reached by the ref its put then moves (or is young, or orphaned).
    try:
        reached = reachable(objects, _tips(gitdir, refs))
    except IntegrityError as e:
        # Unread, an object may reach anything: pruning now could delete what it reaches.
        raise IntegrityError(f"gc stopped, nothing pruned: {e}") from None
    return {oid: found for oid, found in candidates.items() if oid not in reached}


def _tips(gitdir: str, refs: DiskRefs) -> dict[str, str]:
    """Every ref of the repository and the object it names: packed refs, loose ``refs/*``, HEAD.

    Stricter than :meth:`DiskRefs.items`, which skips what it cannot parse: a ref that cannot be
    read, or holds no object id, reaches something unknown, so it stops gc (git: "bad ref").
    """
    tips = dict(refs.packed())
    for root, _dirs, files in os.walk(os.path.join(gitdir, "refs")):
        for f in files:
            # Lock files and the tombs of broken locks are no refs ("~" and ".lock" cannot end
            # or appear in a ref name).
            if f.endswith(".lock") or "~" in f:
                continue
            name = os.path.relpath(os.path.join(root, f), gitdir).replace(os.sep, "/")
            value = _read_ref(gitdir, name)
            if value is not None:
                tips[name] = value
    head = _read_ref(gitdir, "HEAD")
    if head is not None:
        tips["HEAD"] = head
    for name, value in tips.items():
        if not _OID.fullmatch(value):
            raise IntegrityError(
                f"gc stopped, nothing pruned: ref {name} holds {value!r}, not an object id"
            )
    return tips


def _read_ref(gitdir: str, name: str) -> str | None:
    """What loose ref ``name`` holds; None if it is gone or symbolic (its target counts itself)."""
    try:
        with open(os.path.join(gitdir, name), "rb") as f:
            raw = f.read(256)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise IntegrityError(
            f"gc stopped, nothing pruned: ref {name} cannot be read ({e.strerror or e})"
        ) from None
    if raw.startswith(b"ref:"):
        return None
    return raw.strip().decode("ascii", "replace")


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
