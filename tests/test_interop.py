"""Stock git as the second opinion: it must accept what gitstore writes, and the other way round."""

from __future__ import annotations

import io
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import fsck, git

from gitstore import Artifact, Store, TaskNotFoundError

BIG = (1 << 20) + 5000
HANG_GUARD = 30


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    """Turn a read that never ends into a failing test instead of a stuck run.

    Not a timing check: the bound is far above what any of these tests needs on a loaded machine.
    """

    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {HANG_GUARD} s: a read that never ends?")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, HANG_GUARD)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def git_bytes(gitdir: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", *args], capture_output=True, check=True
    ).stdout


def text_blob(n: int, variant: int) -> bytes:
    """Log-like text: two variants differ in a few lines, so git gc stores one as a delta."""
    lines = [f"line {i:07d} of a long agent log with some words\n" for i in range(n // 48)]
    lines[len(lines) // 2] = f"the one line that differs: variant {variant}\n"
    return "".join(lines).encode()


@pytest.fixture
def varied(disk_store: Store, tmp_path: Path) -> Store:
    """A store holding many kinds of puts: every way in, folders, big blobs, rm, replace."""
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(folder / "run.sh", 0o755)
    (folder / "sub" / "data.csv").write_bytes(b"a,b\n1,2\n")
    (tmp_path / "big.log").write_bytes(text_blob(BIG, 1))
    disk_store.put(
        "spec-1/task-a",
        {
            "diff.diff": "--- a\n+++ b\n",
            "bin.dat": bytes(range(256)),
            "empty": b"",
            "out": folder,
            "big.log": tmp_path / "big.log",
            "stream.bin": io.BytesIO(os.urandom(BIG)),
            "tool": Artifact(b"#!/bin/sh\n", executable=True, tags={"k": "v"}),
        },
        run_id="run-1",
        message="first run\n\nwith a body",
        metadata={"model": "m", "n": 3},
    )
    disk_store.put("spec-1/task-a", {"big.log": text_blob(BIG, 2), "names/ü ñ%.txt": "unicode"})
    disk_store.rm("spec-1/task-a", ["bin.dat"])
    disk_store.put("spec-1/task-b", {f"many/{i:03d}.txt": f"file {i}" for i in range(80)})
    disk_store.put("spec-1/task-b", {"only": b"only"}, replace=True)
    disk_store.put("spec-2/gone", {"a": b"a"})
    disk_store.rm_task("spec-2/gone")
    disk_store.put("spec-2/kept", {"a": b"a"}, force=True)
    disk_store.put("spec-2/kept", {"a": b"a"}, force=True)
    return disk_store


def every_artifact(store: Store) -> dict[tuple[str, str], bytes]:
    """(SPEC/TASK@commit, name) -> bytes of every artifact of every version reachable."""
    out = {}
    for key in store.heads():
        for v in store.log(key):
            for a in v.artifacts:
                out[(v.address, a.name)] = store.get(a.uri)
    return out


def test_fsck_strict_is_clean_after_many_kinds_of_puts(varied: Store, store_path: Path) -> None:
    fsck(store_path)


def test_git_log_shows_every_version_with_its_trailers(varied: Store, store_path: Path) -> None:
    out = git(store_path, "log", "--format=%H%n%B%x00", "refs/artifacts/spec-1/task-a").stdout
    entries = [e.strip() for e in out.split("\0") if e.strip()]
    versions = varied.log("spec-1/task-a")
    assert len(entries) == len(versions) == 3
    for entry, v in zip(entries, versions, strict=True):
        commit, _, body = entry.partition("\n")
        assert commit == v.commit
        assert "Gitstore-Spec: spec-1" in body
        assert "Gitstore-Task: task-a" in body
        assert f"Gitstore-Version: {v.version}" in body
    first = entries[-1]
    assert first.split("\n")[1] == "first run"
    assert "Gitstore-Run: run-1" in first


def test_git_interpret_trailers_parses_them(varied: Store, store_path: Path) -> None:
    body = git(store_path, "log", "-1", "--format=%B", "refs/artifacts/spec-1/task-a").stdout
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=body, capture_output=True, text=True
    ).stdout
    assert "Gitstore-Version: 3" in parsed


def test_git_cat_file_gives_the_same_bytes_as_get(varied: Store, store_path: Path) -> None:
    for a in varied.show("spec-1/task-a").artifacts:
        assert git_bytes(store_path, "cat-file", "blob", a.oid) == varied.get(a.uri), a.name


def test_git_hash_object_agrees_with_the_oid(varied: Store, tmp_path: Path) -> None:
    for a in varied.show("spec-1/task-a").artifacts:
        f = tmp_path / "check"
        f.write_bytes(varied.get(a.uri))
        out = subprocess.run(
            ["git", "hash-object", str(f)], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == a.oid, a.name


def test_git_ls_tree_lists_the_artifacts_and_the_manifest(varied: Store, store_path: Path) -> None:
    v = varied.show("spec-1/task-a@v1")
    out = git(store_path, "ls-tree", "-r", "-z", v.commit).stdout
    listed = {}
    for line in filter(None, out.split("\0")):
        meta, _, path = line.partition("\t")
        mode, _, oid = meta.split(" ")
        listed[path] = (mode, oid)
    assert set(listed) == {a.name for a in v.artifacts} | {".gitstore/manifest.json"}
    for a in v.artifacts:
        assert listed[a.name] == ("100755" if a.executable else "100644", a.oid), a.name
    assert listed["out/run.sh"][0] == "100755"


def test_git_for_each_ref_lists_the_same_heads(varied: Store, store_path: Path) -> None:
    out = git(store_path, "for-each-ref", "--format=%(refname) %(objectname)", "refs/artifacts/")
    heads = {}
    for line in out.stdout.splitlines():
        ref, oid = line.split(" ")
        heads[ref.removeprefix("refs/artifacts/")] = oid
    assert heads == varied.heads()


def test_manifest_read_by_git_is_json_with_a_format_number(varied: Store, store_path: Path) -> None:
    import json

    raw = git(store_path, "show", "refs/artifacts/spec-1/task-a:.gitstore/manifest.json").stdout
    doc = json.loads(raw)
    # DESIGN 1: the manifest carries its format number, so a later reader can tell old from new.
    assert doc.get("format") == 1
    assert doc["version"] == 3
    assert list(doc) == sorted(doc)


def test_mirror_clone_shows_the_same_heads_and_artifacts(
    varied: Store, store_path: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "clone.git"
    subprocess.run(
        ["git", "clone", "-q", "--mirror", str(store_path), str(clone)],
        check=True,
        capture_output=True,
    )
    with Store.open(clone) as copy:
        assert copy.heads() == varied.heads()
        assert copy.specs() == varied.specs()
        assert every_artifact(copy) == every_artifact(varied)
        assert copy.verify() == []


def test_gitstore_reads_and_writes_after_git_gc_aggressive_and_pack_refs(
    varied: Store, store_path: Path
) -> None:
    before = every_artifact(varied)
    heads = varied.heads()
    git(store_path, "gc", "-q", "--aggressive", "--prune=now")
    git(store_path, "pack-refs", "--all")
    # The premise: objects are packed with deltas, refs are packed, nothing is loose.
    verify_pack = git(
        store_path, "verify-pack", "-v", *map(str, store_path.glob("objects/pack/*.idx"))
    )
    assert "chain length = 1" in verify_pack.stdout
    assert not list((store_path / "refs" / "artifacts").rglob("*/*"))
    assert "refs/artifacts/spec-1/task-a" in (store_path / "packed-refs").read_text()

    with Store.open(store_path) as s:
        assert s.heads() == heads
        assert s.tasks("spec-1") == ["task-a", "task-b"]
        assert every_artifact(s) == before
        big = s.artifact("spec-1/task-a", "big.log")
        with s.open_artifact("spec-1/task-a", "big.log", verify=True) as f:
            assert b"".join(f.iter_chunks()) == before[(s.show("spec-1/task-a").address, "big.log")]
        assert big.size > 1 << 20
        assert s.verify() == []

        v4 = s.put("spec-1/task-a", {"after-gc": b"new"})
        assert (v4.version, v4.parents) == (4, (heads["spec-1/task-a"],))
        s.rm_task("spec-1/task-b")
        assert s.tasks("spec-1") == ["task-a"]
        with pytest.raises(TaskNotFoundError):
            s.show("spec-1/task-b")

    assert "task-b" not in git(store_path, "for-each-ref", "refs/artifacts/").stdout
    assert git(store_path, "rev-parse", "refs/artifacts/spec-1/task-a").stdout.strip() == v4.commit
    fsck(store_path)


def test_deltified_large_blob_is_read_byte_exact(disk_store: Store, store_path: Path) -> None:
    one, two = text_blob(BIG, 1), text_blob(BIG, 2)
    disk_store.put("s/t", {"log": one})
    disk_store.put("s/t", {"log": two})
    git(store_path, "gc", "-q", "--aggressive", "--prune=now")
    # Which of the two git stores as the delta is its choice; both must read back.
    with Store.open(store_path) as s:
        assert s.get("s/t@v1", "log") == one
        assert s.get("s/t@v2", "log") == two
        assert s.get("s/t@v1", "log", verify=True) == one


def test_gitstore_reads_after_git_repack(varied: Store, store_path: Path) -> None:
    before = every_artifact(varied)
    git(store_path, "repack", "-q", "-a", "-d")
    with Store.open(store_path) as s:
        assert every_artifact(s) == before
        assert s.verify() == []


def test_open_store_keeps_reading_after_git_repack_under_it(
    varied: Store, store_path: Path
) -> None:
    before = every_artifact(varied)
    git(store_path, "repack", "-q", "-a", "-d")
    assert every_artifact(varied) == before


def test_git_fsck_is_clean_after_gitstore_writes_on_a_git_packed_store(
    varied: Store, store_path: Path
) -> None:
    git(store_path, "repack", "-q", "-a", "-d")
    git(store_path, "pack-refs", "--all")
    with Store.open(store_path) as s:
        s.put("spec-1/task-a", {"x": b"x"})
        s.put("spec-3/new", {"y": os.urandom(BIG)})
    fsck(store_path)
