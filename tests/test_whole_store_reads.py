"""Whole-store reads (issue 13): history as JSON Lines made straight from manifests, objects read
through our own pack index, commits parsed by gitstore, and the query index that trusts a ref
folder's stamp instead of reading every ref."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import git, open_store

import gitstore.backend.refs as refs_module
from gitstore import Artifact, Store
from gitstore.backend.packindex import PackIndex
from gitstore.backend.refs import DiskRefs
from gitstore.backend.trees import parse_commit, read_commit
from gitstore.errors import IntegrityError, InvalidNameError
from gitstore.meta import Truncation
from gitstore.names import check_component, is_component
from gitstore.query import find, iter_history, write_jsonl


def _varied(store: Store) -> None:
    """Versions with every field a record carries: tags, executable, masked and truncated
    artifacts, names that need quoting in a URI, metadata, several versions and a merge's
    conflicts."""
    store.put(
        "s/a",
        {
            "log.log": Artifact(b"x", tags={"k": "v"}, masked_secrets=2),
            "dir/run me.sh": Artifact(b"#!/bin/sh\n", executable=True),
            "cut.txt": Artifact(
                b"head", truncated=Truncation(original_size=9, original_sha256="0" * 64)
            ),
        },
        run_id="r1",
        message="first\n\nbody",
        metadata={"n": 1, "f": 0.5, "nested": {"b": [1, "é"]}},
    )
    store.put("s/a", {"100%.txt": "more"}, run_id="r2")
    store.put("t/b", {"x": "y"})
    # A merge version with conflicts, as pull writes one: the other side is a version of the
    # same task made on top of v1 elsewhere; the merge's number is the larger parent's + 1.
    v = store.versions
    head = store.heads()["s/a"]
    first = v.parents(head)[0]
    m = v.manifest(head)
    side = v.write(
        type(m)(spec="s", task="a", version=2, created_at=m.created_at, run_id="elsewhere"),
        [first],
        "side",
    )
    merged = type(m)(
        spec="s",
        task="a",
        version=m.version + 1,
        created_at=m.created_at,
        artifacts=dict(m.artifacts),
        conflicts=["log.log"],
    )
    commit = v.write(merged, [head, side], "merge")
    assert v.refs.cas("refs/artifacts/s/a", head, commit)


def test_history_records_are_each_versions_to_dict(disk_store: Store) -> None:
    _varied(disk_store)
    records = list(iter_history(disk_store))
    expected = [v.to_dict() for key in disk_store.heads() for v in disk_store.log(key)]
    assert records == expected
    assert any(r.get("conflicts") == ["log.log"] for r in records)
    assert len(records) == 5  # s/a: v1, v2, the other side's v2, the merge; t/b


def test_jsonl_lines_parse_to_the_records_and_limit_cuts_them(disk_store: Store) -> None:
    _varied(disk_store)
    out = io.StringIO()
    assert write_jsonl(disk_store, out, "s") == 4
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == list(iter_history(disk_store, "s"))
    # Keys sorted, no spaces: the CLI's --json form, one version a line.
    assert all(line.startswith('{"artifacts":') and ", " not in line[:40] for line in lines)
    short = io.StringIO()
    assert write_jsonl(disk_store, short, limit=2) == 2
    assert len(short.getvalue().splitlines()) == 2


def test_the_cli_log_jsonl_writes_the_same_lines(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gitstore.cli.main import cli

    path = tmp_path / "s.git"
    with Store.open(path, create=True) as s:
        _varied(s)
        out = io.StringIO()
        write_jsonl(s, out)
    result = CliRunner().invoke(cli, ["--store", str(path), "log", "--jsonl"])
    assert result.exit_code == 0, result.output
    assert result.output == out.getvalue()
    limited = CliRunner().invoke(cli, ["--store", str(path), "log", "--jsonl", "-n", "1"])
    assert limited.output == out.getvalue().splitlines(keepends=True)[0]


# -- the pack index ----------------------------------------------------------------------------


def _packed_store(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A store whose objects stock git packed, and every object's offset as git reads it."""
    path = tmp_path / "p.git"
    with Store.open(path, create=True) as s:
        for i in range(60):
            s.put(f"s/t{i % 7}", {"log.log": f"line {i}\n" * (i + 1)})
    git(path, "repack", "-a", "-d", "-q")
    (idx,) = (path / "objects" / "pack").glob("*.idx")
    with idx.open("rb") as f:
        out = subprocess.run(["git", "show-index"], stdin=f, capture_output=True, check=True)
    lines = out.stdout.decode().splitlines()
    offsets = {line.split()[1]: int(line.split()[0]) for line in lines}
    return idx.with_suffix(""), offsets


