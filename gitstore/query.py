"""Queries over a whole store: find versions by run, tags, type, task pattern and time; delete
what a run wrote; history as JSON Lines.

Answering "which versions did run R write" means reading the manifest of every version of every
task, which costs about a millisecond each. :class:`VersionIndex` keeps the few fields a query
needs, per task, keyed by the task's head commit, in ``<store>/gitstore/index/versions.msgpack``
(in memory for a memory store). It is never trusted blindly: every query reads the refs first,
and a task whose ref moved (or appeared) is re-read from its new head, reusing what is known of
the commits it shares with the old one; tasks whose ref is gone are dropped. Commits never change,
so an entry keyed by a commit that a ref still names is exact. The file is only a cache: deleting
it costs one slow query; a damaged one is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

import msgspec

from gitstore import names as _names
from gitstore._fs import atomic_write
from gitstore.client import HttpStore
from gitstore.errors import ConflictError, InvalidNameError, TaskNotFoundError, UsageError
from gitstore.meta import parse_iso
from gitstore.model import RunDeletion, Version
from gitstore.store import Store
from gitstore.versions import walk_commits

__all__ = [
    "RunDeletion",
    "VersionIndex",
    "VersionRecord",
    "delete_run",
    "find",
    "iter_history",
    "write_jsonl",
]

# 2: records carry message and metadata (a format-1 index is simply rebuilt).
INDEX_FORMAT = 2


class _Art(msgspec.Struct, array_like=True):
    content_type: str
    tags: dict[str, str]


class VersionRecord(msgspec.Struct, array_like=True):
    """What the index keeps of one version: enough to match a query without its manifest."""

    spec: str
    task: str
    commit: str
    version: int
    created_at: str
    run_id: str | None
    parents: list[str]
    artifacts: list[_Art]
    message: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class _Task(msgspec.Struct, array_like=True):
    head: str
    versions: list[VersionRecord]


class _File(msgspec.Struct):
    format: int
    tasks: dict[str, _Task]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_File)


class VersionIndex:
    """Per-task version records, brought up to date from the refs on every :meth:`records`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._tasks: dict[str, _Task] = {}
        self._loaded = False
        self._lock = threading.Lock()
        self._path = (
            os.path.join(store.path, "gitstore", "index", "versions.msgpack")
            if store.path
            else None
        )

    def records(
        self, heads: Mapping[str, str], *, complete: bool = False
    ) -> Iterator[VersionRecord]:
        """Every version of the tasks in ``heads`` (``SPEC/TASK -> head``), refreshed first.

        ``complete``: ``heads`` holds every task of the store, so tasks not in it are gone.
        """
        with self._lock:
            if not self._loaded:
                self._load()
            changed = False
            if complete:
                gone = [k for k in self._tasks if k not in heads]
                for k in gone:
                    del self._tasks[k]
                changed = bool(gone)
            for key, head in heads.items():
                known = self._tasks.get(key)
                if known is None or known.head != head:
                    self._tasks[key] = _Task(head, self._walk(key, head, known))
                    changed = True
            if changed:
                self._save()
            tasks = [self._tasks[k] for k in heads]
        for task in tasks:
            yield from task.versions

    def _walk(self, key: str, head: str, known: _Task | None) -> list[VersionRecord]:
        """Records of every version reachable from ``head``, reusing ``known`` ones by commit."""
        reuse = {r.commit: r for r in known.versions} if known else {}
        found: dict[str, VersionRecord] = {}
        for commit in walk_commits([head], lambda c: found[c].parents):
            rec = reuse.get(commit)
            found[commit] = rec if rec is not None else _record(self._store.show(f"{key}@{commit}"))
        return list(found.values())

    def _load(self) -> None:
        self._loaded = True
        if self._path is None:
            return
        try:
            with open(self._path, "rb") as f:
                data = _decoder.decode(f.read())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return  # no index, or a damaged one: rebuilt from the refs as queries run
        if data.format == INDEX_FORMAT:
            self._tasks = data.tasks

    def _save(self) -> None:
        if self._path is None:
            return
        with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
            # Tasks of other scopes are kept as they were; they are checked when asked for.
            blob = _encoder.encode(_File(INDEX_FORMAT, self._tasks))
            with atomic_write(self._path, fsync=self._store.settings.fsync) as f:
                f.write(blob)

    def forget(self, gone: Sequence[str]) -> None:
        """Drop tasks whose refs are gone (a query over all tasks does it anyway)."""
        with self._lock:
            for key in gone:
                self._tasks.pop(key, None)


