"""Build a store holding TASKS tasks, one small version each, quickly (for the scale figure).

    build_store.py STORE TASKS SPECS

Task ``i`` is ``spec{i % SPECS}/task{i}``. Putting 100k versions one by one on disk costs minutes
of file creation on a slow disk, so the versions are made by gitstore itself in an in-memory store
(same code path for manifests, trees and commits), then written out the way a grown store looks:
objects in packs of at most PACK_OBJECTS objects, one loose ref file per task.
"""

from __future__ import annotations

import os
import sys

from dulwich.object_store import DiskObjectStore

from gitstore import Store
from gitstore.backend.objects import MemoryObjects
from gitstore.backend.refs import MemoryRefs

PACK_OBJECTS = 100_000


def main() -> None:
    path, tasks, specs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    Store.open(path, create=True).close()
    memory = MemoryObjects()
    mem = Store(memory, MemoryRefs())
    heads: dict[str, str] = {}
    for i in range(tasks):
        address = f"spec{i % specs}/task{i}"
        v = mem.put(address, {"run.log": f"task {i} done\n", "result.json": b'{"task": %d}' % i})
        heads[address] = v.commit
    # The memory backend's dulwich object store, copied into the disk store in big packs.
    source = memory.store
    objects = list(source)
    disk = DiskObjectStore(os.path.join(path, "objects"))
    for start in range(0, len(objects), PACK_OBJECTS):
        batch = objects[start : start + PACK_OBJECTS]
        disk.add_objects([(source[oid], None) for oid in batch])
    disk.close()
    for address, commit in heads.items():
        ref = os.path.join(path, "refs", "artifacts", *address.split("/"))
        os.makedirs(os.path.dirname(ref), exist_ok=True)
        with open(ref, "w") as f:
            f.write(commit + "\n")
    print(f"{tasks} tasks, {len(objects)} objects")


if __name__ == "__main__":
    main()
