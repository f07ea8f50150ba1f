"""retain: what a store holds, read into the planner's facts; the plan applied to the store.

:mod:`gitstore.retention` decides on plain values; this module reads them from a store (each
task's history and manifests, and the heads each remote was last seen to hold) and applies a
plan through the chain rewrite (:func:`gitstore.rewrite.rewrite_chain`), task by task, each with
compare-and-swap on the head it was planned from: a version put on top of that head meanwhile is
no part of the plan and is rebuilt on the new chain, so it stays.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping

import msgspec

from gitstore.backend.trees import lookup, read_blob
from gitstore.errors import (
    ConflictError,
    IntegrityError,
    TaskNotFoundError,
    UsageError,
    VersionNotFoundError,
)
from gitstore.meta import Manifest, decode_manifest, parse_iso
from gitstore.model import MANIFEST_PATH, RetainPlan, TaskPlan
from gitstore.retention import ArtifactFacts, Policy, TaskFacts, VersionFacts, plan
from gitstore.rewrite import Edit, Rewritten, record_rewrites, rewrite_chain
from gitstore.versions import Versions, walk_commits

__all__ = [
    "apply_plan",
    "copies_of",
    "iter_facts",
    "retain",
    "task_facts",
]


def copies_of(
    versions: Versions, key: str, remote_heads: Mapping[str, Mapping[str, str]]
) -> dict[str, int]:
    """On how many remotes each version of task ``key`` is, as far as the recorded heads of
    the remotes (:mod:`gitstore.remoteheads`) reach.

    A head a rewrite replaced stands for the version it became (the remote holds that version,
    in its old form); a head dropped since, or whose objects are gone, counts for nothing.
    """
    spec, task = key.split("/", 1)
    counts: dict[str, int] = {}
    for heads in remote_heads.values():
        head = heads.get(key)
        if head is None:
            continue
        try:
            head = versions.rewritten(spec, task, head) or head
        except VersionNotFoundError:
            continue
        if not versions.has(head):
            continue
        for commit in versions.walk([head]):
            counts[commit] = counts.get(commit, 0) + 1
    return counts


def task_facts(
    versions: Versions,
    key: str,
    head: str,
    *,
    copies: Mapping[str, int],
    protected: Iterable[str] = (),
) -> TaskFacts:
    """The planner's facts of task ``key`` (``SPEC/TASK``) from its head: every version its
    history holds, with time, tags, artifacts, whether an alias protects it, and its copies."""
    spec, task = key.split("/", 1)
    guarded = set(protected)
    found = []
    # The walk reads each commit once, for its parents and its tree (Versions.manifest would
    # read it again): a store-wide plan reads every version, and a read less per version shows.
    parents: dict[str, list[str]] = {}
    for commit in walk_commits([head], parents.pop):
        info = versions.commit(commit)
        parents[commit] = list(info.parents)
        m = versions.cached(commit) or _manifest(versions, commit, info.tree)
        arts = tuple(
            ArtifactFacts(name, e.oid, e.size, e.content_type, frozenset(e.tags.items()))
            for name, e in m.artifacts.items()
        )
        tags = {t for a in arts for t in a.tags}
        tags |= {(k, t) for k, t in ((k, _text(v)) for k, v in m.metadata.items()) if t is not None}
        found.append(
            VersionFacts(
                commit=commit,
                number=m.version,
                time=parse_iso(m.created_at),
                artifacts=arts,
                tags=frozenset(tags),
                protected=commit in guarded,
                copies=copies.get(commit, 0),
            )
        )
    return TaskFacts(spec, task, head, tuple(found))


def _manifest(versions: Versions, commit: str, tree: str) -> Manifest:
    entry = lookup(versions.objects, tree, MANIFEST_PATH)
    if entry is None:
        raise IntegrityError(f"commit {commit} is not a gitstore version (no manifest)")
    try:
        return decode_manifest(read_blob(versions.objects, entry.oid))
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise IntegrityError(f"version {commit}: damaged manifest ({e})") from None


def iter_facts(
    versions: Versions,
    heads: Mapping[str, str],
    *,
    protected: Mapping[str, set[str]],
    remote_heads: Mapping[str, Mapping[str, str]],
) -> Iterator[TaskFacts]:
    """:func:`task_facts` of every task in ``heads`` (``SPEC/TASK -> head``)."""
    for key, head in heads.items():
        copies = copies_of(versions, key, remote_heads) if remote_heads else {}
        yield task_facts(versions, key, head, copies=copies, protected=protected.get(key, ()))


def _text(value: object) -> str | None:
    """A metadata value as ``--keep-tag`` compares it: scalars as text, structures not at all."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def retain(
    versions: Versions,
    heads: Mapping[str, str],
    policy_for: Callable[[str], Policy],
    *,
    apply: bool = False,
    protected: Mapping[str, set[str]] | None = None,
    remote_heads: Mapping[str, Mapping[str, str]] | None = None,
    now: dt.datetime | None = None,
) -> RetainPlan:
    """Plan retention of the tasks in ``heads`` (``SPEC/TASK -> head``); with ``apply``, apply
    the plan (:func:`apply_plan`) and return what was done."""
    when = now or dt.datetime.now(dt.UTC)
    facts = iter_facts(versions, heads, protected=protected or {}, remote_heads=remote_heads or {})
    planned = plan(facts, policy_for, now=when)
    if not apply:
        return planned
    return apply_plan(versions, planned, at=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def apply_plan(versions: Versions, planned: RetainPlan, *, at: str) -> RetainPlan:
    """Apply ``planned`` through the chain rewrite, task by task, and say what was done.

    Each task's chain is rewritten with compare-and-swap from the head it was planned from
    (:func:`gitstore.rewrite.rewrite_chain`): a version put on top of that head meanwhile is
    rebuilt on the new chain (it is no part of the plan, so it stays); a task whose head no
    longer builds on the planned one (another rewrite or a merging pull won), or whose plan the
    rewrite refuses, is left as it was, with the reason in ``skipped``. What was replaced is
    recorded once for all tasks in ``refs/gitstore/rewrites``, even when an error stops the run
    half-way.
    """
    done: list[Rewritten] = []
    tasks: list[TaskPlan] = []
    try:
        for task in planned.tasks:
            if not task.changes:
                tasks.append(task)
                continue
            try:
                rewritten = rewrite_chain(
                    versions,
                    task.spec,
                    task.task,
                    expect=task.head,
                    plan=_edits(task),
                    by="retention",
                    at=at,
                    record=False,
                )
            except (ConflictError, TaskNotFoundError, UsageError) as e:
                # Another rewrite won, the task was deleted, or its history has a shape the
                # rewrite cannot drop from (a merge whose sides would need three parents): the
                # task stays as it was, the others go on.
                tasks.append(dataclasses.replace(task, skipped=str(e)))
                continue
            done.append(rewritten)
            tasks.append(dataclasses.replace(task, new_head=rewritten.new_head))
    finally:
        record_rewrites(versions, done, by="retention", at=at)
    return dataclasses.replace(planned, tasks=tuple(tasks), applied=True)


def _edits(task: TaskPlan) -> dict[str, Edit]:
    """The rewrite's plan for one task: each dropped version, each kept one losing artifacts."""
    edits = {}
    for v in task.versions:
        if not v.keep:
            edits[v.commit] = Edit(drop=True, why=f"retention: kept by no rule ({task.rules})")
        elif v.expire:
            edits[v.commit] = Edit(expire={e.name: f"retention: {e.rule}" for e in v.expire})
    return edits
