"""Where one first push of a store goes, next to ``git push`` of the same refs, in rounds.

    push_parts.py STORE [ROUNDS]

Each round pushes every task of STORE to a new empty bare repository with the secret scan on
(verdicts as the store has them), then ``git push``es the same refs to another, and prints:
the whole push, reading the heads alone, the scan, when the pack starts and ends going out
(seconds from the start), and ``git push``'s time. The hooks wrap dulwich's pack writer and the
read of the remote's report, so the numbers are wall-clock times of the real push.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dulwich.client as client

from gitstore import Store
from gitstore import remote as R

PUSH = sys.modules["gitstore.remote.push"]


def main() -> None:
    store = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    marks: dict[str, float] = {}
    start = [0.0]
    clean_refs = PUSH._clean_refs
    writer_init = client.PackChunkGenerator.__init__
    tail = client.GitClient._handle_receive_pack_tail

    def timed_clean(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return clean_refs(*a, **k)
        finally:
            marks["scan"] = time.perf_counter() - t0

    def timed_writer(self: Any, *a: Any, **k: Any) -> None:
        marks["pack starts"] = time.perf_counter() - start[0]
        writer_init(self, *a, **k)

    def timed_tail(self: Any, *a: Any, **k: Any) -> Any:
        marks["pack sent"] = time.perf_counter() - start[0]
        return tail(self, *a, **k)

    PUSH._clean_refs = timed_clean
    client.PackChunkGenerator.__init__ = timed_writer
    client.GitClient._handle_receive_pack_tail = timed_tail
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            target = Path(tmp) / f"r{r}.git"
            subprocess.run(["git", "init", "-q", "--bare", str(target)], check=True)
            marks.clear()
            with Store.open(store) as s:
                t0 = time.perf_counter()
                s.heads()
                heads = time.perf_counter() - t0
                start[0] = time.perf_counter()
                R.push(s, str(target))
                total = time.perf_counter() - start[0]
            shutil.rmtree(target)
            subprocess.run(["git", "init", "-q", "--bare", str(target)], check=True)
            t0 = time.perf_counter()
            subprocess.run(
                [
                    "git",
                    "--git-dir",
                    store,
                    "push",
                    "-q",
                    str(target),
                    "refs/artifacts/*:refs/artifacts/*",
                ],
                check=True,
            )
            peer = time.perf_counter() - t0
            shutil.rmtree(target)
            parts = ", ".join(f"{k} {v:.2f}" for k, v in marks.items())
            print(f"push {total:.2f} s (heads alone {heads:.2f}; {parts}); git push {peer:.2f} s")


if __name__ == "__main__":
    main()
