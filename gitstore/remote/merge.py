"""Bringing a task's head from another store into this one: fast-forward, or a merge version.

When a pull finds that a task gained versions on both sides, it neither forces nor drops: it makes
a merge version whose parents are both heads and whose artifacts are the union of both sides.

* A name only one side has is kept. A name both sides hold with the same content is kept.
* A name both hold with different content: if only one side changed it since their common history
  (the merge bases), that side's entry is taken and it is not a conflict. If both changed it, the
  side whose head commit is newer (commit time, then commit id) keeps the name, the other's bytes
  stay reachable in history, and the name is listed in the merge's ``conflicts``.
* A name deleted on one side comes back (the tree is the union: nothing either side acknowledged is
  lost; delete it again after the pull).

Everything about the merge commit is derived from the two heads alone (parent order, time,
identity, manifest), so two machines that merge the same two heads make the same commit id, which
lets stores that sync in both directions converge instead of merging each other's merges forever.
"""

from __future__ import annotations

from gitstore.backend.trees import CommitInfo
from gitstore.meta import ArtifactEntry, Manifest, parse_iso
from gitstore.model import TaskUpdate
from gitstore.names import task_ref
from gitstore.versions import Versions, is_ancestor, walk_commits

__all__ = ["MERGE_IDENTITY", "TaskUpdate", "ancestors", "integrate", "is_ancestor"]

# Merge commits carry this identity on every machine: a per-machine identity would give two
# machines different commit ids for the same merge.
MERGE_IDENTITY = b"gitstore <gitstore@localhost>"


def integrate(versions: Versions, spec: str, task: str, theirs: str) -> TaskUpdate:
    """Bring ``theirs`` (a head fetched from another store) into the local task.

    Moves the local ref only by compare-and-swap (:mod:`gitstore.cas`); a local writer that
    moves the ref meanwhile makes this re-read and decide again, so its put is kept too.

    Raises:
      ConflictError: other writers kept winning for the store's ``cas_timeout`` seconds.
    """
    ref = task_ref(spec, task)
    key = f"{spec}/{task}"

    def attempt() -> TaskUpdate | None:
        ours = versions.refs.get(ref)
        conflicts: tuple[str, ...] = ()
        if ours == theirs:
            return TaskUpdate(key, "up-to-date", ours, ours)
        if ours is not None and is_ancestor(versions, theirs, ours):
            return TaskUpdate(key, "ahead", ours, ours)
        if ours is None:
            new, action = theirs, "created"
        elif is_ancestor(versions, ours, theirs):
            new, action = theirs, "fast-forward"
        else:
            new, conflicts = merge_heads(versions, ours, theirs)
            action = "merged"
        if not versions.refs.cas(ref, ours, new):
            return None
        return TaskUpdate(key, action, ours, new, conflicts)  # type: ignore[arg-type]

    return versions.retry(ref, attempt, doing=f"to bring in {theirs}")


def merge_heads(versions: Versions, ours: str, theirs: str) -> tuple[str, tuple[str, ...]]:
    """Write the merge version of two diverged heads; return its commit id and the conflicts."""
    a, b = versions.commit(ours), versions.commit(theirs)
    # The newer head (commit time, then id) wins names both sides changed, and comes first among
    # the parents so that the first-parent chain follows the side the merge mostly resembles.
    if (a.commit_time, ours) >= (b.commit_time, theirs):
        new_id, old_id, new_c, old_c = ours, theirs, a, b
    else:
        new_id, old_id, new_c, old_c = theirs, ours, b, a
    mn, mo = versions.manifest(new_id), versions.manifest(old_id)
    bases = [versions.manifest(c) for c in merge_bases(versions, ours, theirs)]
    artifacts, conflicts = _union(mn.artifacts, mo.artifacts, bases)
    created = max(mn.created_at, mo.created_at, key=parse_iso)
    manifest = Manifest(
        spec=mn.spec,
        task=mn.task,
        version=max(mn.version, mo.version) + 1,
        created_at=created,
        run_id=None,
        message=None,
        metadata=dict(mn.metadata),
        artifacts=artifacts,
        conflicts=sorted(conflicts),
    )
    summary = f"merge v{mn.version} and v{mo.version}"
    if conflicts:
        summary += f" ({len(conflicts)} conflict{'s' if len(conflicts) != 1 else ''})"
    commit_id = versions.write(
        manifest,
        [new_id, old_id],
        summary,
        identity=MERGE_IDENTITY,
        when=max_time(new_c, old_c),
    )
    return commit_id, tuple(manifest.conflicts)


def max_time(*commits: CommitInfo) -> int:
    """The latest commit time among ``commits``: a merge is as new as its newest parent."""
    return int(max(c.commit_time for c in commits))


def merge_bases(versions: Versions, a: str, b: str) -> list[str]:
    """The best common ancestors of ``a`` and ``b`` (none when the histories are unrelated)."""
    anc_a = ancestors(versions, [a])
    common = ancestors(versions, [b]) & anc_a
    if not common:
        return []
    # A common ancestor reachable from another common ancestor's parents is not a best one.
    below = ancestors(versions, [p for c in common for p in versions.parents(c)])
    return sorted(common - below)


def ancestors(versions: Versions, starts: list[str]) -> set[str]:
    """Every commit reachable from ``starts`` (themselves included)."""
    return set(walk_commits(starts, versions.parents))


def _union(
    newer: dict[str, ArtifactEntry],
    older: dict[str, ArtifactEntry],
    bases: list[Manifest],
) -> tuple[dict[str, ArtifactEntry], list[str]]:
    """Both sides' artifacts; see the module docstring for who takes a name both changed."""

    def changed(name: str, entry: ArtifactEntry | None) -> bool:
        if not bases:
            return True
        for m in bases:
            base = m.artifacts.get(name)
            if (base is None and entry is None) or (
                base is not None and entry is not None and base.same_content(entry)
            ):
                return False
        return True

    out: dict[str, ArtifactEntry] = {}
    conflicts: list[str] = []
    for name in sorted(set(newer) | set(older)):
        en, eo = newer.get(name), older.get(name)
        if en is None or eo is None:
            out[name] = en if en is not None else eo  # type: ignore[assignment]
        elif en.same_content(eo):
            out[name] = en
        elif changed(name, eo) and not changed(name, en):
            out[name] = eo
        else:
            out[name] = en
            if changed(name, eo):
                conflicts.append(name)
    # One side may hold a file where the other holds a folder (``a`` and ``a/b``): the newer side's
    # names stay, the older side's clashing names drop out of the tree (they stay in history).
    files = set(out)
    for name in sorted(files):
        parts = name.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in out and name in out:
                # Each side's own names fit together, so exactly one of the two is the newer's.
                loser = prefix if prefix not in newer else name
                del out[loser]
                conflicts.append(loser)
    return out, sorted(set(conflicts))
