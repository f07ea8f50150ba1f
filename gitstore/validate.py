"""Checking versions that arrive from elsewhere before any ref may point at them.

Anything that did not come through this process's own ``put`` (a fetched pack, a bundle, a push
the server receives) is treated as written by an attacker. :func:`check_incoming` walks every
commit a new task head brings in, down to the commits the local task already holds, and refuses
the whole head unless each of them is a gitstore version of that task:

* the commit parses, has at most two parents, and its version number is above its parents'
  (at least 1), so ``@vN`` keeps meaning what the numbers say. A gap is allowed: a chain that
  retention rewrote keeps its versions' numbers while some between them are gone;
* its tree holds ``.gitstore/manifest.json`` (a plain file, alone in ``.gitstore/``), and the
  manifest decodes within :data:`MAX_MANIFEST_BYTES` and :data:`MAX_DEPTH` levels of nesting,
  names this spec and task, and carries well-formed ids, digests, sizes and timestamps;
* every artifact name passes the same rules as ``put`` (:func:`gitstore.names.check_artifact_name`:
  no ``..``, no ``.git``, no control characters, at most 1024 bytes ...), and no name is both a
  file and a folder;
* the tree holds exactly the manifest's artifacts at their names, each as a plain file (mode
  100644, or 100755 when the manifest says executable) with the manifest's blob id, every blob
  present: no extra entry, no symlink, no submodule, no missing file.

The walk is iterative and bounded (a name of 1024 bytes has at most 512 levels), so no tree or
manifest, however deep, can exhaust the stack. A refusal is a
:class:`~gitstore.errors.RejectedVersionError` naming the task, the commit and what is wrong (with
control characters escaped); objects the transfer should have carried but did not are a
:class:`~gitstore.errors.CorruptTransferError`. Either way no ref has moved.
"""

from __future__ import annotations

import contextlib
import heapq
import re
from collections.abc import Callable, Iterator, Mapping

import msgspec

from gitstore.backend.objects import ObjectBackend
from gitstore.backend.trees import (
    MODE_EXEC,
    MODE_FILE,
    MODE_GITLINK,
    MODE_LINK,
    MODE_TREE,
    CommitInfo,
    KindError,
    read_commit,
    read_tree,
)
from gitstore.errors import (
    CorruptTransferError,
    IntegrityError,
    InvalidNameError,
    NotAStoreError,
    RejectedVersionError,
)
from gitstore.meta import (
    MANIFEST_DIR,
    MANIFEST_FILE,
    REMOVAL_KINDS,
    ArtifactEntry,
    Manifest,
    Removal,
    decode_manifest,
    parse_iso,
    parse_trailers,
)
from gitstore.names import check_artifact_name, check_layout

__all__ = [
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "check_incoming",
    "escape",
    "version_problem",
]

# A manifest lists one entry (~300 bytes) per artifact: 64 MiB is ~200k artifacts in one version,
# far past any real run, and small enough that decoding a hostile one cannot exhaust memory.
MAX_MANIFEST_BYTES = 64 << 20
# Metadata is JSON of the caller's; nesting beyond this is an attack on every reader's stack.
MAX_DEPTH = 64
# A removal's reason is a rule or a sentence, not a document.
MAX_WHY = 1024
# gitstore writes one parent, or two for a merge.
MAX_PARENTS = 2

