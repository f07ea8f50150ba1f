"""Figures: gc that rewrites a 1 GiB pack, and du over 100k tasks, each beside its git peer.

gc: a store whose objects are ONE pack of 1 GiB (32 tasks of 32 MiB random bytes, packed by
stock git), half of whose tasks were deleted (``rm --task``), so half the pack is unreachable.
``gitstore gc --prune-after 0`` (copies the live half raw into a new pack) is timed against
``git gc --prune=now`` on a copy of the same store, both in child processes under
``/usr/bin/time -v`` for peak RSS. The template store is cached under the bench data folder;
each side runs on its own fresh copy.

du: ``gitstore du --json`` of the 100k-task store the scale figure builds
(``tools/build_store.py``), against ``git count-objects -v`` plus ``git for-each-ref
refs/artifacts`` (the files and the refs, what the brief names: neither reads an object), and
against ``git rev-list --objects --all --disk-usage``, which walks every object the refs reach
as du does and sums their bytes on disk (one total, no attribution): the like-for-like peer.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, MIB, git, needs_time, record, time_v
from test_scale import _build

from gitstore import Store

pytestmark = needs_time()

CLI = str(Path(sys.executable).parent / "gitstore")
TASKS = 32
BLOB = 32 * MIB


def _gc_template() -> Path:
    """The store with one 1 GiB pack and half its tasks deleted (built once, then cached)."""
    path = DATA / "gc-1g-store"
    done = path / "gitstore-bench-built"
    if done.exists():
        return path
    if path.exists():
        shutil.rmtree(path)
    with Store.open(path, create=True) as store:
        for i in range(TASKS):
            store.put(f"gc/t{i:02d}", {"blob.bin": os.urandom(BLOB)})
    # One pack of everything, as a store that was pulled or git-gc'd looks; level 0 keeps the
    # build fast (random bytes do not compress anyway).
    gd = ["--git-dir", str(path)]
    git(*gd, "-c", "pack.compression=0", "repack", "-a", "-d", "-q", "--window=0")
    git(*gd, "prune-packed")
    with Store.open(path) as store:
        for i in range(0, TASKS, 2):
            store.rm_task(f"gc/t{i:02d}")
    old = 1_600_000_000
    for dirpath, _dirs, files in os.walk(path / "objects"):
        for name in files:
            os.utime(os.path.join(dirpath, name), (old, old))
    done.write_text("built\n")
    return path


def _copy(template: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(template, dest)
    return dest


def _pack_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.glob("objects/pack/*.pack"))


def test_gc_rewrites_a_1gib_pack(benchmark: Any, workdir: Path) -> None:
    free = shutil.disk_usage(DATA).free
    if free < 4 << 30:
        pytest.skip(f"needs 4 GiB free under {DATA}, has {free >> 30} GiB")
    template = _gc_template()
    before = _pack_bytes(template)
    out: dict[str, Any] = {}

    def ours() -> None:
        store = _copy(template, workdir / "ours.git")
        out["ours"] = time_v([CLI, "--store", str(store), "gc", "--prune-after", "0", "--json"])
        out["ours_store"] = store

    benchmark.pedantic(ours, rounds=1)
    report = json.loads(out["ours"]["stdout"])
    assert report["bytes_freed"] >= (TASKS // 2) * BLOB
    peer_store = _copy(template, workdir / "peer.git")
    peer = time_v(["git", "--git-dir", str(peer_store), "gc", "--prune=now", "-q"])
    after_ours = _pack_bytes(out["ours_store"])
    after_peer = _pack_bytes(peer_store)
    figure = "gc rewriting a 1 GiB pack (half unreachable)"
    record(
        figure,
        "gitstore gc --prune-after 0",
        out["ours"]["wall"],
        rss_mb=out["ours"]["rss_mb"],
        pack_mib_before=before / MIB,
        pack_mib_after=after_ours / MIB,
        freed_mib=report["bytes_freed"] / MIB,
    )
    record(
        figure,
        "peer git gc --prune=now",
        peer["wall"],
        rss_mb=peer["rss_mb"],
        pack_mib_after=after_peer / MIB,
    )
    shutil.rmtree(out["ours_store"])
    shutil.rmtree(peer_store)


def test_du_over_100k_tasks(benchmark: Any) -> None:
    store = _build(100_000)
    out: dict[str, Any] = {}

    def ours() -> None:
        out["ours"] = time_v([CLI, "--store", str(store), "du", "--json"])

    benchmark.pedantic(ours, rounds=1)
    doc = json.loads(out["ours"]["stdout"])
    assert len(doc["tasks"]) == 100_000
    gd = ["git", "--git-dir", str(store)]
    count = time_v([*gd, "count-objects", "-v"])
    refs = time_v([*gd, "for-each-ref", "refs/artifacts"])
    walk = time_v([*gd, "rev-list", "--objects", "--all", "--disk-usage"])
    assert sum(t["disk"] for t in doc["tasks"]) == int(walk["stdout"])
    figure = "du over 100k tasks"
    record(figure, "gitstore du --json", out["ours"]["wall"], rss_mb=out["ours"]["rss_mb"])
    record(
        figure,
        "peer git count-objects -v + for-each-ref",
        count["wall"] + refs["wall"],
        count_objects_s=count["wall"],
        for_each_ref_s=refs["wall"],
    )
    record(
        figure,
        "peer git rev-list --objects --all --disk-usage",
        walk["wall"],
        rss_mb=walk["rss_mb"],
    )
