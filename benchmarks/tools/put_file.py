"""Child process for peak-RSS figures: put one file (or stream) into a store, print JSON timings.

put_file.py STORE PATH [--stream] [--fsync true|false] [--address SPEC/TASK]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import time

from gitstore import Store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("path")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--fsync", choices=["true", "false"])
    ap.add_argument("--address", default="bench/big")
    args = ap.parse_args()
    store = Store.open(args.store, create=True)
    if args.fsync:
        subprocess.run(
            ["git", "--git-dir", store.path, "config", "gitstore.fsync", args.fsync], check=True
        )
        store = Store.open(args.store)
    t0 = time.perf_counter()
    if args.stream:
        with open(args.path, "rb") as f:
            v = store.put(args.address, {"big.log": f})
    else:
        v = store.put(args.address, {"big.log": pathlib.Path(args.path)})
    dt = time.perf_counter() - t0
    a = v.artifacts[0]
    print(json.dumps({"seconds": dt, "oid": a.oid, "size": a.size}))


if __name__ == "__main__":
    main()