_indexes: weakref.WeakKeyDictionary[Store, VersionIndex] = weakref.WeakKeyDictionary()
_indexes_lock = threading.Lock()


def _index(store: Store) -> VersionIndex:
    with _indexes_lock:
        idx = _indexes.get(store)
        if idx is None:
            idx = _indexes[store] = VersionIndex(store)
        return idx


def _record(v: Version) -> VersionRecord:
    return VersionRecord(
        v.spec,
        v.task,
        v.commit,
        v.version,
        v.created_at,
        v.run_id,
        list(v.parents),
        [_Art(a.content_type, dict(a.tags)) for a in v.artifacts],
        v.message,
        dict(v.metadata),
    )


def _heads(store: Store, pattern: str | None) -> dict[str, str]:
    """``SPEC/TASK -> head`` for the tasks ``pattern`` (fnmatch over ``SPEC/TASK``) selects."""
    spec = None
    if pattern and "/" in pattern:
        first = pattern.split("/", 1)[0]
        if not any(c in first for c in "*?["):
            spec = first  # read one spec's refs only
    elif pattern and not any(c in pattern for c in "*?["):
        spec = pattern
        pattern = None
    heads = store.heads(spec) if spec is None or _valid_spec(spec) else {}
    if pattern:
        heads = {k: v for k, v in heads.items() if fnmatch.fnmatchcase(k, pattern)}
    return heads


def _valid_spec(spec: str) -> bool:
    try:
        _names.check_component(spec, "spec")
    except InvalidNameError:
        return False
    return True


def find(
    store: Store,
    *,
    run: str | None = None,
    tags: Mapping[str, str] | None = None,
    content_type: str | None = None,
    pattern: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
    artifacts: bool = True,
    latest: bool = False,
) -> list[Version]:
    """Versions matching every condition given, newest first.

    Args:
      run: the version's run id.
      tags: one artifact of the version carries all of these tags (and ``content_type``, if
        given: conditions on artifacts hold for the same artifact).
      content_type: one artifact has this content type (``text/*`` matches a family).
      pattern: ``SPEC/TASK`` glob (``fix-*/t?``); a bare ``SPEC`` selects one spec.
      since, until: the version's creation time, ISO 8601 (``2025-01-02`` or with a time;
        without a zone, UTC); ``since`` inclusive, ``until`` exclusive.
      limit: at most this many (the newest).
      artifacts: False returns versions without their artifacts (``artifacts=()``), built from
        the index alone: no manifest is read, so a query matching thousands stays fast.
      latest: only each task's latest version (its head) is considered: a task is listed once,
        at its head, when the head matches (an older version that matches does not count).
    """
    if latest:
        if limit is not None and limit < 1:
            raise UsageError("limit must be at least 1")
        # The heads are read after the query: a version that lands between the two is no head
        # the query saw, and is left out rather than listed with a stale answer.
        everything = find(
            store,
            run=run,
            tags=tags,
            content_type=content_type,
            pattern=pattern,
            since=since,
            until=until,
            artifacts=artifacts,
        )
        heads = set(store.heads().values())
        return [v for v in everything if v.commit in heads][:limit]
    if isinstance(store, HttpStore):
        # A served store's server answers from its own index: one request, not one per version.
        return store.find(
            run=run,
            tags=tags,
            content_type=content_type,
            pattern=pattern,
            since=since,
            until=until,
            limit=limit,
            artifacts=artifacts,
        )
    if limit is not None and limit < 1:
        raise UsageError("limit must be at least 1")
    lo = _time(since, "since")
    hi = _time(until, "until")
    want = dict(tags or {})
    hits: list[VersionRecord] = []
    for rec in _index(store).records(_heads(store, pattern), complete=pattern is None):
        if run is not None and rec.run_id != run:
            continue
        if lo is not None or hi is not None:
            when = parse_iso(rec.created_at).timestamp()
            if (lo is not None and when < lo) or (hi is not None and when >= hi):
                continue
        if (want or content_type) and not any(
            _type_matches(a.content_type, content_type)
            and all(a.tags.get(k) == v for k, v in want.items())
            for a in rec.artifacts
        ):
            continue
        hits.append(rec)
    hits.sort(key=lambda r: (r.created_at, r.version, r.commit), reverse=True)
    if limit is not None:
        hits = hits[:limit]
    if not artifacts:
        return [_bare(r) for r in hits]
    return [store.show(f"{r.spec}/{r.task}@{r.commit}") for r in hits]


