"""Fill a store with tasks, one small version each (used to build the 1k / 100k-task stores).

    build_store.py STORE FIRST END SPECS

Task number ``i`` in ``FIRST..END-1`` goes to ``spec{i % SPECS}/task{i}``. Run several at once on
disjoint ranges; the store should have ``gitstore.fsync false`` while it is being built.
"""

from __future__ import annotations

import sys

from gitstore import Store


def main() -> None:
    path, first, end, specs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = Store.open(path)
    for i in range(first, end):
        store.put(
            f"spec{i % specs}/task{i}",
            {"run.log": f"task {i} done\n", "result.json": b'{"task": %d}' % i},
        )
    store.close()


if __name__ == "__main__":
    main()
