"""du: bytes on disk and logical bytes per spec, task and content type, each object once, with
stock git's count of the store as the second opinion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import compressible, git

from gitstore import NotFoundError, Store
from gitstore.backend.objects import hash_bytes
from gitstore.cli.main import cli


def _count(store_path: Path) -> dict[str, int]:
    out = git(store_path, "count-objects", "-v").stdout
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines())}


def _entry_sizes(store_path: Path) -> dict[str, int]:
    """Object id -> size in pack, as ``git verify-pack -v`` reports it (packed objects)."""
    out: dict[str, int] = {}
    for idx in store_path.glob("objects/pack/*.idx"):
        for line in git(store_path, "verify-pack", "-v", str(idx)).stdout.splitlines():
            fields = line.split()
            if (
                len(fields) >= 5
                and len(fields[0]) == 40
                and fields[1] in ("blob", "tree", "commit")
            ):
                out.setdefault(fields[0], int(fields[3]))
    return out


@pytest.fixture
def filled(store_path: Path, tmp_path: Path) -> Path:
    big = tmp_path / "big.bin"
    # Compressible, so loose (an incompressible big blob gets a pack of its own).
    big.write_bytes(compressible(2 << 20))
    with Store.open(store_path, create=True) as store:
        store.put("a/t1", {"log.txt": b"hello\n" * 1000, "big.bin": big})
        store.put("a/t1", {"log.txt": b"second\n" * 1000})
        store.put("a/t2", {"shared.txt": b"hello\n" * 1000, "r.json": b'{"ok": true}'})
        store.put("b/t1", {"diff.patch": b"+x\n" * 500})
    return store_path


def test_the_store_total_is_every_file_under_objects(filled: Path) -> None:
    files = [p for p in (filled / "objects").rglob("*") if p.is_file()]
    with Store.open(filled) as store:
        usage = store.du()
    assert usage.total == sum(p.stat().st_size for p in files)
    # git counts the same files (in KiB of disk blocks): the same figure to within the rounding
    counted = _count(filled)
    git_bytes = (counted["size"] + counted["size-pack"] + counted["size-garbage"]) * 1024
    assert abs(usage.total - git_bytes) <= 4096 * len(files)
    assert usage.total == sum(t.disk for t in usage.tasks) + usage.unreachable + usage.other
    assert {p.name for p in usage.specs} == {"a", "b"}
    assert sum(p.disk for p in usage.specs) == sum(p.disk for p in usage.tasks)


def test_a_packed_object_costs_its_entry_in_the_pack(filled: Path) -> None:
    sizes = _entry_sizes(filled)
    with Store.open(filled) as store:
        v = store.show("b/t1")
        oid = v.artifact("diff.patch").oid
        usage = store.du("b/t1")
    (patch,) = [t for t in usage.types if t.name == "text/x-diff" or "patch" in t.name]
    assert patch.disk == sizes[oid]
    assert patch.logical == 1500
    # A task's total is its objects once each: artifacts, manifests, trees, commits.
    reached = git(filled, "rev-list", "--objects", "refs/artifacts/b/t1").stdout.split()
    oids = {w for w in reached if len(w) == 40}
    assert usage.total == sum(sizes[o] for o in oids)


def test_a_loose_object_costs_its_file(filled: Path) -> None:
    with Store.open(filled) as store:
        oid = store.show("a/t1@v1").artifact("big.bin").oid
        usage = store.du("a/t1")
    size = (filled / "objects" / oid[:2] / oid[2:]).stat().st_size
    (octet,) = [t for t in usage.types if t.name == "application/octet-stream"]
    assert octet.disk == size and octet.logical == 2 << 20


def test_a_shared_blob_counts_once_for_the_first_task(filled: Path) -> None:
    shared = hash_bytes(b"hello\n" * 1000).oid
    with Store.open(filled) as store:
        usage = store.du("a")
        alone = store.du("a/t2")
    t1, t2 = usage.tasks
    assert (t1.name, t2.name) == ("a/t1", "a/t2")
    # a/t2's shared.txt is a/t1's log.txt: a/t2 alone counts it, within spec a it is a/t1's.
    assert alone.logical == 6000 + len(b'{"ok": true}')
    assert t2.logical == len(b'{"ok": true}')
    assert t1.logical == 6000 + 7000 + (2 << 20)
    assert usage.logical == t1.logical + t2.logical
    assert shared  # the id both name


def test_deleted_tasks_show_as_unreachable_until_gc(filled: Path) -> None:
    with Store.open(filled) as store:
        before = store.du()
        store.rm_task("b/t1")
        after = store.du()
        assert after.unreachable > before.unreachable
        assert after.total == before.total
        store.gc(prune_after=0)
        assert store.du().unreachable == 0


def test_du_of_an_unknown_spec_is_not_found(filled: Path) -> None:
    with Store.open(filled) as store, pytest.raises(NotFoundError):
        store.du("nope")


def test_cli_du_json_has_a_total_and_the_parts(filled: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(filled), "du", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc) >= {"total", "logical", "specs", "tasks", "types", "unreachable", "other"}
    assert doc["total"] == sum(t["disk"] for t in doc["tasks"]) + doc["unreachable"] + doc["other"]


def test_cli_du_prints_human_units(filled: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(filled), "du"])
    assert result.exit_code == 0, result.output
    assert "MiB on disk" in result.output.splitlines()[0]
    assert "SPEC" in result.output and "TYPE" in result.output
    result = CliRunner().invoke(cli, ["--store", str(filled), "du", "a"])
    assert "a/t1" in result.output and "a/t2" in result.output


def test_du_in_memory_counts_logical_bytes_only() -> None:
    store = Store.memory()
    store.put("s/t", {"a.txt": b"abc"})
    usage = store.du()
    assert usage.logical == 3 and usage.total == 0


def test_reached_bytes_match_git_rev_list_disk_usage_after_git_repacks(filled: Path) -> None:
    """git made the packs (with deltas): du's reached bytes are what git says the refs reach."""
    git(filled, "repack", "-a", "-d", "-f", "-q")
    reached = int(git(filled, "rev-list", "--objects", "--all", "--disk-usage").stdout)
    with Store.open(filled) as store:
        usage = store.du()
        a = store.du("a")
    assert sum(t.disk for t in usage.tasks) == reached
    assert a.total == int(
        git(
            filled,
            "rev-list",
            "--objects",
            "--disk-usage",
            "refs/artifacts/a/t1",
            "refs/artifacts/a/t2",
        ).stdout
    )