_KINDS = {MODE_LINK: "a symbolic link", MODE_GITLINK: "a submodule"}
_HEX40 = re.compile(r"[0-9a-f]{40}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\n``, ``\\x1b``), for one line."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


class _Refused(Exception):
    """One thing wrong with one commit (turned into RejectedVersionError with its context)."""


class _NotAVersion(_Refused):
    """The commit carries no gitstore version at all (a plain commit of some other repository)."""


class _Missing(Exception):
    """An object the transfer should have carried is not in the store."""


def check_incoming(
    objects: ObjectBackend,
    spec: str,
    task: str,
    head: str,
    *,
    local_head: str | None,
    known_number: Callable[[str], int],
) -> None:
    """Refuse ``head`` unless every commit it brings into ``spec/task`` is a valid version.

    Args:
      objects: the store's objects, where the transfer has already put what it received.
      spec, task: the task the head was offered for.
      head: the commit the task's ref would move to.
      local_head: the task's current head here (None for a new task); its history is trusted
        and not checked again.
      known_number: the version number of a commit of the local history (it is trusted).

    Raises:
      NotAStoreError: ``head`` itself is no gitstore version at all (the remote is not a store).
      RejectedVersionError: a commit breaks a rule above (named, with the task and commit).
      CorruptTransferError: an object the new history needs is missing or unreadable.
    """
    where = f"refs/artifacts/{spec}/{task}"
    trusted = _LocalHistory(objects, local_head, known_number)
    numbers: dict[str, int] = {}
    parents_of: dict[str, list[str]] = {}
    todo = [head]
    while todo:
        commit = todo.pop()
        if commit in numbers:
            continue
        try:
            # The number a commit claims says how deep the local history must be uncovered to
            # tell whether it is already here; a false claim is refused below.
            claimed = _claimed_number(objects, commit)
            trusted.reach_down_to(claimed)
            if trusted.holds(commit):
                continue
            parents, number = _check_commit(objects, spec, task, commit)
            if number != claimed:
                raise _Refused(f"its message says version {claimed}, its manifest {number}")
        except _NotAVersion as e:
            if commit == head:
                # The remote's task ref holds something else entirely: not a store of ours.
                raise NotAStoreError(
                    f"{where}: commit {commit} is not a gitstore version ({escape(str(e))})"
                ) from None
            raise RejectedVersionError(
                f"{where}: commit {commit} is refused: {escape(str(e))}; no ref moved"
            ) from None
        except _Refused as e:
            raise RejectedVersionError(
                f"{where}: commit {commit} is refused: {escape(str(e))}; no ref moved"
            ) from None
        except _Missing as e:
            raise CorruptTransferError(
                f"{where}: the history of {head[:12]} is incomplete ({escape(str(e))}); "
                "no ref moved"
            ) from None
        numbers[commit] = number
        parents_of[commit] = parents
        todo.extend(parents)
    # Numbers last: a parent's is known once the walk has seen it (or the local history has it).
    for commit, parents in parents_of.items():
        expected = 1 + max((numbers.get(p) or trusted.number(p) for p in parents), default=0)
        if numbers[commit] < expected:
            raise RejectedVersionError(
                f"{where}: commit {commit} is refused: it says version {numbers[commit]}, but "
                f"its parents make it at least version {expected}; no ref moved"
            )


def version_problem(
    objects: ObjectBackend, spec: str, task: str, commit: str, *, blobs: bool = True
) -> str | None:
    """What makes ``commit`` not a valid version of ``spec/task`` by the rules above, or None.

    The same rules as :func:`check_incoming` for one commit already in the store (``verify``
    uses it: a store written by another tool is not trusted either). The number rule is checked
    against the numbers the parents claim. ``blobs=False`` leaves out whether each artifact's
    blob is present (for a caller that reads every blob anyway and reports it by name).
    """
    try:
        claimed = _claimed_number(objects, commit)
        parents, number = _check_commit(objects, spec, task, commit, blobs=blobs)
        if number != claimed:
            raise _Refused(f"its message says version {claimed}, its manifest {number}")
        expected = 1 + max((_claimed_number(objects, p) for p in parents), default=0)
        if number < expected:
            raise _Refused(
                f"it says version {number}, but its parents make it at least version {expected}"
            )
    except (_Refused, _Missing) as e:
        return escape(str(e))
    return None


class _LocalHistory:
    """The commits of the local task, uncovered newest first only as deep as a check needs.

    Version numbers grow along every parent edge, so a commit numbered N can only be found among
    local commits numbered N or more: the walk stops there instead of reading the whole history.
    """

    def __init__(
        self, objects: ObjectBackend, head: str | None, number: Callable[[str], int]
    ) -> None:
        self._objects = objects
        self._number = number
        self.seen: dict[str, int] = {}
        self._frontier: list[tuple[int, str]] = []
        if head is not None:
            heapq.heappush(self._frontier, (-number(head), head))

    def holds(self, commit: str) -> bool:
        return commit in self.seen

    def number(self, commit: str) -> int:
        return self.seen.get(commit) or self._number(commit)

    def reach_down_to(self, floor: int) -> None:
        """Uncover every local commit numbered ``floor`` or more."""
        while self._frontier and -self._frontier[0][0] >= floor:
            neg, commit = heapq.heappop(self._frontier)
            if commit in self.seen:
                continue
            self.seen[commit] = -neg
            # The local history: written or checked here, so it reads as commits.
            for p in read_commit(self._objects, commit).parents:
                if p not in self.seen:
                    heapq.heappush(self._frontier, (-self._number(p), p))


def _claimed_number(objects: ObjectBackend, commit: str) -> int:
    obj = _commit(objects, commit)
    value = parse_trailers(obj.message).get("Version", "")
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise _NotAVersion("it is not a gitstore version (no Gitstore-Version trailer)")
    return int(value)


def _check_commit(
    objects: ObjectBackend, spec: str, task: str, commit: str, *, blobs: bool = True
) -> tuple[list[str], int]:
    """The parents and version number of ``commit`` once it passes every rule."""
    obj = _commit(objects, commit)
    parents = list(obj.parents)
    if len(parents) > MAX_PARENTS:
        raise _Refused(f"it has {len(parents)} parents (a version has at most {MAX_PARENTS})")
    entries = _entries(objects, obj.tree, "its tree", "")
    meta = entries.pop(MANIFEST_DIR.encode(), None)
    if meta is None or meta[0] != MODE_TREE:
        raise _NotAVersion("it is not a gitstore version (no .gitstore/manifest.json)")
    manifest = _manifest(objects, meta[1])
    if (manifest.spec, manifest.task) != (spec, task):
        raise _Refused(f"it is a version of {manifest.spec}/{manifest.task}, not of {spec}/{task}")
    _check_manifest(manifest)
    _check_tree(objects, entries, manifest, blobs=blobs)
    return parents, manifest.version


@contextlib.contextmanager
def _reading(what: str, oid: str) -> Iterator[None]:
    """Turn a failure to read object ``oid`` into the refusal (or the missing object) it means."""
    try:
        yield
    except IntegrityError as e:
        if "missing" in str(e):
            raise _Missing(f"{what} {oid} is missing") from None
        raise _Refused(f"{what} {oid} cannot be read ({e})") from None
    except (ValueError, AssertionError) as e:
        raise _Refused(f"{what} {oid} is malformed ({e})") from None


def _commit(objects: ObjectBackend, oid: str) -> CommitInfo:
    with _reading("commit", oid):
        try:
            return read_commit(objects, oid)
        except KindError as e:
            raise _Refused(f"it is a {e.kind}, not a commit") from None


def _entries(
    objects: ObjectBackend, oid: str, what: str, prefix: str
) -> dict[bytes, tuple[int, str]]:
    """name -> (mode, id) of tree ``oid``, refusing duplicate and malformed entry names."""
    with _reading(what, oid):
        try:
            raw = read_tree(objects, oid, strict=True)
        except KindError as e:
            raise _Refused(f"{what} {oid} is a {e.kind}, not a tree") from None
        except ValueError as e:
            raise _Refused(f"tree {prefix or '/'} is malformed ({e})") from None
    out: dict[bytes, tuple[int, str]] = {}
    for name, mode, sha in raw:
        shown = prefix + name.decode("utf-8", "replace")
        if name in out:
            raise _Refused(f"tree entry {shown!r} appears twice")
        if not name or b"/" in name:
            raise _Refused(f"tree entry {shown!r} is not a single path component")
        out[name] = (mode, sha)
    return out


def _manifest(objects: ObjectBackend, meta_tree: str) -> Manifest:
    entries = _entries(objects, meta_tree, ".gitstore/", ".gitstore/")
    found = entries.pop(MANIFEST_FILE.encode(), None)
    if found is None:
        raise _NotAVersion("it is not a gitstore version (no .gitstore/manifest.json)")
    if entries:
        extra = sorted(n.decode("utf-8", "replace") for n in entries)
        raise _Refused(f".gitstore/ holds more than the manifest ({extra[0]!r})")
    mode, oid = found
    if mode != MODE_FILE:
        raise _Refused(f".gitstore/manifest.json has mode {mode:o}, not a plain file")
    try:
        with objects.open_blob(oid) as f:
            if f.size > MAX_MANIFEST_BYTES:
                raise _Refused(
                    f"its manifest is {f.size} bytes (at most {MAX_MANIFEST_BYTES} are accepted)"
                )
            data = f.read()
    except IntegrityError as e:
        if "missing" in str(e):
            raise _Missing(f"manifest blob {oid} is missing") from None
        raise _Refused(f"manifest blob {oid} cannot be read ({e})") from None
    try:
        manifest = decode_manifest(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise _Refused(f"its manifest is damaged ({e})") from None
    return manifest


def _check_manifest(m: Manifest) -> None:
    if m.version < 1:
        raise _Refused(f"its manifest says version {m.version}")
    _check_time(m.created_at, "created_at")
    _check_depth(m.metadata, "metadata")
    try:
        for name in [*m.artifacts, *m.conflicts]:
            check_artifact_name(name)
        check_layout(m.artifacts)
    except InvalidNameError as e:
        raise _Refused(str(e)) from None
    for name, entry in m.artifacts.items():
        _check_entry(name, entry)
    for name, removal in m.removals().items():
        _check_removal(name, removal, m)


def _check_removal(name: str, r: Removal, m: Manifest) -> None:
    """A removal record (retention, purge) is well-formed and names what the version lacks."""
    try:
        check_artifact_name(name)
    except InvalidNameError as e:
        raise _Refused(f"removed artifact: {e}") from None
    if r.kind not in REMOVAL_KINDS:
        raise _Refused(f"removed artifact {name!r} has an unknown kind {r.kind[:20]!r}")
    if not _HEX64.match(r.sha256):
        raise _Refused(f"removed artifact {name!r} has a malformed sha256 {r.sha256[:70]!r}")
    if r.size < 0:
        raise _Refused(f"removed artifact {name!r} has a negative size")
    if len(r.why) > MAX_WHY:
        raise _Refused(f"removed artifact {name!r} has a reason over {MAX_WHY} characters")
    if r.kind == "expired" and name in m.artifacts:
        raise _Refused(f"artifact {name!r} is both held and recorded as expired")
    _check_time(r.at, f"removal time of {name!r}")


def _check_entry(name: str, e: ArtifactEntry) -> None:
    if not _HEX40.match(e.oid):
        raise _Refused(f"artifact {name!r} has a malformed blob id {e.oid[:50]!r}")
    if not _HEX64.match(e.sha256):
        raise _Refused(f"artifact {name!r} has a malformed sha256 {e.sha256[:70]!r}")
    if e.size < 0 or e.masked_secrets < 0:
        raise _Refused(f"artifact {name!r} has a negative size or count")
    _check_time(e.created_at, f"created_at of {name!r}")


def _check_time(text: str, what: str) -> None:
    try:
        parse_iso(text)
    except (ValueError, OverflowError):
        raise _Refused(f"its {what} {text[:40]!r} is not a timestamp") from None


def _check_depth(value: object, what: str) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH (iteratively: the check itself cannot recurse)."""
    todo: list[tuple[object, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise _Refused(f"its {what} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, Mapping):
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)


def _check_tree(
    objects: ObjectBackend,
    root: dict[bytes, tuple[int, str]],
    m: Manifest,
    *,
    blobs: bool,
) -> None:
    """The tree holds exactly the manifest's artifacts, as plain files with its blob ids."""
    folders = {"/".join(n.split("/")[:i]) for n in m.artifacts for i in range(1, n.count("/") + 1)}
    left = set(m.artifacts)
    todo: list[tuple[str, dict[bytes, tuple[int, str]]]] = [("", root)]
    while todo:
        prefix, entries = todo.pop()
        for raw, (mode, oid) in entries.items():
            try:
                name = prefix + raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _Refused(f"tree entry {prefix}{raw!r} is not UTF-8") from None
            if mode == MODE_TREE:
                if name not in folders:
                    raise _Refused(
                        f"its tree holds {name + '/'!r}, which the manifest does not list"
                    )
                todo.append((name + "/", _entries(objects, oid, f"tree {name}/", name + "/")))
                continue
            entry = m.artifacts.get(name)
            if entry is None:
                raise _Refused(f"its tree holds {name!r}, which the manifest does not list")
            if mode not in (MODE_FILE, MODE_EXEC):
                kind = _KINDS.get(mode, "not a file")
                raise _Refused(f"tree entry {name!r} is {kind} (mode {mode:o})")
            if (mode == MODE_EXEC) != entry.executable:
                raise _Refused(f"tree entry {name!r} has mode {mode:o}, the manifest disagrees")
            if oid != entry.oid:
                raise _Refused(f"tree entry {name!r} is blob {oid}, the manifest says {entry.oid}")
            if blobs and not objects.has(oid):
                raise _Missing(f"blob {oid} of {name!r} is missing")
            left.discard(name)
    if left:
        raise _Refused(f"its manifest lists {sorted(left)[0]!r}, which its tree lacks")
