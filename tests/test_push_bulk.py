"""Big pushes: pack entries copied as they are, the secret scan run in batches with clean
verdicts recorded in the store and trusted by the next push, never by another store. Stock git
is the second opinion."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support import compressible, fsck, git

from gitstore import Store
from gitstore import remote as R
from gitstore.errors import IntegrityError
from gitstore.remote import transport
from gitstore.remote.push import BULK_FROM

SECRET = "key AKIAABCDEFGHIJKLMNOP here\n"


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def remote_refs(path: Path) -> dict[str, str]:
    out = git(path, "for-each-ref", "--format=%(objectname) %(refname)").stdout
    return {
        ref.removeprefix("refs/artifacts/"): sha for sha, ref in map(str.split, out.splitlines())
    }


def packs(store: Path) -> set[str]:
    return {p.name for p in (store / "objects" / "pack").glob("*.pack")}


def entries(store: Path, pack: str) -> list[list[str]]:
    """``git verify-pack -v`` rows of one pack: id, kind, size, size in pack, offset."""
    out = git(store, "verify-pack", "-v", str(store / "objects" / "pack" / pack)).stdout
    return [line.split() for line in out.splitlines() if len(line.split()) >= 5]


def many_tasks(store: Store, n: int = BULK_FROM + 6) -> None:
    for i in range(n):
        store.put(f"s{i % 3}/t{i}", {"run.log": f"task {i}\nok\n", "r.json": b'{"n": %d}' % i})


def cat_blob(gitdir: Path, oid: str) -> bytes:
    """The blob's bytes as stock git reads them."""
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", "cat-file", "blob", oid], capture_output=True, check=True
    ).stdout


def verdict_files(store: Path) -> list[Path]:
    return sorted((store / "gitstore" / "verdicts").glob("*.ids"))


# -- big pushes ----------------------------------------------------------------------------