def test_a_pack_index_finds_what_git_lists_by_search_and_by_dict(tmp_path: Path) -> None:
    base, offsets = _packed_store(tmp_path)
    index = PackIndex(str(base))
    assert index.count == len(offsets)
    for oid, offset in offsets.items():
        assert index.offset(bytes.fromhex(oid)) == offset
    absent = [bytes([b]) * 20 for b in (0, 0x7F, 0xFF)]
    assert [index.offset(s) for s in absent] == [None] * 3
    # Asked often enough, it answers from a dict: the same answers.
    for _ in range(index.count):
        index.offset(absent[0])
    for oid, offset in offsets.items():
        assert index.offset(bytes.fromhex(oid)) == offset
    assert [index.offset(s) for s in absent] == [None] * 3
    index.close()


def test_a_pack_index_that_is_not_one_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "pack-x"
    base.with_suffix(".idx").write_bytes(b"\xfftOc\x00\x00\x00\x01" + b"\x00" * 2000)
    with pytest.raises(ValueError, match="version-2"):
        PackIndex(str(base))
    fanout = b"\x00" * 1020 + b"\x00\x00\x01\x00"  # 256 objects promised, none there
    base.with_suffix(".idx").write_bytes(b"\xfftOc\x00\x00\x00\x02" + fanout + b"\x00" * 40)
    with pytest.raises(ValueError, match="shorter"):
        PackIndex(str(base))


def test_objects_git_packed_with_deltas_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "d.git"
    text = "".join(f"line {i}\n" for i in range(2000))
    with Store.open(path, create=True) as s:
        for i in range(5):
            s.put("s/t", {"log.log": text + f"tail {i}\n"})
    git(path, "repack", "-a", "-d", "-f", "--depth=5", "-q")
    with Store.open(path) as s:
        assert [s.text(f"s/t@v{i + 1}", "log.log") for i in range(5)] == [
            text + f"tail {i}\n" for i in range(5)
        ]
        assert len(list(iter_history(s))) == 5


def test_an_entry_overwritten_in_a_pack_is_reported_not_read(tmp_path: Path) -> None:
    base, offsets = _packed_store(tmp_path)
    path = tmp_path / "p.git"
    with Store.open(path) as s:
        head = s.heads()["s/t3"]
    pack = base.with_suffix(".pack")
    data = bytearray(pack.read_bytes())
    at = offsets[head] + 4
    data[at : at + 8] = b"\x00" * 8  # inside the commit's zlib stream
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))
    with Store.open(path) as s, pytest.raises(IntegrityError, match=head):
        s.show("s/t3")


# -- commits ---------------------------------------------------------------------------------


def _git_in(gitdir: Path, stdin: bytes, *args: str) -> str:
    """Stock git's output for ``args`` with ``stdin`` as its input."""
    argv = ["git", f"--git-dir={gitdir}", *args]
    return (
        subprocess.run(argv, input=stdin, capture_output=True, check=True).stdout.decode().strip()
    )


def test_commits_parse_as_git_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "c.git"
    Store.open(path, create=True).close()
    tree = _git_in(path, b"", "mktree")
    one = git(path, "commit-tree", tree, "-m", "one").stdout.strip()
    two = git(path, "commit-tree", tree, "-m", "two").stdout.strip()
    raw = (
        f"tree {tree}\nparent {one}\nparent {two}\n"
        "author A <a@x> 1700000000 +0200\ncommitter C <c@x> 1700000123 -0100\n"
        "gpgsig -----BEGIN SIG-----\n \n tree 0000\n -----END SIG-----\n"
        "\nsubject\n\nbody\n\nmore\n"
    ).encode()
    oid = _git_in(path, raw, "hash-object", "-t", "commit", "-w", "--stdin")
    with Store.open(path) as s:
        info = read_commit(s.versions.objects, oid)
    assert (info.tree, info.parents) == (tree, (one, two))
    assert info.commit_time == 1700000123
    assert info.message == b"subject\n\nbody\n\nmore\n"
    assert info.raw == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"author A <a@x> 1 +0000\n\nno tree\n",
        b"tree abc\n\nshort tree id\n",
        b"tree " + b"a" * 40 + b"\nparent " + b"Z" * 40 + b"\n\nbad parent\n",
        b"tree " + b"a" * 40 + b"\ncommitter C <c@x> soon +0000\n\nbad time\n",
    ],
)
def test_a_malformed_commit_is_an_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError, match="malformed"):
        parse_commit("1" * 40, raw)


# -- the query index -------------------------------------------------------------------------


