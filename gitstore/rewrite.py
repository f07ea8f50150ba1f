"""Rewriting a task's chain: versions dropped, artifacts expired or replaced by tombstones.

Retention and purge change history; this module is how. A plan says, per version (commit id),
what becomes of it (:class:`Edit`): dropped, or kept with some artifacts removed (``expired``) or
their bytes replaced by a tombstone (``purged``). :func:`rewrite_chain` rewrites the chain from
the first changed version on:

* a kept version keeps its number, artifacts (but those removed), metadata, message, author,
  committer and dates; only its parents change (and its tree, where artifacts went). What was
  removed is recorded in its manifest (:class:`gitstore.meta.Removal`), so a reader sees "log.log
  expired on ..." instead of a missing file;
* a dropped version's children take its parents (merges keep their shape among kept versions:
  a parent that is an ancestor of the other parent is left out, as it adds nothing);
* the ref moves by compare-and-swap from the head the plan was made on (``expect``). A version put
  on top of it meanwhile is rebuilt on the new chain (nothing acknowledged is lost); a head that
  no longer descends from ``expect`` (another rewrite won) refuses the plan with ConflictError;
* every replaced commit is recorded in ``refs/gitstore/rewrites`` (:mod:`gitstore.records`), old
  id -> new id or "dropped", so that URIs of kept versions keep resolving and those of dropped
  ones are refused as gone.

Rewritten commits are a pure function of the old ones and the plan, so two stores applying the
same records to the same chain write the same commits and converge.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence

from gitstore.backend.chains import blob_id, copy_commit, edit_tree
from gitstore.backend.trees import MODE_FILE, read_commit
from gitstore.errors import ConflictError, TaskNotFoundError, UsageError
from gitstore.meta import (
    MANIFEST_DIR,
    MANIFEST_FILE,
    ArtifactEntry,
    Manifest,
    Removal,
    encode_manifest,
    now_iso,
)
from gitstore.names import task_ref
from gitstore.records import RewriteRecord
from gitstore.versions import Versions, is_ancestor, walk_commits

__all__ = [
    "TOMBSTONE_TYPE",
    "Edit",
    "Rewritten",
    "Tombstone",
    "record_rewrites",
    "rewrite_chain",
    "rewrite_chains",
    "rebuild",
    "translate",
]

# The content type of a tombstone: a short text saying what was there.
TOMBSTONE_TYPE = "text/plain; charset=utf-8"


@dataclasses.dataclass(frozen=True)
class Tombstone:
    """Bytes that replace an artifact's (``data``), and why (recorded as a ``purged`` removal)."""

    data: bytes
    why: str


@dataclasses.dataclass(frozen=True)
class Edit:
    """What becomes of one version.

    Attributes:
      drop: the version goes (its children take its parents); the latest version cannot.
      why: why it is dropped (the rule), recorded in the rewrite map.
      expire: artifact name -> why: removed from the version's tree (kind ``expired``).
      replace: artifact name -> tombstone: the bytes replaced (kind ``purged``).
    """

    drop: bool = False
    why: str = ""
    expire: Mapping[str, str] = dataclasses.field(default_factory=dict)
    replace: Mapping[str, Tombstone] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Rewritten:
    """What :func:`rewrite_chain` did to one task.

    ``mapping`` is old commit -> new commit (None: dropped) for every version it replaced;
    ``head`` the task's head before and ``new_head`` after (equal when nothing changed).
    """

    spec: str
    task: str
    head: str
    new_head: str
    mapping: dict[str, str | None] = dataclasses.field(default_factory=dict)
    numbers: dict[str, int] = dataclasses.field(default_factory=dict)
    why: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def dropped(self) -> list[str]:
        """The commits dropped."""
        return [old for old, new in self.mapping.items() if new is None]


def rewrite_chain(
    versions: Versions,
    spec: str,
    task: str,
    *,
    expect: str,
    plan: Mapping[str, Edit],
    by: str,
    at: str | None = None,
    record: bool = True,
) -> Rewritten:
    """Apply ``plan`` (commit id -> :class:`Edit`; versions not named are kept as they are) to
    the chain of ``spec/task``, planned from head ``expect``; see the module docstring.

    ``by`` names the verb (``retention``, ``purge``) in the records; ``at`` is when (default
    now). With ``record`` (the default) the replaced commits go into ``refs/gitstore/rewrites``
    at once; :func:`rewrite_chains` records many tasks' in one commit instead.

    Raises:
      TaskNotFoundError: the task has no ref.
      ConflictError: the head no longer descends from ``expect`` (another rewrite, or a pull
        that merged, won the race; plan again), or writers kept winning the swap.
      UsageError: the plan drops the latest version, or drops a merge whose sides would need
        more than two parents.
    """
    when = at or now_iso()
    ref = task_ref(spec, task)

    def attempt() -> Rewritten | None:
        head = versions.refs.get(ref)
        if head is None:
            raise TaskNotFoundError(f"no task {spec}/{task}")
        if head != expect and not is_ancestor(versions, expect, head, present=True):
            raise ConflictError(
                f"{spec}/{task}: the head moved to {head[:12]}, which does not build on "
                f"{expect[:12]} the plan was made on; plan again"
            )
        done = _rebuild(versions, spec, task, head, plan, when)
        if done.new_head == head:
            return done
        if not versions.refs.cas(ref, head, done.new_head):
            return None
        return done

    done = versions.retry(ref, attempt, doing="to rewrite its chain")
    # Aliases follow their versions to the new commits (and stop holding the old ones).
    versions.follow_aliases(spec, task, done.mapping)
    if record:
        record_rewrites(versions, [done], by=by, at=when)
    return done


