"""gc: give back the space of what no ref reaches, and clean up after crashed writers, without
ever racing live writers. And :func:`expunge`: remove given unreachable objects at once.

What :func:`collect` does, in order:

1. removes temp files (``objects/tmp_*``, ``objects/pack/tmp_*``) that no live writer holds and
   that are older than an hour (big-blob writers hold an flock on theirs for as long as they run);
2. breaks ref lock files left by dead writers (see :mod:`gitstore._fs`);
3. takes the pack lock (``objects/pack/gitstore-merge.lock``, the one merges take), lists the
   loose objects older than the grace period and reads every pack's index, then reads what
   every ref reaches (``refs/*``, packed refs, ``HEAD``). Reaching means reading: if a ref
   cannot be read, or an object it reaches cannot (missing, in a pack without its index,
   damaged, unreadable), gc stops here with an :class:`~gitstore.errors.IntegrityError` naming
   it, before any pack or object is touched, as ``git gc`` stops on a bad object. What the
   unread object reaches is unknown, so nothing may go;
4. plans, pack by pack: an entry no ref reaches is *dropped* when its pack is older than the
   grace period, and kept as *cruft* when it is younger (the age of a packed object is the
   modification time of its pack). A pack is rewritten when it has entries to drop, or when the
   geometric rule (see :mod:`gitstore.backend.packs`, here without the 8 MiB cap) merges it;
   packs no ref reaches anything in and that are young are left as they are;
5. writes the new packs: the reachable entries of every rewritten pack into ONE pack, the cruft
   of each rewritten pack into a cruft pack whose modification time is that of the pack it came
   from (so that cruft ages from when its pack was last written or reused, not from this gc).
   Entries are copied raw (:mod:`gitstore.backend.repack`), their CRC checked on the way;
6. waits until no writer holds a pin (:mod:`gitstore.backend.pins`: a put pins the store from
   the moment it may reuse a stored object until its ref has moved), reads the refs again and
   walks from those that moved: an object a put reused meanwhile is reachable again and the pack
   or loose file holding it stays. Then it removes the rewritten packs and the loose objects
   planned, with git's ``multi-pack-index`` and ``commit-graph`` (which would name them), and
   lets writers in again.

Packs with a ``.keep`` file are left alone, as git leaves them. Loose objects are never packed
(big blobs are loose by design; packing them would mean compressing them again).

:func:`expunge` is step 6 without a grace period, for objects named by id (purge): it refuses
objects a ref reaches, and removes the others from every pack and loose file at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from gitstore._fs import Busy, acquire_lock, break_stale_lock, release_lock, remove_if_stale
from gitstore.backend import pins
from gitstore.backend.objects import DiskObjects, MemoryObjects
from gitstore.backend.packs import Entry, entry_for, geometric
from gitstore.backend.refs import DiskRefs
from gitstore.backend.repack import PackFile, read_pack, remove_pack, with_bases, write_picked
from gitstore.backend.trees import reachable
from gitstore.errors import ConflictError, IntegrityError, UsageError
from gitstore.model import ExpungeReport, GcReport

__all__ = [
    "REMOVE_WAIT",
    "TEMP_GRACE",
    "ExpungeReport",
    "GcReport",
    "collect",
    "expunge",
    "expunge_memory",
]

TEMP_GRACE = 3600.0
# Seconds gc and expunge wait for the pack lock, and then for writers' pins, before giving up.
REMOVE_WAIT = 120.0

_OID = re.compile("[0-9a-f]{40}")


def collect(
    gitdir: str, objects: DiskObjects, refs: DiskRefs, *, prune_after: float, dry_run: bool
) -> GcReport:
    """Run the steps above on the store at ``gitdir``.

    Raises :class:`~gitstore.errors.IntegrityError` (after steps 1 and 2, before anything else)
    when something the refs reach cannot be read; ``dry_run`` raises it just the same.
    :class:`~gitstore.errors.ConflictError` if another gc held the pack lock, or writers their
    pins, for :data:`REMOVE_WAIT` seconds (nothing removed).
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
    with _pack_lock(objects.pack_dir):
        now = time.time()
        loose = _loose(objects, lambda st: now - st.st_mtime >= prune_after)
        packs = _packs(objects.pack_dir, strict=False)
        tips = _tips(gitdir, refs)
        reached = _reach(objects, tips, "gc")
        doomed = {oid: found for oid, found in loose.items() if oid not in reached}
        plan = _Plan(packs, reached, lambda p: now - p.mtime >= prune_after)
        if dry_run:
            return GcReport(
                temp,
                locks,
                int(bool(plan.rewrite)),
                len(doomed) + len(plan.dropped),
                sum(n for _, n in doomed.values()) + plan.dropped_bytes,
                dry_run,
                packs_rewritten=len(plan.rewrite),
                bytes_freed=sum(n for _, n in doomed.values()) + plan.estimate_freed(),
            )
        written = plan.write(objects.pack_dir, objects.fsync)
        before = sum(p.size for p in plan.rewrite) + sum(n for _, n in doomed.values())
        try:
            with pins.exclusive(gitdir, REMOVE_WAIT):
                again = _reach(objects, _moved(tips, _tips(gitdir, refs)), "gc", known=reached)
                kept = plan.remove(again, written)
                freed_loose, pruned = _unlink({o: f for o, f in doomed.items() if o not in again})
        except BaseException:
            for path in written:
                remove_pack(path[:-5])
            raise
    after = sum(_size(p) for p in written) + sum(p.size for p in kept)
    unpruned = sum(n for _, n in doomed.values()) - freed_loose
    kept_bases = {p.base for p in kept}
    gone = [s for s in plan.dropped if s not in again and plan.where[s] not in kept_bases]
    return GcReport(
        temp,
        locks,
        int(bool(plan.rewrite)),
        pruned + len(gone),
        freed_loose + sum(plan.sizes[s] for s in gone),
        dry_run,
        packs_rewritten=len(plan.rewrite) - len(kept),
        bytes_freed=max(0, before - after - unpruned),
    )


