"""retain: what a store holds, read into the planner's facts; the plan applied to the store.

:mod:`gitstore.retention` decides on plain values; this module reads them from a store (each
task's history, manifests, the remote-tracking refs that say which versions a remote has) and
applies a plan through the chain-rewrite primitive, task by task, each with compare-and-swap on
the head it was planned from: a version that lands meanwhile makes that task's swap fail, and
the task is planned again over its new head (which the new version, the latest, keeps).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping

from gitstore.errors import ConflictError, TaskNotFoundError
from gitstore.meta import parse_iso
from gitstore.model import RetainPlan, TaskPlan
from gitstore.retention import ArtifactFacts, Policy, TaskFacts, VersionFacts, plan
from gitstore.rewrite import Edit, Rewritten, record_rewrites, rewrite_chain
from gitstore.versions import Versions

__all__ = [
    "TRACKING_PREFIX",
    "apply_plan",
    "copies_of",
    "iter_facts",
    "retain",
    "task_facts",
    "tracking_heads",
]

# Remote-tracking refs: what a remote was last seen to hold, one ref per remote and task, where
# stock git's `git fetch REMOTE '+refs/artifacts/*:refs/remotes/REMOTE/artifacts/*'` puts them.
TRACKING_PREFIX = "refs/remotes/"
_TRACKED = "/artifacts/"


def tracking_heads(versions: Versions) -> dict[str, dict[str, str]]:
    """``SPEC/TASK -> {remote: commit}``: each task's heads as remote-tracking refs know them."""
    out: dict[str, dict[str, str]] = {}
    for ref, commit in versions.refs.items(TRACKING_PREFIX).items():
        remote, sep, key = ref[len(TRACKING_PREFIX) :].partition(_TRACKED)
        if sep and remote and "/" not in remote and key.count("/") == 1:
            out.setdefault(key, {})[remote] = commit
    return out


def copies_of(versions: Versions, remote_heads: Mapping[str, str]) -> dict[str, int]:
    """On how many remotes each commit is, as far as their tracking heads reach."""
    counts: dict[str, int] = {}
    for head in remote_heads.values():
        if not versions.has(head):
            continue  # a tracking ref whose objects are gone knows nothing we can check
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
    for commit in versions.walk([head]):
        m = versions.manifest(commit)
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


def iter_facts(
    versions: Versions, heads: Mapping[str, str], *, protected: Mapping[str, set[str]]
) -> Iterator[TaskFacts]:
    """:func:`task_facts` of every task in ``heads`` (``SPEC/TASK -> head``)."""
    tracking = tracking_heads(versions)
    for key, head in heads.items():
        copies = copies_of(versions, tracking.get(key, {}))
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
    now: dt.datetime | None = None,
) -> RetainPlan:
    """Plan retention of the tasks in ``heads`` (``SPEC/TASK -> head``); with ``apply``, apply
    the plan (:func:`apply_plan`) and return what was done."""
    when = now or dt.datetime.now(dt.UTC)
    facts = iter_facts(versions, heads, protected=protected or {})
    planned = plan(facts, policy_for, now=when)
    if not apply:
        return planned
    return apply_plan(versions, planned, at=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def apply_plan(versions: Versions, planned: RetainPlan, *, at: str) -> RetainPlan:
    """Apply ``planned`` through the chain rewrite, task by task, and say what was done.

    Each task's chain is rewritten with compare-and-swap from the head it was planned from
    (:func:`gitstore.rewrite.rewrite_chain`): a version put on top of that head meanwhile is
    rebuilt on the new chain (it is no part of the plan, so it stays); a task whose head no
    longer builds on the planned one (another rewrite or a merging pull won) is left as it was,
    with the reason in ``skipped``. What was replaced is recorded once for all tasks in
    ``refs/gitstore/rewrites``, even when an error stops the run half-way.
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
            except (ConflictError, TaskNotFoundError) as e:
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