def test_a_push_of_many_tasks_sends_every_object_and_stock_git_agrees(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    many_tasks(disk_store)
    random_blob, text_blob = os.urandom(2 << 20), compressible(2 << 20)
    disk_store.put("big/t", {"r.bin": random_blob, "t.log": text_blob})
    remote = bare(tmp_path / "r.git")
    result = R.push(disk_store, str(remote))
    assert not result.refused and len(result.updated) == BULK_FROM + 7
    assert remote_refs(remote) == disk_store.heads()
    fsck(remote)
    for name, data in (("r.bin", random_blob), ("t.log", text_blob)):
        assert cat_blob(remote, disk_store.artifact("big/t", name).oid) == data


def test_a_push_of_a_store_that_git_gc_packed_with_deltas(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    many_tasks(disk_store)
    git(store_path, "-c", "gc.auto=0", "repack", "-a", "-d", "-f", "--depth=10", "--window=50")
    # The premise: some entries are deltas (their rows name a depth and a base).
    assert any(len(r) > 5 for p in packs(store_path) for r in entries(store_path, p))
    remote = bare(tmp_path / "r.git")
    assert not R.push(disk_store, str(remote)).refused
    assert remote_refs(remote) == disk_store.heads()
    fsck(remote)


def test_a_push_of_many_tasks_reaches_a_local_remote_in_few_pipe_writes(
    disk_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many_tasks(disk_store)
    writes: list[int] = []

    class Counted(transport.SubprocessWrapper):
        def __init__(self, proc: subprocess.Popen[bytes]) -> None:
            super().__init__(proc)
            send = self.write
            self.write = lambda data: writes.append(len(data)) or send(data)

    monkeypatch.setattr(transport, "SubprocessWrapper", Counted)
    remote = bare(tmp_path / "r.git")
    result = R.push(disk_store, str(remote))
    assert len(result.updated) == BULK_FROM + 6 and remote_refs(remote) == disk_store.heads()
    # One pkt-line a task ref and a pack of ~200 objects, gathered: not one write a line.
    assert sum(writes) > 20_000 and len(writes) <= 6


def test_a_big_push_refuses_a_pack_entry_damaged_on_disk(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    many_tasks(disk_store)
    oid = disk_store.artifact("s0/t0", "run.log").oid
    ((pack, at, length),) = [
        (p, int(row[4]), int(row[3]))
        for p in packs(store_path)
        for row in entries(store_path, p)
        if row[0] == oid
    ]
    path = store_path / "objects" / "pack" / pack
    data = bytearray(path.read_bytes())
    data[at + length - 1] ^= 0xFF  # the entry's last byte: its header still reads
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    remote = bare(tmp_path / "r.git")
    # Refused here, before it leaves (the scan is off: the copy of the entry is what checks it).
    with pytest.raises(IntegrityError, match=f"object {oid} cannot be read: .*fails its CRC"):
        R.push(disk_store, str(remote), allow_secrets=True)
    assert remote_refs(remote) == {}


@pytest.mark.parametrize(
    "artifacts, metadata",
    [
        ({"log.txt": SECRET}, None),
        ({"log.txt": "clean"}, {"password": ["hunter2hunter2"]}),  # a list under a secret key
        ({"log.txt": "clean"}, {"deep": [{"x": {"token": "abcdefgh12345678"}}]}),
    ],
    ids=["in-a-blob", "in-a-metadata-list", "nested-metadata"],
)
def test_a_big_push_refuses_only_the_task_holding_a_secret(
    disk_store: Store,
    tmp_path: Path,
    artifacts: dict[str, str],
    metadata: dict[str, object] | None,
) -> None:
    many_tasks(disk_store)
    disk_store.put("s/leaky", artifacts, metadata=metadata)
    remote = bare(tmp_path / "r.git")
    result = R.push(disk_store, str(remote))
    (refusal,) = result.refused
    assert (refusal.task, refusal.kind) == ("s/leaky", "secrets")
    assert "AKIAABCDEFGHIJKLMNOP" not in refusal.reason and "hunter2" not in refusal.reason
    assert "s/leaky" not in remote_refs(remote)
    assert len(result.updated) == BULK_FROM + 6


# -- recorded verdicts ---------------------------------------------------------------------


def _forge_clean(store_path: Path, commit: str, rules: str | None = None) -> None:
    """Write a verdict file saying ``commit`` is clean (under the current rules, or ``rules``)."""
    (current,) = {p.name.split("-")[1] for p in verdict_files(store_path)}
    name = f"clean-{rules or current}-forged.ids"
    (store_path / "gitstore" / "verdicts" / name).write_bytes(bytes.fromhex(commit))


def test_a_push_records_clean_verdicts_that_the_next_push_trusts(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    many_tasks(disk_store)
    assert not R.push(disk_store, str(bare(tmp_path / "a.git"))).refused
    assert verdict_files(store_path)
    leaky = disk_store.put("s/leaky", {"log.txt": SECRET}).commit
    _forge_clean(store_path, leaky)
    # The verdict is taken as it stands: the version is not read again, and goes out.
    result = R.push(disk_store, str(bare(tmp_path / "b.git")))
    assert not result.refused and "s/leaky" in remote_refs(tmp_path / "b.git")


def test_verdicts_made_under_other_rules_are_not_trusted(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    many_tasks(disk_store)
    R.push(disk_store, str(bare(tmp_path / "a.git")))
    leaky = disk_store.put("s/leaky", {"log.txt": SECRET}).commit
    _forge_clean(store_path, leaky, rules="0123456789abcdef")
    result = R.push(disk_store, str(bare(tmp_path / "b.git")))
    assert [r.task for r in result.refused] == ["s/leaky"]


def test_a_pulled_store_never_trusts_the_remotes_verdicts(tmp_path: Path) -> None:
    src_path = tmp_path / "src.git"
    with Store.open(src_path, create=True) as src:
        many_tasks(src)
        R.push(src, str(bare(tmp_path / "first.git")))
        leaky = src.put("s/leaky", {"log.txt": SECRET}).commit
        _forge_clean(src_path, leaky)
    with Store.open(tmp_path / "dst.git", create=True) as dst:
        R.pull(dst, str(src_path))
        assert "s/leaky" in dst.heads()
        assert verdict_files(tmp_path / "dst.git") == []
        result = R.push(dst, str(bare(tmp_path / "next.git")))
        assert [r.task for r in result.refused] == ["s/leaky"]


def test_many_verdict_files_are_merged_into_one(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    many_tasks(disk_store)
    for i in range(18):  # each push of new versions records a file
        disk_store.put(f"s0/t{i * 3}", {"more.txt": f"round {i}"})
        R.push(disk_store, str(bare(tmp_path / f"r{i}.git")))
    assert 1 <= len(verdict_files(store_path)) <= 2