def rewrite_chains(
    versions: Versions,
    jobs: Iterable[tuple[str, str, str, Mapping[str, Edit]]],
    *,
    by: str,
    at: str | None = None,
) -> list[Rewritten]:
    """:func:`rewrite_chain` for many ``(spec, task, expect, plan)``, recorded in one commit.

    Tasks are rewritten one after the other; an error stops the run after recording what was
    done before it (the records of tasks already rewritten are never lost).
    """
    when = at or now_iso()
    done: list[Rewritten] = []
    try:
        for spec, task, expect, plan in jobs:
            done.append(
                rewrite_chain(
                    versions,
                    spec,
                    task,
                    expect=expect,
                    plan=plan,
                    by=by,
                    at=when,
                    record=False,
                )
            )
    finally:
        record_rewrites(versions, done, by=by, at=when)
    return done


def rebuild(
    versions: Versions, spec: str, task: str, head: str, plan: Mapping[str, Edit], *, at: str
) -> Rewritten:
    """The chain of ``head`` with ``plan`` applied, written but moved into no ref (for heads
    fetched from elsewhere, which integrate then brings in like any other)."""
    return _rebuild(versions, spec, task, head, plan, at)


def translate(versions: Versions, spec: str, task: str, head: str) -> Rewritten:
    """The chain of ``head`` as this store's rewrite records say it now is (no ref moves).

    A commit the records say was dropped goes; one they say was rewritten is replaced by its
    new commit (when this store has it); every version on top is rebuilt on them. This is how
    a chain from a store that has not seen a rewrite (or one of ours, from before the records
    arrived) joins the rewritten one, and versions added to the old chain are kept.
    ``mapping`` holds only the commits rebuilt here (those the records name are recorded).
    """
    plan: dict[str, Edit] = {}
    substitute: dict[str, str] = {}
    if versions.rewrites.head() is None:
        return Rewritten(spec, task, head, head)
    # The history of a substituted commit is the rewritten chain's: not walked.
    parents_of = lambda c: [] if c in substitute else versions.parents(c)  # noqa: E731
    for commit in walk_commits([head], parents_of):
        found = versions.follow(spec, task, commit)
        if found is None:
            continue
        target, record = found
        if target is None:
            plan[commit] = Edit(drop=True, why=record.why)
        elif versions.has(target):
            substitute[commit] = target
    if not plan and not substitute:
        return Rewritten(spec, task, head, head)
    done = _rebuild(versions, spec, task, head, plan, now_iso(), substitute)
    for old in [*plan, *substitute]:
        done.mapping.pop(old, None)
    return done


def record_rewrites(
    versions: Versions, done: Sequence[Rewritten], *, by: str, at: str | None = None
) -> None:
    """Record what ``done`` replaced in ``refs/gitstore/rewrites`` (one commit for them all)."""
    when = at or now_iso()
    records = {
        old: RewriteRecord(
            spec=r.spec,
            task=r.task,
            version=r.numbers[old],
            new=new,
            at=when,
            by=by,
            why=r.why.get(old, ""),
        )
        for r in done
        for old, new in r.mapping.items()
    }
    if records:
        versions.rewrites.add(records)


def tombstone_entry(old: ArtifactEntry, data: bytes) -> ArtifactEntry:
    """The manifest entry of a tombstone that replaced ``old``'s bytes."""
    return ArtifactEntry(
        oid=blob_id(data),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=TOMBSTONE_TYPE,
        created_at=old.created_at,
        tags=dict(old.tags),
    )


def _topological(versions: Versions, head: str, stop: Collection[str] = ()) -> list[str]:
    """Every commit reachable from ``head``, parents before children (iterative); the parents
    of commits in ``stop`` are not visited."""
    order: list[str] = []
    state: dict[str, bool] = {}  # False: being visited; True: done
    stack: list[tuple[str, bool]] = [(head, False)]
    while stack:
        commit, expanded = stack.pop()
        if expanded:
            state[commit] = True
            order.append(commit)
            continue
        if commit in state:
            continue
        state[commit] = False
        stack.append((commit, True))
        if commit in stop:
            continue
        for p in reversed(versions.parents(commit)):
            if p not in state:
                stack.append((p, False))
    return order