def expunge(
    gitdir: str,
    objects: DiskObjects,
    refs: DiskRefs,
    oids: Iterable[str],
    *,
    wait: float = REMOVE_WAIT,
) -> ExpungeReport:
    """Remove objects ``oids`` from the store now: loose files deleted, every pack holding one
    rewritten without it (the other entries copied raw), the old pack removed. No grace period.

    Refuses (:class:`~gitstore.errors.UsageError`, nothing removed) if a ref reaches any of
    them. Safe beside writers: it holds the pack lock and waits for every pin (a put that found
    one of these objects stored finishes first, and its ref then reaches it: refused), and
    writers wait at the gate until it is done, so it checks the refs and removes the objects
    with no writer in between. A delta whose base is removed is stored whole instead.

    Raises:
      UsageError: an id that is not 40 hex digits, or an object a ref still reaches.
      IntegrityError: what the refs reach cannot be read, or a pack cannot be, which may hold
        one of them (nothing removed).
      ConflictError: the pack lock or the pins stayed held for ``wait`` seconds.
    """
    wanted = _check_ids(oids)
    if not wanted:
        return ExpungeReport()
    raw = {bytes.fromhex(o) for o in wanted}
    with _pack_lock(objects.pack_dir, wait), pins.exclusive(gitdir, wait):
        reached = _reach(objects, _tips(gitdir, refs), "expunge")
        still = sorted(wanted & reached)
        if still:
            more = f" and {len(still) - 1} more" if len(still) > 1 else ""
            raise UsageError(
                f"object {still[0]}{more} is still reachable from a ref; nothing removed"
            )
        packs = [p for p in _packs(objects.pack_dir, strict=True) if raw & p.entries.keys()]
        loose = _loose(objects, lambda st: True, only=wanted)
        found = {s for p in packs for s in p.entries if s in raw} | {
            bytes.fromhex(o) for o in loose
        }
        written: list[str] = []
        if packs:
            written.append(_rewrite_without(objects, packs, raw))
        before = sum(p.size for p in packs)
        for pack in packs:
            if pack.base + ".pack" not in written:
                remove_pack(pack.base)
        freed_loose, _ = _unlink(loose)
        if packs or loose:
            _drop_indexes(objects.pack_dir)
    after = sum(_size(p) for p in written)
    return ExpungeReport(
        objects=len(found),
        packs_rewritten=len(packs),
        bytes_freed=max(0, before - after) + freed_loose,
    )


def expunge_memory(
    objects: MemoryObjects, tips: Mapping[str, str], oids: Iterable[str]
) -> ExpungeReport:
    """:func:`expunge` for a store in memory: refuse what ``tips`` reach, forget the rest."""
    wanted = _check_ids(oids)
    still = sorted(wanted & reachable(objects, tips))
    if still:
        raise UsageError(f"object {still[0]} is still reachable from a ref; nothing removed")
    return ExpungeReport(objects=objects.discard(wanted))


def _check_ids(oids: Iterable[str]) -> set[str]:
    wanted = set()
    for oid in oids:
        if not isinstance(oid, str) or not _OID.fullmatch(oid):
            raise UsageError(f"{oid!r} is not an object id (40 lowercase hex digits)")
        wanted.add(oid)
    return wanted


