"""Child process for peak-RSS figures: stream one artifact to /dev/null, print JSON timings.

get_file.py STORE SPEC/TASK NAME
"""

from __future__ import annotations

import json
import sys
import time

from gitstore import Store


def main() -> None:
    store_path, address, name = sys.argv[1:4]
    store = Store.open(store_path)
    t0 = time.perf_counter()
    n = 0
    with store.open_artifact(address, name) as src, open("/dev/null", "wb") as out:
        for chunk in src.iter_chunks():
            out.write(chunk)
            n += len(chunk)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "bytes": n}))


if __name__ == "__main__":
    main()
