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

import concurrent.futures
import contextlib
import fnmatch
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any, NamedTuple

import msgspec

from gitstore import names as _names
from gitstore._fs import atomic_write
from gitstore.client import HttpStore
from gitstore.errors import (
    ConflictError,
    InvalidNameError,
    NotFoundError,
    TaskNotFoundError,
    UsageError,
    VersionNotFoundError,
)
from gitstore.meta import ArtifactEntry, Manifest, Truncation, parse_iso
from gitstore.model import ArtifactInfo, RunDeletion, Version
from gitstore.names import REFS_PREFIX, artifact_uri
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

# 2: records carry message and metadata; 3: tasks grouped by spec, with each spec's ref folder
# stamp, and records carry the whole manifest (an index of an older format is simply rebuilt).
INDEX_FORMAT = 3


class VersionRecord(msgspec.Struct, array_like=True):
    """What the index keeps of one version: its parents and its manifest's fields, enough to
    match a query and to write its history record without reading the version again."""

    spec: str
    task: str
    commit: str
    version: int
    created_at: str
    run_id: str | None
    parents: list[str]
    artifacts: dict[str, ArtifactEntry]
    message: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    conflicts: list[str] = msgspec.field(default_factory=list)


class _Task(msgspec.Struct, array_like=True):
    head: str
    # The task's records, msgpack-encoded: decoded only for a task that a query's words occur
    # in (see find), so loading the index of 100k tasks builds 100k small objects, not millions.
    raw: msgspec.Raw

    def versions(self) -> list[VersionRecord]:
        return _records_decoder.decode(self.raw)

    def mentions(self, words: Sequence[bytes]) -> bool:
        """Do all of ``words`` occur in the encoded records? (False: no record can match.)"""
        data = bytes(self.raw)
        return all(w in data for w in words)


class _Spec(msgspec.Struct, array_like=True):
    # The spec's ref folder's stamp when its refs were read (None: no stamp; read them again).
    stamp: list[int] | None
    tasks: dict[str, _Task]


class _Plan(NamedTuple):
    """A spec to bring up to date: its ref folder's stamp, its refs, the tasks whose head
    moved (key, new head, what the index knew of the task)."""

    stamp: list[int] | None
    heads: Mapping[str, str]
    moved: list[tuple[str, str, _Task | None]]


class _File(msgspec.Struct):
    format: int
    specs: dict[str, _Spec]


# Tasks whose versions are read together (see VersionIndex._walk_many): enough for a pass over
# them to pay off, few enough to hold their manifests.
_CHUNK = 4096
# Tasks to read at which about half are read by a helper process (see _Helper). Starting it
# costs about 0.4 s of CPU (an interpreter, the imports, the pack indexes read again), about
# what reading 5,000 versions costs: below this many, the second core saves too little.
_HELP_AT = 20_000
# Tasks found (the helper's part of them) at which the helper is asked to read them while the
# refs of other specs are still read: a request per round of _CHUNK tasks.
_SEND_AT = _CHUNK

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_File)
_records_decoder = msgspec.msgpack.Decoder(list[VersionRecord])


def _task(head: str, records: list[VersionRecord]) -> _Task:
    return _Task(head, msgspec.Raw(_encoder.encode(records)))