def _rewrite_without(objects: DiskObjects, packs: list[PackFile], raw: set[bytes]) -> str:
    """One pack with every entry of ``packs`` except ``raw``; deltas on a removed base whole."""
    picks: list[tuple[PackFile, bytes]] = []
    whole: list[Entry] = []
    done: set[bytes] = set()
    for pack in packs:
        keep = [s for s in pack.entries if s not in raw and s not in done]
        orphans = frozenset(s for s in keep if pack.entries[s].base in raw)
        for sha in orphans:
            obj = objects.get(sha.hex())
            whole.append(entry_for(obj, objects.compression))
        try:
            chosen = with_bases(pack, keep, orphans)
        except ValueError as e:
            raise IntegrityError(f"expunge stopped, nothing removed: {e}") from None
        for sha in sorted(chosen - orphans - done):
            if sha in raw:
                # A base of a kept delta that is itself being removed is written whole above.
                continue
            picks.append((pack, sha))
        done |= chosen | orphans
    try:
        return write_picked(objects.pack_dir, picks, fsync=objects.fsync, whole=whole)
    except ValueError as e:
        raise IntegrityError(f"expunge stopped, nothing removed: {e}") from None


class _Plan:
    """What gc rewrites: packs, the entries that go to the live pack, to cruft, or nowhere."""

    def __init__(
        self,
        packs: list[PackFile],
        reached: set[str],
        old: Callable[[PackFile], bool],
    ) -> None:
        self.live: dict[bytes, PackFile] = {}
        self.cruft: dict[float, dict[bytes, PackFile]] = {}
        self.dropped: set[str] = set()
        self.sizes: dict[str, int] = {}
        self.dropped_bytes = 0
        rewrite: dict[str, PackFile] = {}
        holding = [p for p in packs if any(s.hex() in reached for s in p.entries)]
        for name in geometric([(p.size, p.base) for p in holding]):
            rewrite[name] = next(p for p in holding if p.base == name)
        for p in packs:
            if old(p) and any(s.hex() not in reached for s in p.entries):
                rewrite[p.base] = p
        self.rewrite = []
        self.where: dict[str, str] = {}
        for p in rewrite.values():
            live = [s for s in p.entries if s.hex() in reached]
            dead = [s for s in p.entries if s.hex() not in reached]
            try:
                live_all = with_bases(p, live)
                cruft = set() if old(p) else with_bases(p, dead)
            except ValueError:
                continue  # a delta with its base in another pack (thin): left as it is
            self.rewrite.append(p)
            for s in live_all:
                self.live.setdefault(s, p)
            if cruft:
                bucket = self.cruft.setdefault(int(p.mtime), {})
                for s in cruft:
                    bucket.setdefault(s, p)
            elif old(p):
                for s in dead:
                    if s not in live_all:
                        self.dropped.add(s.hex())
                        self.sizes[s.hex()] = p.entries[s].length
                        self.where[s.hex()] = p.base
        # An object dropped from one pack but kept in another (as a base, or as cruft) stays.
        kept = {s.hex() for s in self.live} | {s.hex() for b in self.cruft.values() for s in b}
        self.dropped -= kept
        self.dropped_bytes = sum(self.sizes[s] for s in self.dropped)

    def estimate_freed(self) -> int:
        """Bytes a rewrite would give back: old packs minus new ones (entries, trailers and
        index rows; an offset delta turned into a reference delta grows by a few bytes)."""
        out = 0
        for group in [self.live, *self.cruft.values()]:
            if group:
                entries = sum(p.entries[s].length for s, p in group.items())
                out += 12 + entries + 20 + 8 + 1024 + 28 * len(group) + 40
        return max(0, sum(p.size for p in self.rewrite) - out)

    def write(self, pack_dir: str, fsync: bool) -> list[str]:
        """Write the live pack and the cruft packs; return their paths. On an error (a damaged
        entry), remove what was written and raise IntegrityError: nothing old is touched."""
        written: list[str] = []
        try:
            if self.live:
                written.append(write_picked(pack_dir, _picks(self.live), fsync=fsync))
            for mtime, group in sorted(self.cruft.items()):
                written.append(
                    write_picked(pack_dir, _picks(group), fsync=fsync, mtime=float(mtime))
                )
        except BaseException as e:
            # A full disk passes through as the OSError it is; a damaged entry says so.
            for path in written:
                remove_pack(path[:-5])
            if isinstance(e, ValueError):
                raise IntegrityError(f"gc stopped, nothing pruned: {e}") from None
            raise
        return written

    def remove(self, again: set[str], written: list[str]) -> list[PackFile]:
        """Remove the rewritten packs, except one holding an object reached since the plan
        (a put reused it meanwhile) or one a new pack replaced under the same name; return
        those kept."""
        kept = []
        removed = 0
        for p in self.rewrite:
            if p.base + ".pack" in written:
                continue
            if any(s.hex() in again for s in p.entries):
                kept.append(p)
                continue
            remove_pack(p.base)
            removed += 1
        if removed:
            _drop_indexes(os.path.dirname(self.rewrite[0].base))
        return kept


