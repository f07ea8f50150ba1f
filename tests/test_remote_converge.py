"""Two machines writing the same tasks and syncing in a loop converge, and lose nothing.

After the last syncs both stores hold the same refs, and every version either side wrote is in the
history of its task's final head. Run through a shared bare repository (the usual setup) and
directly between the two stores (each one the other's remote).
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from support import fsck

from gitstore import Store
from gitstore import remote as R

TASKS = ["s/t0", "s/t1", "s/t2"]


def history(store: Store, key: str) -> set[str]:
    return {v.commit for v in store.log(key)}


@pytest.mark.parametrize("topology", ["hub", "direct"])
def test_interleaved_writes_and_syncs_converge(tmp_path: Path, topology: str) -> None:
    rng = random.Random(4)
    a = Store.open(tmp_path / "a.git", create=True)
    b = Store.open(tmp_path / "b.git", create=True)
    assert a.path is not None and b.path is not None
    if topology == "hub":
        hub = tmp_path / "hub.git"
        subprocess.run(["git", "init", "-q", "--bare", str(hub)], check=True)
        R.add_remote(a, "origin", str(hub))
        R.add_remote(b, "origin", str(hub))
    else:
        R.add_remote(a, "origin", b.path)
        R.add_remote(b, "origin", a.path)
    written: dict[str, set[str]] = {k: set() for k in TASKS}
    for step in range(24):
        side = rng.choice([a, b])
        for key in rng.sample(TASKS, rng.randint(1, len(TASKS))):
            # Shared names make conflicts; per-side names make unions.
            name = rng.choice(["shared.txt", f"{'a' if side is a else 'b'}-{step}.txt"])
            v = side.put(key, {name: f"{step} {name} {rng.random()}"})
            written[key].add(v.commit)
        roll = rng.random()
        if roll < 0.3:
            R.sync(a)
        elif roll < 0.6:
            R.sync(b)
    R.sync(a)
    R.sync(b)
    R.sync(a)
    assert a.heads() == b.heads()
    assert set(a.heads()) == set(TASKS)
    for key in TASKS:
        kept = history(a, key)
        assert written[key] <= kept, f"{key}: lost {written[key] - kept}"
        assert history(b, key) == kept
    fsck(a.path)
    fsck(b.path)
    a.close()
    b.close()
