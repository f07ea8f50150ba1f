"""Build a store of TASKS tasks with VERSIONS versions each, one a day, quickly (retain figure).

    build_retain_store.py STORE TASKS VERSIONS

Task ``i`` is ``spec{i % 10}/task{i}``; version ``n`` of it was made ``VERSIONS - n`` days before
the build, holds a diff of its own (~200 B) and a log of its own (~2 KiB, ``text/x-log``). The
versions are written by gitstore's own version writer (manifests, trees, commits as put writes
them, with chosen creation times) into an in-memory store, then written out as a grown store
looks: packs of at most PACK_OBJECTS objects and one loose ref file per task.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys

from dulwich.object_store import DiskObjectStore

from gitstore import Store
from gitstore.backend.objects import MemoryObjects
from gitstore.backend.refs import MemoryRefs
from gitstore.meta import ArtifactEntry, Manifest

PACK_OBJECTS = 100_000


def entry(objects: MemoryObjects, data: bytes, content_type: str, when: str) -> ArtifactEntry:
    info = objects.add_blob(data)
    return ArtifactEntry(
        oid=info.oid,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
        created_at=when,
    )


def main() -> None:
    path, tasks, versions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    Store.open(path, create=True).close()
    memory = MemoryObjects()
    mem = Store(memory, MemoryRefs())
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=versions)
    heads: dict[str, str] = {}
    for i in range(tasks):
        spec, task = f"spec{i % 10}", f"task{i}"
        parent: list[str] = []
        for n in range(1, versions + 1):
            made = start + dt.timedelta(days=n, seconds=i % 3600)
            when = made.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
            diff = f"--- a/f{i}\n+++ b/f{i}\n@@ -1 +1 @@\n-v{n - 1}\n+v{n}\n".encode() * 3
            log = b"".join(
                b"%s step %d of task %d: ok\n" % (when.encode(), k, i) for k in range(48)
            )
            manifest = Manifest(
                spec=spec,
                task=task,
                version=n,
                created_at=when,
                run_id=f"run-{n}",
                artifacts={
                    "change.diff": entry(memory, diff, "text/x-diff", when),
                    "run.log": entry(memory, log, "text/x-log", when),
                },
            )
            commit = mem.versions.write(
                manifest, parent, "put 2 artifacts", when=int(made.timestamp())
            )
            parent = [commit]
        heads[f"{spec}/{task}"] = parent[0]
    source = memory.store
    objects = list(source)
    disk = DiskObjectStore(os.path.join(path, "objects"))
    for first in range(0, len(objects), PACK_OBJECTS):
        batch = objects[first : first + PACK_OBJECTS]
        disk.add_objects([(source[oid], None) for oid in batch])
    disk.close()
    for key, commit in heads.items():
        ref = os.path.join(path, "refs", "artifacts", *key.split("/"))
        os.makedirs(os.path.dirname(ref), exist_ok=True)
        with open(ref, "w") as f:
            f.write(commit + "\n")
    print(f"{tasks} tasks x {versions} versions, {len(objects)} objects")


if __name__ == "__main__":
    main()
