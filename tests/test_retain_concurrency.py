"""Writers racing ``gitstore retain --yes``, as real processes: a version that lands is kept.

Four writer processes (tests/writer_proc.py) put 120 versions each to four tasks without pause
while ``gitstore retain --keep-last 1 --yes --json`` runs in a process of its own. retain plans from
the heads it read and rewrites each chain with compare-and-swap on that head; a version put
meanwhile is no part of its plan and must still be in the history afterwards, with its bytes.
The plan it printed tells the two kinds of acknowledged puts apart: those it planned to drop
(gone afterwards, as asked) and all the others (kept).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import writer_proc as wp
from support import fsck, git

from gitstore import Store

WRITERS = 4
PUTS = 120


def test_versions_put_while_retain_runs_are_kept(store_path: Path, tmp_path: Path) -> None:
    with Store.open(store_path, create=True) as store:
        for w in range(WRITERS):
            for i in range(6):
                store.put(f"s/t{w}", {"seed.txt": f"{w}:{i}\n"}, run_id=f"seed-{w}-{i}")
    # Writers flat out can keep a rewrite from winning its swap for a while (it rebuilds the
    # chain on each new head); give it time enough on a loaded machine.
    git(store_path, "config", "gitstore.casTimeout", "600")
    go = tmp_path / "go"
    writers = [
        wp.spawn(
            "put",
            store_path,
            f"s/t{w}",
            str(w),
            str(PUTS),
            tmp_path / f"acks-{w}",
            go,
            "text",
            "7",
            tmp_path / "scratch",
        )
        for w in range(WRITERS)
    ]
    try:
        for w, p in enumerate(writers):
            wp.wait_for_file(f"{tmp_path / f'acks-{w}'}.ready", [p])
        go.touch()
        # Let every writer land a few versions first, so retain plans over some of theirs.
        for w, p in enumerate(writers):
            while len(wp.read_acks(tmp_path / f"acks-{w}")) < 3:
                assert p.poll() is None or len(wp.read_acks(tmp_path / f"acks-{w}")) >= 3
        argv = ["--store", str(store_path), "retain", "--keep-last", "1", "--yes", "--json"]
        retain = subprocess.Popen(
            [sys.executable, "-m", "gitstore", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in writers:
            code, _, err = wp.finish(p, timeout=300)
            assert code == 0, err
        out, err = retain.communicate(timeout=300)
    finally:
        for p in writers:
            wp.kill(p)
    assert retain.returncode == 0, err
    plan = json.loads(out)
    assert plan["applied"]
    planned_drops = {v["commit"] for t in plan["tasks"] for v in t["versions"] if not v["keep"]}
    planned = {v["commit"] for t in plan["tasks"] for v in t["versions"]}
    landed_meanwhile = 0
    rebuilt = 0
    with Store.open(store_path) as store:
        for task in plan["tasks"]:
            # No task was left aside: retain won each swap once writers gave it room.
            assert "skipped" not in task, task.get("skipped")
            # The chain it swapped in holds versions it never planned: they landed between its
            # plan and its swap, and were rebuilt on the new chain.
            chain = store.log(f"s/{task['task']}@{task['new_head']}")
            rebuilt += any(v.commit not in planned for v in chain)
        for w in range(WRITERS):
            history = {v.run_id: v for v in store.log(f"s/t{w}")}
            for ack in wp.read_acks(tmp_path / f"acks-{w}"):
                run_id = f"w{ack['wid']}-{ack['seq']}"
                if ack["commit"] in planned_drops:
                    assert run_id not in history, run_id
                    continue
                landed_meanwhile += ack["commit"] not in planned
                # Kept: in the history with its number, its bytes, and its old URI resolving.
                assert run_id in history, (run_id, sorted(history, key=str))
                assert history[run_id].version == ack["version"]
                for name, sha in ack["expect"].items():
                    uri = f"gitstore://s/t{w}@{ack['commit']}/{name}"
                    assert store.artifact(uri).sha256 == sha
                    assert store.get(uri, verify=True)
    # The race happened: versions landed after retain planned, and it dropped some of the rest.
    assert landed_meanwhile > 0
    assert rebuilt > 0
    assert planned_drops
    fsck(store_path)
