"""verify: every version the refs reach checked as a pull checks what arrives, and every
artifact's bytes hashed again.

Each commit of each task's history must pass :func:`gitstore.validate.version_problem` (names,
tree against manifest, modes, numbers: a store written by another tool is not trusted either),
and each blob its manifest lists must hash to its Git id, its sha256 and its size. Every blob is
read once however many versions hold it. Problems are collected, not raised: a damaged commit
ends its own branch of the walk and the rest is still checked.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping

from gitstore.backend.objects import ObjectBackend
from gitstore.errors import GitstoreError, IntegrityError
from gitstore.meta import ArtifactEntry
from gitstore.model import Problem
from gitstore.validate import version_problem
from gitstore.versions import Versions, walk_commits

__all__ = ["verify"]


def verify(versions: Versions, heads: Mapping[str, str]) -> list[Problem]:
    """Every problem in the histories of ``heads`` (``SPEC/TASK -> head``); empty: all good."""
    problems: list[Problem] = []
    checked: dict[str, str | None] = {}  # oid -> problem text (None: good)
    for key, head in heads.items():
        spec, task = key.split("/")
        # Parents are learnt while checking each commit; a damaged one ends its branch.
        parents: defaultdict[str, list[str]] = defaultdict(list)
        for commit in walk_commits([head], parents.__getitem__):
            problem = version_problem(versions.objects, spec, task, commit, blobs=False)
            if problem is not None:
                problems.append(Problem(spec, task, commit, None, problem))
            try:
                parents[commit] = versions.parents(commit)
                if problem is not None:
                    continue
                manifest = versions.manifest(commit)
            except GitstoreError as e:
                if problem is None:
                    problems.append(Problem(spec, task, commit, None, str(e)))
                continue
            for name, entry in manifest.artifacts.items():
                if entry.oid not in checked:
                    checked[entry.oid] = _check_blob(versions.objects, entry)
                if checked[entry.oid] is not None:
                    problems.append(Problem(spec, task, commit, name, str(checked[entry.oid])))
    return problems


def _check_blob(objects: ObjectBackend, entry: ArtifactEntry) -> str | None:
    """What is wrong with the blob of ``entry`` (None: its bytes match id, sha256 and size)."""
    try:
        with objects.open_blob(entry.oid) as f:
            sha1 = hashlib.sha1(b"blob %d\0" % f.size)
            sha256 = hashlib.sha256()
            for chunk in f.iter_chunks():
                sha1.update(chunk)
                sha256.update(chunk)
            size = f.size
    except IntegrityError as e:
        return str(e)
    if sha1.hexdigest() != entry.oid:
        return f"object {entry.oid} is corrupt (its bytes hash to {sha1.hexdigest()})"
    if sha256.hexdigest() != entry.sha256:
        return f"sha256 mismatch: manifest says {entry.sha256}, bytes hash to {sha256.hexdigest()}"
    if size != entry.size:
        return f"size mismatch: manifest says {entry.size}, blob has {size}"
    return None