def _rebuild(
    versions: Versions,
    spec: str,
    task: str,
    head: str,
    plan: Mapping[str, Edit],
    when: str,
    substitute: Mapping[str, str] | None = None,
) -> Rewritten:
    """Write the rewritten chain of ``head``; return the mapping (no ref moves).

    ``substitute`` (old commit -> the commit that replaced it in an earlier rewrite) puts those
    commits in place of the old ones, with their own history (translating a chain that
    another store rewrote).
    """
    done = Rewritten(spec, task, head, head)
    translating = substitute is not None
    substitute = substitute or {}
    if head in plan and plan[head].drop and not translating:
        raise UsageError(
            f"{spec}/{task}: the latest version (v{versions.number(head)}) cannot be dropped "
            "(delete the task instead)"
        )
    new: dict[str, str] = {}  # kept commit -> its commit now
    stands_for: dict[str, list[str]] = {}  # dropped commit -> the kept commits now in its place
    for commit in _topological(versions, head, substitute):
        if commit in substitute:
            new[commit] = substitute[commit]
            continue
        info = read_commit(versions.objects, commit)
        parents: list[str] = []
        for p in info.parents:
            for q in stands_for[p] if p in stands_for else [new.get(p, p)]:
                if q not in parents:
                    parents.append(q)
        if len(parents) > 1 and parents != [new.get(p, p) for p in info.parents]:
            parents = _without_ancestors(versions, parents)
        edit = plan.get(commit)
        if edit is not None and edit.drop:
            stands_for[commit] = parents
            done.mapping[commit] = None
            done.numbers[commit] = versions.number(commit)
            done.why[commit] = edit.why
            continue
        if len(parents) > 2:
            raise UsageError(
                f"{spec}/{task}: dropping the versions before v{versions.number(commit)} would "
                f"give it {len(parents)} parents; keep one of the merged versions"
            )
        tree = None
        if edit is not None and (edit.expire or edit.replace):
            tree = _edited_tree(versions, commit, info.tree, edit, when)
        if tree is None and parents == list(info.parents):
            new[commit] = commit
            continue
        rewritten = copy_commit(versions.objects, commit, tree=tree, parents=parents)
        new[commit] = rewritten
        if rewritten != commit:
            done.mapping[commit] = rewritten
            done.numbers[commit] = versions.number(commit)
            if edit is not None and (edit.expire or edit.replace):
                done.why[commit] = "; ".join(
                    [f"{n} expired" for n in sorted(edit.expire)]
                    + [f"{n} purged" for n in sorted(edit.replace)]
                )
    if head in new:
        done.new_head = new[head]
    else:
        # Translating a chain whose head another store dropped: its nearest kept version.
        kept = stands_for[head]
        if not kept:
            raise UsageError(f"{spec}/{task}: every version of {head[:12]} was dropped")
        done.new_head = kept[0]
    return done


def _without_ancestors(versions: Versions, parents: list[str]) -> list[str]:
    """``parents`` less each one that another one descends from (it adds no history)."""
    return [
        p
        for p in parents
        if not any(q != p and is_ancestor(versions, p, q, present=True) for q in parents)
    ]


def _edited_tree(versions: Versions, commit: str, tree: str, edit: Edit, when: str) -> str | None:
    """The tree of ``commit`` with ``edit``'s artifacts removed or replaced, its manifest saying
    so; None when the version holds none of them (nothing to change)."""
    m = versions.manifest(commit)
    artifacts = dict(m.artifacts)
    removed = dict(m.removals())
    changes: dict[str, tuple[int, str] | None] = {}
    blobs: list[bytes] = []
    for name, why in sorted(edit.expire.items()):
        entry = artifacts.pop(name, None)
        if entry is None:
            continue
        removed[name] = Removal(
            kind="expired", size=entry.size, sha256=entry.sha256, at=when, why=why
        )
        changes[name] = None
    for name, stone in sorted(edit.replace.items()):
        entry = artifacts.get(name)
        if entry is None:
            continue
        replaced = tombstone_entry(entry, stone.data)
        if replaced.oid == entry.oid:
            continue  # already the tombstone
        removed[name] = Removal(
            kind="purged",
            size=entry.size,
            sha256=entry.sha256,
            at=when,
            why=stone.why,
        )
        artifacts[name] = replaced
        blobs.append(stone.data)
        changes[name] = (MODE_FILE, replaced.oid)
    if not changes:
        return None
    manifest = Manifest(
        format=m.format,
        spec=m.spec,
        task=m.task,
        version=m.version,
        created_at=m.created_at,
        run_id=m.run_id,
        message=m.message,
        metadata=dict(m.metadata),
        artifacts=artifacts,
        conflicts=list(m.conflicts),
        removed=removed,
    )
    data = encode_manifest(manifest)
    blobs.append(data)
    changes[f"{MANIFEST_DIR}/{MANIFEST_FILE}"] = (MODE_FILE, blob_id(data))
    return edit_tree(versions.objects, tree, changes, blobs=blobs)