def _bare(r: VersionRecord) -> Version:
    return Version(
        spec=r.spec,
        task=r.task,
        version=r.version,
        commit=r.commit,
        parents=tuple(r.parents),
        created_at=r.created_at,
        run_id=r.run_id,
        message=r.message,
        metadata=dict(r.metadata),
        artifacts=(),
    )


def _type_matches(actual: str, wanted: str | None) -> bool:
    if wanted is None:
        return True
    if wanted.endswith("/*"):
        return actual.startswith(wanted[:-1])
    return actual == wanted


def _time(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_iso(text).timestamp()
    except ValueError:
        raise UsageError(f"{what}={text!r} is not an ISO 8601 time") from None


def delete_run(store: Store, run: str, *, dry_run: bool = False) -> RunDeletion:
    """Remove what run ``run`` wrote: each task all of whose versions that run wrote.

    A task that other runs also wrote versions of is kept (deleting its ref would delete their
    work), and ``kept`` says why. Deleting a task deletes its ref; its versions stay reachable by
    URI until gc prunes them, like ``rm_task``.
    """
    if not run:
        raise UsageError("delete_run needs a run id")
    heads = store.heads()
    by_task: dict[str, list[VersionRecord]] = {}
    for rec in _index(store).records(heads, complete=True):
        by_task.setdefault(f"{rec.spec}/{rec.task}", []).append(rec)
    deleted: list[str] = []
    kept: dict[str, str] = {}
    for key, recs in sorted(by_task.items()):
        mine = [r for r in recs if r.run_id == run]
        if not mine:
            continue
        if len(mine) < len(recs):
            others = sorted({r.run_id or "(no run)" for r in recs if r.run_id != run})
            kept[key] = (
                f"{len(recs) - len(mine)} of its {len(recs)} versions were written by other "
                f"runs ({', '.join(others)})"
            )
            continue
        if not dry_run:
            try:
                # Only the head the decision was made on: a version another run added
                # meanwhile must not go with it.
                store.rm_task(key, expect=heads[key])
            except TaskNotFoundError:
                continue  # deleted meanwhile by someone else: nothing left to do
            except ConflictError:
                kept[key] = "another version arrived while deleting; run it again to decide"
                continue
        deleted.append(key)
    if not dry_run:
        _index(store).forget(deleted)
    return RunDeletion(run, tuple(deleted), kept, dry_run)


# -- history as JSON Lines -------------------------------------------------------------------


def iter_history(store: Store, scope: str | None = None) -> Iterator[dict[str, Any]]:
    """One JSON-able record per version (its metadata and artifacts), for ``SPEC/TASK``, a spec or
    the whole store (None): tasks in name order, each task's versions newest first."""
    if scope is not None and _names.parse_address(scope).task is not None:
        keys = [scope]  # SPEC/TASK[@REV]: its history (from that version back)
    else:
        keys = list(store.heads_in(scope))
    for key in keys:
        for version in store.log(key):
            yield version.to_dict()


def write_jsonl(store: Store, out: IO[str], scope: str | None = None) -> int:
    """Write :func:`iter_history` to ``out`` as JSON Lines; return how many lines were written."""
    n = 0
    for record in iter_history(store, scope):
        out.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
        n += 1
    return n