class VersionIndex:
    """Per-spec, per-task version records, brought up to date from the refs on every query.

    A spec whose ref folder has the stamp recorded with it (see
    :meth:`gitstore.backend.refs.DiskRefs.stamp`) has had no ref added, moved or removed since
    its refs were read, so its tasks' heads are taken from the index; any other spec's refs are
    read, and only the tasks whose head moved are walked again.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._specs: dict[str, _Spec] = {}
        self._loaded = False
        self._lock = threading.Lock()
        self._helper = _Helper(store.path)
        self._path = (
            os.path.join(store.path, "gitstore", "index", "versions.msgpack")
            if store.path
            else None
        )

    def tasks(
        self, spec: str | None = None, lines: dict[str, list[bytes]] | None = None
    ) -> list[tuple[str, dict[str, _Task]]]:
        """``(SPEC, {TASK: its head and records})`` for every spec (or ``spec``), refreshed
        first.

        ``lines``, if given, receives the history lines (see :func:`_task_lines`) of tasks read
        in this refresh, by ``SPEC/TASK``: made while their versions are at hand (the helper
        makes those of the tasks it reads), they need not be decoded again to be written.
        """
        with self._lock:
            if not self._loaded:
                self._load()
            if spec is not None:
                specs = [spec] if _valid_spec(spec) else []
                changed = False
            else:
                specs = self._store.specs()
                gone = [s for s in self._specs if s not in set(specs)]
                for s in gone:
                    del self._specs[s]
                changed = bool(gone)
            # Every spec's refs first, then the versions of every task that moved, all together
            # (the more there are, the better they share out; see _walk_many).
            plans: list[tuple[str, _Plan | None]] = []
            moved: list[tuple[str, str, _Task | None]] = []
            sent: list[tuple[concurrent.futures.Future[_Answer], int]] = []
            try:
                for s in specs:
                    plan = self._plan(s)
                    plans.append((s, plan))
                    moved.extend(plan.moved if plan is not None else ())
                    # As many moved tasks in the specs still to read as in those read so far
                    # would make enough for the helper: start it now, so that it is ready
                    # when the refs are read (a helper never asked is stopped at once).
                    if len(moved) * len(specs) >= _HELP_AT * len(plans) and self._helps():
                        self._helper.start()
                        # The first tasks are the helper's (see _helper_part), and its part
                        # of those found so far surely are: it reads them while the refs of
                        # the other specs are read.
                        upto = sum(n for _, n in sent)
                        if _helper_part(len(moved)) - upto >= _SEND_AT:
                            asked = self._ask_helper(moved[upto : _helper_part(len(moved))], lines)
                            sent.extend([asked] if asked is not None else [])
                walked = self._walk_many(moved, lines, sent)
            finally:
                self._helper.close()
            done = dict(zip((key for key, _, _ in moved), walked, strict=True))
            for s, plan in plans:
                if plan is not None:
                    changed = self._apply(s, plan, done) or changed
            if changed:
                self._save()
            # Copies: forget() may drop tasks while a caller goes through them.
            return [(s, dict(self._specs[s].tasks)) for s in specs if s in self._specs]

    def records(self, spec: str | None = None) -> Iterator[VersionRecord]:
        """Every version of every task (of ``spec``), refreshed first."""
        for _, tasks in self.tasks(spec):
            for task in tasks.values():
                yield from task.versions()

    def _plan(self, spec: str) -> _Plan | None:
        """What bringing ``spec`` up to date takes (under lock): None if its stamp held, else
        its refs as read now and the tasks whose head moved."""
        # A served store's refs are read through its API, which has no stamps.
        served = isinstance(self._store, HttpStore)
        stamp = None if served else self._store.versions.refs.stamp(f"{REFS_PREFIX}{spec}/")
        known = self._specs.get(spec)
        if known is not None and stamp is not None and known.stamp == list(stamp):
            return None
        old = known.tasks if known is not None else {}
        heads = self._store.heads(spec)
        moved: list[tuple[str, str, _Task | None]] = []
        for key, head in heads.items():
            was = old.get(key.split("/", 1)[1])
            if not (was and was.head == head):
                moved.append((key, head, was))
        return _Plan(None if stamp is None else list(stamp), heads, moved)

    def _apply(self, spec: str, plan: _Plan, walked: Mapping[str, _Task]) -> bool:
        """Bring ``spec`` up to date by ``plan`` and the tasks ``walked`` by key (under lock);
        True if anything changed."""
        known = self._specs.get(spec)
        old = known.tasks if known is not None else {}
        tasks: dict[str, _Task] = {}
        for key in plan.heads:
            name = key.split("/", 1)[1]
            task = walked.get(key)
            tasks[name] = task if task is not None else old[name]
        fresh = _Spec(plan.stamp, tasks)
        if tasks:
            self._specs[spec] = fresh
        else:
            self._specs.pop(spec, None)
        if known is None:
            return bool(tasks)
        return (
            known.stamp != fresh.stamp
            or len(old) != len(tasks)
            or any(tasks.get(k) is not v for k, v in old.items())
        )

    def _walk_many(
        self,
        moved: Sequence[tuple[str, str, _Task | None]],
        lines: dict[str, list[bytes]] | None = None,
        sent: Sequence[tuple[concurrent.futures.Future[_Answer], int]] = (),
    ) -> list[_Task]:
        """Each task ``(key, head, known)`` of ``moved`` as it is now: the records of every
        version reachable from ``head``, reusing ``known`` ones by commit (and its history
        lines into ``lines``, if given, see :meth:`tasks`).

        Many tasks are split in two: a second process (see :class:`_Helper`) reads the first
        ones (see :func:`_helper_part`; ``sent``: the answers to come for those already asked
        for, and how many tasks each) while this one reads the rest. A task either could not
        read is read again here, alone and in order, so that an error is raised as it would be
        without the helper.
        """
        theirs = list(sent)
        upto = sum(n for _, n in sent)
        if (sent or len(moved) >= _HELP_AT) and _helper_part(len(moved)) > upto:
            asked = self._ask_helper(moved[upto : _helper_part(len(moved))], lines)
            theirs.extend([asked] if asked is not None else [])
        split = sum(n for _, n in theirs)
        if not theirs:
            out = []
            for (key, head, _), records in zip(moved, self._walk_records(moved), strict=True):
                if lines is not None:
                    lines[key] = _task_lines(records)
                out.append(_task(head, records))
            return out
        mine = self._walk_quick(moved[split:])
        if lines is not None:
            # While the helper still reads (and makes the lines of) its part.
            for (key, _, _), read in zip(moved[split:], mine, strict=True):
                if read is not None:
                    lines[key] = _task_lines(read)
        got: list[list[VersionRecord] | tuple[bytes, list[bytes] | None] | None] = []
        for answer, n in theirs:
            try:
                got.extend(answer.result())
            except Exception:  # the helper could not start, or died: its part is read here
                got.extend([None] * n)
        got.extend(mine)
        out = []
        for (key, head, was), found in zip(moved, got, strict=True):
            if found is None:
                out.append(self._walk(key, head, was))
            elif isinstance(found, tuple):
                out.append(_Task(head, msgspec.Raw(found[0])))
                if lines is not None and found[1] is not None:
                    lines[key] = found[1]
            else:
                out.append(_task(head, found))
        return out

    def _ask_helper(
        self,
        tasks: Sequence[tuple[str, str, _Task | None]],
        lines: dict[str, list[bytes]] | None,
    ) -> tuple[concurrent.futures.Future[_Answer], int] | None:
        """Ask the helper to read ``tasks`` (see :meth:`_walk_many`): its answer to come and
        how many tasks it covers, or None if there is no helper to ask."""
        if not self._helps():
            return None
        encoded = [(k, h, None if w is None else bytes(w.raw)) for k, h, w in tasks]
        answer = self._helper.walk(encoded, lines is not None)
        return None if answer is None else (answer, len(tasks))

    def _helps(self) -> bool:
        """May a helper process read for this index? (Not for a served store: its versions
        are read through its API.)"""
        return not isinstance(self._store, HttpStore)

    def _walk_quick(
        self, moved: Sequence[tuple[str, str, _Task | None]]
    ) -> list[list[VersionRecord] | None]:
        """:meth:`_walk_records` of each, None for a task whose reading raised."""
        out: list[list[VersionRecord] | None] = []
        while len(out) < len(moved):
            try:
                for records in self._walk_records(moved[len(out) :]):
                    out.append(records)
            except Exception:
                out.append(None)  # that task's error is raised when it is read alone
        return out

    def read_encoded(
        self, moved: Sequence[tuple[str, str, bytes | None]], lines: bool = False
    ) -> list[tuple[bytes, list[bytes] | None] | None]:
        """The records of each task ``(key, head, its known records msgpack-encoded)`` of
        ``moved``, msgpack-encoded, with its history lines if ``lines`` (see
        :func:`_task_lines`); None for a task whose reading raised. What the helper process
        (see :class:`_Helper`) answers; this index is left as it was."""
        tasks = [(k, h, None if w is None else _Task(h, msgspec.Raw(w))) for k, h, w in moved]
        return [
            None if r is None else (_encoder.encode(r), _task_lines(r) if lines else None)
            for r in self._walk_quick(tasks)
        ]

    def _walk(self, key: str, head: str, was: _Task | None) -> _Task:
        """The task ``key`` at ``head`` read alone (raising what is wrong with it)."""
        return _task(head, next(self._walk_records([(key, head, was)])))

    def _walk_records(
        self, moved: Sequence[tuple[str, str, _Task | None]]
    ) -> Iterator[list[VersionRecord]]:
        """The records of each ``(key, head, known)`` of ``moved``, in order.

        The versions of a few thousand tasks at a time are read first, all together, the quick
        way (:meth:`gitstore.versions.Versions.read_many`: one pass over their commits, one
        over their trees...), a round per step back in their histories; whatever did not read
        so is read again by :meth:`_read`, the careful way, which raises what is wrong.
        """
        served = isinstance(self._store, HttpStore)
        for at in range(0, len(moved), _CHUNK):
            chunk = moved[at : at + _CHUNK]
            reuse = [{r.commit: r for r in was.versions()} if was else {} for _, _, was in chunk]
            quick: dict[str, tuple[Manifest, tuple[str, ...]]] = {}
            if not served:
                known = set().union(*reuse)
                todo = list(dict.fromkeys(head for _, head, _ in chunk if head not in known))
                while todo:
                    step: dict[str, None] = {}
                    for commit, got in zip(todo, self._store.versions.read_many(todo), strict=True):
                        if got is not None:
                            quick[commit] = got
                            step.update(dict.fromkeys(got[1]))
                    todo = [c for c in step if c not in quick and c not in known]
            for (key, head, _), old in zip(chunk, reuse, strict=True):
                yield self._versions_of(key, head, old, quick)

    def _versions_of(
        self,
        key: str,
        head: str,
        reuse: Mapping[str, VersionRecord],
        quick: Mapping[str, tuple[Manifest, tuple[str, ...]]],
    ) -> list[VersionRecord]:
        """Records of every version reachable from ``head``, reusing those of ``reuse`` and
        reading the others from ``quick`` (see :meth:`_walk_many`) or else one by one."""
        found: dict[str, VersionRecord] = {}
        for commit in walk_commits([head], lambda c: found[c].parents):
            rec = reuse.get(commit)
            if rec is None:
                got = quick.get(commit)
                rec = self._read(key, commit) if got is None else _record(commit, key, *got)
            found[commit] = rec
        return list(found.values())

    def _read(self, key: str, commit: str) -> VersionRecord:
        """The record of version ``commit`` of task ``key``, read the careful way
        (VersionNotFoundError if the commit is a version of another task)."""
        if isinstance(self._store, HttpStore):
            v = self._store.show(f"{key}@{commit}")
            m = Manifest(
                spec=v.spec,
                task=v.task,
                version=v.version,
                created_at=v.created_at,
                run_id=v.run_id,
                message=v.message,
                metadata=dict(v.metadata),
                artifacts={a.name: _entry(a) for a in v.artifacts},
                conflicts=list(v.conflicts),
            )
            return _record(commit, key, m, v.parents)
        # The manifest and parents straight from the versions layer: Store.show would parse
        # the address and resolve the commit again first.
        versions = self._store.versions
        m = versions.manifest(commit)
        return _record(commit, key, m, versions.parents(commit))

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
            self._specs = data.specs

    def _save(self) -> None:
        if self._path is None:
            return
        with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
            # Specs outside a query's scope are kept as they were; they are checked when asked.
            blob = _encoder.encode(_File(INDEX_FORMAT, self._specs))
            with atomic_write(self._path, fsync=self._store.settings.fsync) as f:
                f.write(blob)

    def forget(self, gone: Sequence[str]) -> None:
        """Drop tasks whose refs are gone (the next query would notice anyway)."""
        with self._lock:
            for key in gone:
                spec, _, task = key.partition("/")
                known = self._specs.get(spec)
                if known is not None:
                    known.tasks.pop(task, None)
                    known.stamp = None


_indexes: weakref.WeakKeyDictionary[Store, VersionIndex] = weakref.WeakKeyDictionary()
_indexes_lock = threading.Lock()


class _Helper:
    """A second process that reads versions for a :class:`VersionIndex` of a disk store: the
    first build of the index over a big store reads hundreds of thousands of objects, and
    Python does it on one core; the machine most likely has two.

    Started for one refresh (every spec's tasks at once) as soon as its refs promise enough
    tasks to read, so that its start overlaps their reading, then ended. It is a plain
    ``python -c`` that imports this module (not multiprocessing, whose ``spawn`` runs the
    caller's main script again in the child, and whose ``fork`` could inherit a lock that
    another thread holds), opens the store by its path, and only reads. Requests and answers
    are msgpack, each after its length (8 bytes), over its stdin and stdout; a thread of this
    process waits for the answer.
    """

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._proc: subprocess.Popen[bytes] | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._asked = False

    def walk(
        self, moved: list[tuple[str, str, bytes | None]], lines: bool = False
    ) -> concurrent.futures.Future[list[tuple[bytes, list[bytes] | None] | None]] | None:
        """The records of each ``(key, head, known encoded)`` of ``moved``, encoded, with its
        history lines if ``lines``, as a future (None in place of a task whose reading raised);
        None if there is no helper to ask (a store in memory, one core, no process to be
        had)."""
        if not self.start():
            return None
        assert self._proc is not None and self._pool is not None
        self._asked = True
        request = _encoder.encode([self._path, moved, lines])
        return self._pool.submit(self._ask, self._proc, request)

    def start(self) -> bool:
        """Start the helper process if it is not running yet; False if there can be none (a
        store in memory, one core, no process to be had)."""
        if self._proc is not None:
            return True
        if self._path is None or not sys.executable or _cores() < 2:
            return False
        # The package's own folder first on the path: the child imports this very code.
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        argv = [sys.executable, "-c", "from gitstore.query import _helper_main; _helper_main()"]
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError:
            self._path = None  # no helper to be had: read here from now on
            return False
        self._pool = concurrent.futures.ThreadPoolExecutor(1)
        return True

    @staticmethod
    def _ask(
        proc: subprocess.Popen[bytes], request: bytes
    ) -> list[tuple[bytes, list[bytes] | None] | None]:
        assert proc.stdin is not None and proc.stdout is not None
        _send(proc.stdin, request)
        return msgspec.msgpack.decode(_receive(proc.stdout), type=_Answer)

    def close(self) -> None:
        """End the helper process, if one was started."""
        proc, self._proc = self._proc, None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        asked, self._asked = self._asked, False
        if proc is not None:
            assert proc.stdin is not None and proc.stdout is not None
            if not asked:
                proc.kill()  # started early, then not needed: it has nothing to finish
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the helper ends at the end of its input
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _helper_part(tasks: int) -> int:
    """How many of ``tasks`` to read the helper reads (the first ones).

    A little more than half: it reads as fast as this process does, but this process has more
    to do once both are done (the answer to take in, the index to save; for log --jsonl, the
    lines of its own part), and the helper often starts early (see VersionIndex.tasks).
    """
    return tasks * 11 // 20


def _cores() -> int:
    """The cores this process may run on (all of the machine's where that cannot be asked)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _send(out: IO[bytes], message: bytes) -> None:
    out.write(len(message).to_bytes(8, "big") + message)
    out.flush()


def _receive(src: IO[bytes]) -> bytes:
    """One message (EOFError at the end of the stream, or in a message cut short)."""
    size = src.read(8)
    if len(size) < 8:
        raise EOFError("the helper ended")
    message = src.read(int.from_bytes(size, "big"))
    if len(message) < int.from_bytes(size, "big"):
        raise EOFError("the helper ended in the middle of an answer")
    return message


# The path of the store, the tasks to read, whether to make their history lines too.
_Request = tuple[str, list[tuple[str, str, bytes | None]], bool]
_Answer = list[tuple[bytes, list[bytes] | None] | None]


def _helper_main() -> None:
    """The helper process (see :class:`_Helper`): answer requests until stdin ends."""
    stores: dict[str, Store] = {}
    src, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            path, moved, lines = msgspec.msgpack.decode(_receive(src), type=_Request)
        except EOFError:
            break
        store = stores.get(path)
        if store is None:
            store = stores[path] = Store.open(path)
        _send(out, _encoder.encode(VersionIndex(store).read_encoded(moved, lines)))
    for store in stores.values():
        store.close()


def _index(store: Store) -> VersionIndex:
    with _indexes_lock:
        idx = _indexes.get(store)
        if idx is None:
            idx = _indexes[store] = VersionIndex(store)
        return idx


def _record(commit: str, key: str, m: Manifest, parents: Sequence[str]) -> VersionRecord:
    """The record of version ``commit`` of task ``key``, from its manifest and parents
    (VersionNotFoundError if the manifest says it is a version of another task)."""
    if f"{m.spec}/{m.task}" != key:
        raise VersionNotFoundError(f"{key} has no version {commit}")
    return VersionRecord(
        m.spec,
        m.task,
        commit,
        m.version,
        m.created_at,
        m.run_id,
        list(parents),
        dict(m.artifacts),
        m.message,
        dict(m.metadata),
        list(m.conflicts),
    )


def _entry(a: ArtifactInfo) -> ArtifactEntry:
    """The manifest entry a served store's artifact was read from."""
    return ArtifactEntry(
        oid=a.oid,
        size=a.size,
        sha256=a.sha256,
        content_type=a.content_type,
        created_at=a.created_at,
        executable=a.executable,
        tags=dict(a.tags),
        masked_secrets=a.masked_secrets,
        truncated=msgspec.convert(a.truncated, Truncation) if a.truncated else None,
    )


def _scope(pattern: str | None) -> tuple[str | None, str | None]:
    """The one spec ``pattern`` (fnmatch over ``SPEC/TASK``) keeps to, if it names one, and the
    pattern left to match (None: every task of that scope)."""
    if pattern and "/" in pattern:
        first = pattern.split("/", 1)[0]
        if not any(c in first for c in "*?["):
            return first, pattern  # read one spec's refs only
    elif pattern and not any(c in pattern for c in "*?["):
        return pattern, None
    return None, pattern


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
    spec, pattern = _scope(pattern)
    # Words every matching task's encoded records hold: tasks without them are not decoded.
    words = [w.encode() for w in (run, *want, *want.values()) if w is not None]
    if content_type is not None:
        words.append(content_type.removesuffix("*").encode())
    for s, tasks in _index(store).tasks(spec):
        for name, task in tasks.items():
            if pattern is not None and not fnmatch.fnmatchcase(f"{s}/{name}", pattern):
                continue
            if words and not task.mentions(words):
                continue
            for rec in task.versions():
                if _matches(rec, run, lo, hi, want, content_type):
                    hits.append(rec)
    hits.sort(key=lambda r: (r.created_at, r.version, r.commit), reverse=True)
    if limit is not None:
        hits = hits[:limit]
    if not artifacts:
        return [_bare(r) for r in hits]
    return [store.show(f"{r.spec}/{r.task}@{r.commit}") for r in hits]


def _matches(
    rec: VersionRecord,
    run: str | None,
    lo: float | None,
    hi: float | None,
    want: Mapping[str, str],
    content_type: str | None,
) -> bool:
    """Does version ``rec`` meet every condition of :func:`find`?"""
    if run is not None and rec.run_id != run:
        return False
    if lo is not None or hi is not None:
        when = parse_iso(rec.created_at).timestamp()
        if (lo is not None and when < lo) or (hi is not None and when >= hi):
            return False
    return not (want or content_type) or any(
        _type_matches(a.content_type, content_type)
        and all(a.tags.get(k) == v for k, v in want.items())
        for a in rec.artifacts.values()
    )


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
    deleted: list[str] = []
    kept: dict[str, str] = {}
    every = [(f"{s}/{name}", t) for s, tasks in _index(store).tasks() for name, t in tasks.items()]
    for key, task in sorted(every, key=lambda kt: kt[0]):
        recs = task.versions()
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
                store.rm_task(key, expect=task.head)
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
    if not _indexed(store, scope):
        yield from _shown(store, scope)
        return
    for _, task in _history_tasks(store, scope):
        yield from (_record_dict(r) for r in _newest_first(task.versions()))


def _indexed(store: Store, scope: str | None) -> bool:
    """Is the history of ``scope`` written from the index? (Not a task's, nor a served
    store's: see :func:`_shown`.)"""
    if scope is not None and _names.parse_address(scope).task is not None:
        return False
    return not isinstance(store, HttpStore)


def _shown(store: Store, scope: str | None) -> Iterator[dict[str, Any]]:
    """:func:`iter_history` of a task, or of a served store, as the store shows it."""
    if scope is not None and _names.parse_address(scope).task is not None:
        # SPEC/TASK[@REV]: its history (from that version back).
        yield from (v.to_dict() for v in store.log(scope))
        return
    # A served store answers through its API, a task at a time.
    for key in store.heads_in(scope):
        yield from (v.to_dict() for v in store.log(key))


def _history_tasks(
    store: Store, scope: str | None, lines: dict[str, list[bytes]] | None = None
) -> list[tuple[str, _Task]]:
    """``(SPEC/TASK, task)`` of every task of the spec ``scope`` (or of the store), in the
    order of :func:`iter_history`; ``lines`` as in :meth:`VersionIndex.tasks`."""
    spec = None if scope is None else _names.check_component(scope, "spec")
    # From the index, brought up to date first (refs read only where they may have moved, only
    # tasks whose head moved read again): each version's record is in it, exact for as long as
    # its commit exists, so writing the history reads no version that was read before.
    specs = _index(store).tasks(spec, lines)
    if spec is not None and not specs:
        raise NotFoundError(f"no spec {spec!r} (no task has a version)")  # as Store.heads_in
    return [(f"{s}/{name}", tasks[name]) for s, tasks in specs for name in sorted(tasks)]


def _newest_first(records: list[VersionRecord]) -> list[VersionRecord]:
    """Store.log's order: by version number, then creation time, then commit id."""
    return sorted(records, key=lambda r: (r.version, r.created_at, r.commit), reverse=True)


def _task_lines(records: list[VersionRecord]) -> list[bytes]:
    """The lines :func:`write_jsonl` writes for a task whose versions ``records`` are."""
    return [_jsonl.encode(_line(r)) for r in _newest_first(records)]


def _record_dict(r: VersionRecord) -> dict[str, Any]:
    """``Store.show(...).to_dict()`` of the version ``r`` records, made from the record (a test
    holds the two equal)."""
    out: dict[str, Any] = {
        "spec": r.spec,
        "task": r.task,
        "version": r.version,
        "commit": r.commit,
        "parents": r.parents,
        "created_at": r.created_at,
        "run_id": r.run_id,
        "message": r.message,
        "metadata": r.metadata,
    }
    if r.conflicts:
        out["conflicts"] = r.conflicts
    out["artifacts"] = [
        {
            "name": name,
            "oid": e.oid,
            "sha256": e.sha256,
            "size": e.size,
            "content_type": e.content_type,
            "uri": artifact_uri(r.spec, r.task, r.commit, name),
            "created_at": e.created_at,
            "executable": e.executable,
            "tags": e.tags,
            "masked_secrets": e.masked_secrets,
            "truncated": msgspec.to_builtins(e.truncated) if e.truncated else None,
        }
        for name, e in sorted(r.artifacts.items())
    ]
    return out


class _ArtifactLine(msgspec.Struct, kw_only=True):
    """An artifact as :func:`_record_dict` writes it (the encoder sorts the keys)."""

    name: str
    oid: str
    sha256: str
    size: int
    content_type: str
    uri: str
    created_at: str
    executable: bool
    tags: dict[str, str]
    masked_secrets: int
    truncated: Truncation | None


class _Line(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A version as :func:`_record_dict` writes it: the same keys and values, encoded straight
    from the struct, with no dict made per version (a test holds the two the same)."""

    spec: str
    task: str
    version: int
    commit: str
    parents: list[str]
    created_at: str
    run_id: str | None
    message: str | None
    metadata: dict[str, Any]
    # The only field left out when it has its default: _record_dict writes no empty conflicts.
    conflicts: list[str] = msgspec.field(default_factory=list)
    artifacts: list[_ArtifactLine]


def _line(r: VersionRecord) -> _Line:
    return _Line(
        spec=r.spec,
        task=r.task,
        version=r.version,
        commit=r.commit,
        parents=r.parents,
        created_at=r.created_at,
        run_id=r.run_id,
        message=r.message,
        metadata=r.metadata,
        conflicts=r.conflicts,
        artifacts=[
            _ArtifactLine(
                name=name,
                oid=e.oid,
                sha256=e.sha256,
                size=e.size,
                content_type=e.content_type,
                uri=artifact_uri(r.spec, r.task, r.commit, name),
                created_at=e.created_at,
                executable=e.executable,
                tags=e.tags,
                masked_secrets=e.masked_secrets,
                truncated=e.truncated,
            )
            for name, e in sorted(r.artifacts.items())
        ],
    )


# Sorted keys (a struct's fields too) and no spaces, as the CLI's --json; msgspec writes it ~6x
# faster than json.dumps (non-ASCII as UTF-8 rather than \u escapes, floats in their shortest
# form: the same values).
_jsonl = msgspec.json.Encoder(order="sorted")


def write_jsonl(
    store: Store, out: IO[str], scope: str | None = None, *, limit: int | None = None
) -> int:
    """Write :func:`iter_history` to ``out`` as JSON Lines (at most ``limit`` lines); return how
    many lines were written."""
    lines: Iterator[bytes]
    if _indexed(store, scope):
        made: dict[str, list[bytes]] = {}
        tasks = _history_tasks(store, scope, made)
        # The lines of tasks read just now were made as they were read; the others' are made
        # from their records (the same lines: a test holds them so).
        lines = (
            line
            for key, task in tasks
            for line in (made.pop(key, None) or _task_lines(task.versions()))
        )
    else:
        lines = (_jsonl.encode(record) for record in _shown(store, scope))
    n = 0
    batch: list[bytes] = []
    try:
        for line in lines:
            if limit is not None and n >= limit:
                break
            batch.append(line)
            n += 1
            if len(batch) >= 256:  # a write per line cost as much as encoding the line
                out.write(b"\n".join(batch).decode() + "\n")
                batch.clear()
    finally:  # what was read before a failure is written, as line by line would have
        if batch:
            out.write(b"\n".join(batch).decode() + "\n")
    return n