def _picks(group: dict[bytes, PackFile]) -> list[tuple[PackFile, bytes]]:
    return [(p, s) for s, p in group.items()]


@contextlib.contextmanager
def _pack_lock(pack_dir: str, wait: float = REMOVE_WAIT) -> Iterator[None]:
    """The lock merges take: one process rewrites packs at a time."""
    os.makedirs(pack_dir, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        try:
            fd, lock = acquire_lock(os.path.join(pack_dir, "gitstore-merge"))
            break
        except Busy:
            if time.monotonic() >= deadline:
                raise ConflictError(
                    "another process kept rewriting packs (gc or a merge); try again"
                ) from None
            time.sleep(0.01)
    try:
        yield
    finally:
        release_lock(fd, lock)


def _packs(pack_dir: str, *, strict: bool) -> list[PackFile]:
    """Every pack with an index, read (see :func:`read_pack`); packs with a ``.keep`` are left
    out unless ``strict``. One that cannot be read is left out too (gc leaves it for verify to
    report), or with ``strict`` stops everything with IntegrityError."""
    names = set(_listdir(pack_dir))
    out = []
    for name in sorted(names):
        if not (name.endswith(".idx") and name[:-4] + ".pack" in names):
            continue
        base = os.path.join(pack_dir, name[:-4])
        if not strict and name[:-4] + ".keep" in names:
            continue
        try:
            out.append(read_pack(base))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, IndexError) as e:
            if strict:
                raise IntegrityError(
                    f"expunge stopped, nothing removed: objects/pack/{name[:-4]} cannot be "
                    f"read ({e}), so whether it holds them is unknown"
                ) from None
    return out


def _loose(
    objects: DiskObjects, keep: Callable[[os.stat_result], bool], only: set[str] | None = None
) -> dict[str, tuple[str, int]]:
    """Loose objects ``keep`` accepts (by their stat), or of ``only`` those ids: oid ->
    (path, size)."""
    found: dict[str, tuple[str, int]] = {}
    subs = sorted({o[:2] for o in only}) if only is not None else _listdir(objects.path)
    for sub in subs:
        if len(sub) != 2:
            continue
        for rest in _listdir(os.path.join(objects.path, sub)):
            if len(rest) != 38 or (only is not None and sub + rest not in only):
                continue
            path = os.path.join(objects.path, sub, rest)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if keep(st):
                found[sub + rest] = (path, st.st_size)
    return found


def _unlink(doomed: dict[str, tuple[str, int]]) -> tuple[int, int]:
    """Remove loose objects; (bytes, count) removed."""
    size = count = 0
    for path, nbytes in doomed.values():
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        count += 1
        size += nbytes
    return size, count


def _drop_indexes(pack_dir: str) -> None:
    """Remove git's multi-pack-index and commit-graph: they may name what was just removed, and
    git rebuilds them when it wants them (``git gc`` does)."""
    info = os.path.join(os.path.dirname(pack_dir), "info")
    for path in (
        os.path.join(pack_dir, "multi-pack-index"),
        os.path.join(info, "commit-graph"),
    ):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    graphs = os.path.join(info, "commit-graphs")
    for name in _listdir(graphs):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(graphs, name))


def _reach(
    objects: DiskObjects, tips: dict[str, str], who: str, known: set[str] | None = None
) -> set[str]:
    """What ``tips`` reach (past ``known``); IntegrityError if any of it cannot be read."""
    try:
        return reachable(objects, tips, known or frozenset())
    except IntegrityError as e:
        # Unread, an object may reach anything: removing now could delete what it reaches.
        nothing = "nothing pruned" if who == "gc" else "nothing removed"
        raise IntegrityError(f"{who} stopped, {nothing}: {e}") from None


def _moved(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    return {name: oid for name, oid in after.items() if before.get(name) != oid}


def _size(path: str) -> int:
    total = 0
    for ext in (".pack", ".idx"):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(path[:-5] + ext).st_size
    return total


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
