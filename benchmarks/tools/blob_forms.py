"""Put and get of one incompressible file in both forms, alternating, in one run.

    blob_forms.py FILE [ROUNDS]

A store with ``gitstore.compression=0`` writes big blobs as loose objects at level 0 (what every
store did before incompressible blobs got a pack of their own); the default store writes them
as a one-entry pack. Prints the best put and get time of each (fsync off, so the disk's
write-back does not decide).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitstore import Store


def main() -> None:
    src = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    size = src.stat().st_size
    best: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for label, level in (("loose object, level 0", "0"), ("one-entry pack", "1")):
                path = Path(tmp) / f"s{level}.git"
                Store.open(path, create=True).close()
                for key, value in (("gitstore.compression", level), ("gitstore.fsync", "false")):
                    subprocess.run(
                        ["git", "--git-dir", str(path), "config", key, value], check=True
                    )
                os.sync()
                with Store.open(path) as s:
                    t0 = time.perf_counter()
                    s.put("b/t", {"f": src})
                    t1 = time.perf_counter()
                    with s.open_artifact("b/t", "f") as f:
                        while f.read(1 << 20):
                            pass
                    t2 = time.perf_counter()
                best.setdefault(label, []).append((t1 - t0, t2 - t1))
                shutil.rmtree(path)
    for label, times in best.items():
        put = min(t for t, _ in times)
        get = min(t for _, t in times)
        print(f"{label}: put {put:.3f} s, get {get:.3f} s ({size / get / 1e6:.0f} MB/s)")


if __name__ == "__main__":
    main()