class CountingRefs(DiskRefs):
    """Disk refs that count the folders whose refs were read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listed: list[str] = []

    def items(self, prefix: str) -> dict[str, str]:
        # Task ref folders only: what the query index spares (show lists the aliases of each
        # version it returns, refs/gitstore/aliases/SPEC/TASK/, beside it).
        if prefix.startswith("refs/artifacts/"):
            self.listed.append(prefix)
        return super().items(prefix)


def _index_store(path: Path) -> Store:
    s = open_store(path, refs=CountingRefs)
    for i in range(6):
        s.put(f"s{i % 2}/t{i}", {"log.log": str(i)}, run_id=f"r{i % 3}")
    return s


def test_a_folder_whose_stamp_held_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refs_module, "RACY_NS", 0)  # as if the last write were long ago
    with _index_store(tmp_path / "s.git") as s:
        assert len(find(s, run="r1")) == 2
    with open_store(tmp_path / "s.git", refs=CountingRefs) as fresh:
        refs = fresh.versions.refs
        assert isinstance(refs, CountingRefs)
        assert len(find(fresh, run="r1")) == 2
        assert refs.listed == []  # both specs answered from the index
        # Another writer moves a ref: that spec's folder changed, and only it is read again.
        with Store.open(tmp_path / "s.git") as other:
            other.put("s1/t1", {"log.log": "again"}, run_id="r1")
        assert len(find(fresh, run="r1")) == 3
        assert refs.listed == ["refs/artifacts/s1/"]


def test_a_folder_changed_just_now_is_read_every_time(tmp_path: Path) -> None:
    with _index_store(tmp_path / "s.git") as s:
        refs = s.versions.refs
        assert isinstance(refs, CountingRefs)
        assert refs.stamp("refs/artifacts/s0/") is None  # written within RACY_NS
        find(s, run="r1")
        find(s, run="r1")
        assert refs.listed.count("refs/artifacts/s0/") == 2


def test_a_stamp_changes_with_every_ref_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refs_module, "RACY_NS", 0)
    with _index_store(tmp_path / "s.git") as s:
        refs = s.versions.refs
        before = refs.stamp("refs/artifacts/s0/")
        s.put("s0/t0", {"log.log": "moved"})
        moved = refs.stamp("refs/artifacts/s0/")
        s.rm_task("s0/t2")
        removed = refs.stamp("refs/artifacts/s0/")
        assert len({before, moved, removed}) == 3 and None not in {before, moved, removed}
        assert refs.stamp("refs/artifacts/nope/") is not None  # no folder: a stamp all the same


def test_a_damaged_or_foreign_index_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refs_module, "RACY_NS", 0)
    with _index_store(tmp_path / "a.git") as a:
        assert len(find(a, run="r0")) == 2
    b_path = tmp_path / "b.git"
    with Store.open(b_path, create=True) as b:
        b.put("s0/t0", {"log.log": "other store"}, run_id="r0")
    index = Path("gitstore", "index", "versions.msgpack")
    (b_path / index).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "a.git" / index, b_path / index)  # another store's index
    with Store.open(b_path) as b:
        assert [(v.spec, v.task) for v in find(b, run="r0")] == [("s0", "t0")]
    (b_path / index).write_bytes(b"\x81\xa6format\x03 and then garbage")
    with Store.open(b_path) as b:
        assert [(v.spec, v.task) for v in find(b, run="r0")] == [("s0", "t0")]


def test_a_task_pointing_at_another_tasks_version_is_not_indexed_as_it(
    disk_store: Store,
) -> None:
    other = disk_store.put("s/a", {"x": "1"}, run_id="r").commit
    disk_store.put("s/b", {"x": "2"}, run_id="r")
    gitdir = disk_store.path or ""
    git(gitdir, "update-ref", "refs/artifacts/s/b", other)
    with pytest.raises(Exception, match=re.escape(f"s/b has no version {other}")):
        find(disk_store, run="r")


def test_an_artifacts_dict_holds_every_field(disk_store: Store) -> None:
    _varied(disk_store)
    for v in disk_store.log("s/a"):
        for a in v.artifacts:
            assert a.to_dict() == {**dataclasses.asdict(a), "tags": dict(a.tags)}


@pytest.mark.parametrize(
    "name",
    ["t1", "a.b-c_d", "x" * 128, "x" * 129, "", ".hidden", "a..b", "t.lock", "a/b", "é", "a b"],
)
def test_listings_accept_exactly_the_names_put_accepts(name: str) -> None:
    try:
        check_component(name)
        accepted = True
    except InvalidNameError:
        accepted = False
    assert is_component(name) is accepted
