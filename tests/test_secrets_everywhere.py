"""Secrets are found in every byte and field that is stored or leaves, by ONE scanner.

Each leak is shown closed by crafting the input: with gitstore itself (a token in the message,
metadata, run id or a tag; a token across the 1 MiB read boundary of one long line; a log whose
first byte is NUL) and with stock git plumbing (a blob in a version's tree that its manifest does
not list, a token in a commit header, a manifest field gitstore does not know). For each,
``gitstore scan`` exits 20 naming where the token is (never the token), and ``gitstore push`` to
a bare remote refuses the task (exit 10) and the remote's refs do not move (stock git says so).
The tokens are built at run time: this file holds none.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from support import git, open_store

from gitstore import SecretsFoundError, Store
from gitstore import remote as R
from gitstore.backend.objects import BlobReader, DiskObjects
from gitstore.cli.main import cli
from gitstore.runner import record_task
from gitstore.scan import Scanner, scan_version
from gitstore.secrets import (
    BINARY_WINDOW,
    CHUNK,
    LONG_LINE_OVERLAP,
    MASK,
    Masker,
    is_binary,
)

TOKEN = "ghp_" + "Tk9" * 12  # a GitHub token shape: ghp_ and 36 letters and digits
MIB = 1 << 20
PNG = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + bytes(range(64))


def run(store: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", str(store), *args])


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def remote_refs(remote: Path) -> str:
    return git(remote, "for-each-ref", "--format=%(objectname) %(refname)").stdout


def assert_scan_finds(store: Path, where: str) -> None:
    """``gitstore scan`` exits 20 with a line naming ``where``, and never prints the token."""
    found = run(store, "scan")
    assert found.exit_code == 20, found.output
    assert where in found.output
    assert TOKEN not in found.output


def assert_push_refuses(store: Path, tmp_path: Path, where: str) -> None:
    """``gitstore push`` refuses every task (exit 10) naming ``where``; no remote ref moves."""
    remote = bare(tmp_path / "remote.git")
    pushed = run(store, "push", str(remote))
    assert pushed.exit_code == 10, pushed.output
    assert where in pushed.output and TOKEN not in pushed.output
    assert remote_refs(remote) == ""


def hash_object(gitdir: Path, data: bytes) -> str:
    done = subprocess.run(
        ["git", f"--git-dir={gitdir}", "hash-object", "-w", "--stdin"],
        input=data,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().strip()


def mktree(gitdir: Path, entries: list[str]) -> str:
    done = subprocess.run(
        ["git", f"--git-dir={gitdir}", "mktree"],
        input="".join(e + "\n" for e in entries),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def rewrite_version(gitdir: Path, ref: str, tree: str, env: dict[str, str] | None = None) -> str:
    """Replace the version ``ref`` points at by a commit of ``tree`` with the same parents and
    message (stock git plumbing), and move the ref there."""
    head = git(gitdir, "rev-parse", ref).stdout.strip()
    message = git(gitdir, "log", "-1", "--format=%B", head).stdout
    parents = git(gitdir, "log", "-1", "--format=%P", head).stdout.split()
    args = ["git", f"--git-dir={gitdir}", "commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    done = subprocess.run(
        args,
        input=message,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    commit = done.stdout.strip()
    git(gitdir, "update-ref", ref, commit, head)
    return commit


# -- fields: message, metadata, run id, tags -------------------------------------------------

FIELDS = [
    (["-m", f"deploy with {TOKEN}"], "message: github token"),
    (["--meta", f"k={TOKEN}"], "metadata.k: github token"),
    (["--run", TOKEN], "run_id: github token"),
    (["--tag", f"k={TOKEN}"], "tag k on log.log: github token"),
]


@pytest.mark.parametrize(("option", "where"), FIELDS, ids=["message", "meta", "run", "tag"])
def test_a_token_in_a_field_is_found_by_scan_and_refused_by_push(
    tmp_path: Path, option: list[str], where: str
) -> None:
    store = tmp_path / "s.git"
    (tmp_path / "log.log").write_text("nothing to see\n")
    assert run(store, "put", "s/t", str(tmp_path / "log.log"), *option).exit_code == 0
    assert_scan_finds(store, where)
    assert_push_refuses(store, tmp_path, where)


def test_field_findings_say_where_in_json_and_artifact_findings_keep_their_shape(
    store: Store,
) -> None:
    v = store.put("s/t", {"log.log": f"a\n{TOKEN}\n"}, metadata={"tools": [{"gh": TOKEN}]})
    found = [(f.to_dict(), str(f)) for f in store.scan()]
    assert found == [
        (
            {
                "spec": "s",
                "task": "t",
                "commit": v.commit,
                "name": "",
                "line": 1,
                "kind": "github token",
                "field": "metadata.tools[0].gh",
            },
            f"s/t@{v.commit[:12]} metadata.tools[0].gh: github token",
        ),
        (
            {
                "spec": "s",
                "task": "t",
                "commit": v.commit,
                "name": "log.log",
                "line": 2,
                "kind": "github token",
                "field": "",
            },
            f"s/t@{v.commit[:12]} log.log:2: github token",
        ),
    ]


def test_a_name_or_key_holding_a_token_is_shown_masked(store: Store) -> None:
    store.put("s/t", {f"{TOKEN}.txt": "clean\n"}, metadata={TOKEN: "x"})
    shown = [str(f) for f in store.scan()]
    assert len(shown) == 2 and not any(TOKEN in line for line in shown)
    assert any("name ***MASKED***.txt" in line for line in shown)


def test_a_field_is_reported_once_per_task_at_the_newest_version(store: Store) -> None:
    store.put("s/t", {"a.txt": "1"}, tags={"k": TOKEN})
    newest = store.put("s/t", {"b.txt": "2"})  # a.txt and its tag carry over
    (found,) = store.scan()
    assert (found.commit, found.field, found.name) == (newest.commit, "tag k", "a.txt")


# -- blobs the manifest does not list, commit headers, unknown manifest fields ----------------


def test_a_blob_in_the_tree_but_not_in_the_manifest_is_scanned(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    v = disk_store.put("s/t", {"log.log": "clean\n"})
    extra = hash_object(store_path, f"hidden {TOKEN}\n".encode())
    entries = git(store_path, "ls-tree", v.commit).stdout.splitlines()
    tree = mktree(store_path, [*entries, f"100644 blob {extra}\thidden.txt"])
    rewrite_version(store_path, "refs/artifacts/s/t", tree)
    where = "hidden.txt:1 (in the tree, not in the manifest): github token"
    assert_scan_finds(store_path, where)
    assert_push_refuses(store_path, tmp_path, where)


def test_a_token_in_a_commit_header_is_found(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    v = disk_store.put("s/t", {"log.log": "clean\n"})
    tree = git(store_path, "rev-parse", f"{v.commit}^{{tree}}").stdout.strip()
    rewrite_version(store_path, "refs/artifacts/s/t", tree, {"GIT_AUTHOR_NAME": TOKEN})
    assert_scan_finds(store_path, "commit:2: github token")  # the line after "tree ..."
    assert_push_refuses(store_path, tmp_path, "commit:2: github token")


def test_a_manifest_field_gitstore_does_not_know_is_scanned(
    disk_store: Store, store_path: Path, tmp_path: Path
) -> None:
    v = disk_store.put("s/t", {"log.log": "clean\n"})
    manifest = json.loads(_manifest(store_path, v.commit))
    manifest["extra"] = {"note": TOKEN}
    blob = hash_object(store_path, json.dumps(manifest, sort_keys=True).encode())
    meta = mktree(store_path, [f"100644 blob {blob}\tmanifest.json"])
    entries = [
        e
        for e in git(store_path, "ls-tree", v.commit).stdout.splitlines()
        if "\t.gitstore" not in e
    ]
    tree = mktree(store_path, [*entries, f"040000 tree {meta}\t.gitstore"])
    rewrite_version(store_path, "refs/artifacts/s/t", tree)
    assert_scan_finds(store_path, "manifest.extra.note: github token")
    assert_push_refuses(store_path, tmp_path, "manifest.extra.note: github token")


def test_a_token_behind_a_duplicate_manifest_key_is_still_found(
    disk_store: Store, store_path: Path
) -> None:
    v = disk_store.put("s/t", {"log.log": "clean\n"})
    raw = _manifest(store_path, v.commit).encode()
    # JSON readers keep the last of two equal keys: the first is read by no field.
    raw = raw.replace(b'"message":null', b'"message":"' + TOKEN.encode() + b'","message":null')
    blob = hash_object(store_path, raw)
    meta = mktree(store_path, [f"100644 blob {blob}\tmanifest.json"])
    entries = [
        e
        for e in git(store_path, "ls-tree", v.commit).stdout.splitlines()
        if "\t.gitstore" not in e
    ]
    tree = mktree(store_path, [*entries, f"040000 tree {meta}\t.gitstore"])
    rewrite_version(store_path, "refs/artifacts/s/t", tree)
    assert_scan_finds(store_path, ".gitstore/manifest.json:1: github token")


def _manifest(gitdir: Path, commit: str) -> str:
    """The manifest of ``commit`` as stock git reads it."""
    return git(gitdir, "cat-file", "blob", f"{commit}:.gitstore/manifest.json").stdout


# -- bytes: long lines, stray NULs, real binaries ---------------------------------------------


@pytest.mark.parametrize("at", [MIB, MIB + 8192], ids=["1MiB", "1MiB+8KiB"])
def test_a_token_across_a_read_boundary_of_a_long_line_is_found_and_masked(
    tmp_path: Path, at: int
) -> None:
    """One 2 MiB line, the token straddling where a 1 MiB read ends (a plain read, or one after
    an 8 KiB peek at the start)."""
    line = b"x" * (at - 10) + TOKEN.encode() + b"y" * (2 * MIB)
    (tmp_path / "long.log").write_bytes(line[: 2 * MIB] + b"\n")
    store = tmp_path / "s.git"
    assert run(store, "put", "s/t", str(tmp_path / "long.log")).exit_code == 0
    assert_scan_finds(store, "long.log:1: github token")
    assert_push_refuses(store, tmp_path, "long.log:1: github token")
    assert run(store, "put", "s/u", str(tmp_path / "long.log"), "--mask-secrets").exit_code == 0
    masked = run(store, "get", "s/u", "long.log").stdout_bytes
    assert TOKEN.encode() not in masked and masked.count(MASK) == 1


@pytest.mark.parametrize("prefix", [b"\0", b"\0\0\0\x01\x02"], ids=["one-nul", "a-few"])
def test_a_log_starting_with_nul_bytes_is_text_scanned_and_masked(
    tmp_path: Path, prefix: bytes
) -> None:
    log = prefix + b"step 1\n" * 50 + f"using {TOKEN}\n".encode()
    (tmp_path / "run.log").write_bytes(log)
    store = tmp_path / "s.git"
    assert run(store, "put", "s/t", str(tmp_path / "run.log")).exit_code == 0
    assert_scan_finds(store, "run.log:51: github token")
    assert_push_refuses(store, tmp_path, "run.log:51: github token")
    assert run(store, "put", "s/u", str(tmp_path / "run.log"), "--mask-secrets").exit_code == 0
    stored = run(store, "get", "s/u", "run.log").stdout_bytes
    assert stored == log.replace(TOKEN.encode(), MASK)


@pytest.mark.parametrize(
    "data",
    [PNG + TOKEN.encode(), gzip.compress(b"x") + TOKEN.encode()],
    ids=["png", "gzip"],
)
def test_a_png_or_gzip_is_never_masked_or_scanned(store: Store, data: bytes) -> None:
    v = store.put("s/t", {"blob": data}, mask_secrets=Masker(env={}))
    assert store.get(v.artifact("blob").uri) == data
    assert v.artifact("blob").masked_secrets == 0
    assert store.scan() == []


@pytest.mark.parametrize(
    ("head", "binary"),
    [
        (b"", False),
        (b"plain text\n" * 100, False),
        (b"\0" + b"log line\n" * 100, False),
        ("journal: héllo wörld ñ 日本語\n".encode() * 50, False),
        (b"\xff\xfe" + "utf-16 text".encode("utf-16-le"), False),
        (b"caf\xe9 au lait\n" * 100, False),  # Latin-1: a few bytes are not UTF-8
        (b"\x1b[31mred\x1b[0m\n" * 100, False),
        (PNG, True),
        (gzip.compress(b"hello" * 100), True),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 9, True),
        (b"PK\x03\x04" + b"text inside a zip\n" * 100, True),
        (b"a.txt" + b"\0" * 95 + b"0000644\0" + b"\0" * 149 + b"ustar\x0000" + b"t" * 4000, True),
        (bytes(range(256)) * 32, True),
        ("text".encode("utf-16-le") * 100, True),  # UTF-16 without a byte order mark
    ],
    ids=[
        "empty",
        "ascii",
        "leading-nul",
        "utf8",
        "utf16-bom",
        "latin1",
        "ansi-colours",
        "png",
        "gzip",
        "elf",
        "zip",
        "tar",
        "random",
        "utf16-no-bom",
    ],
)
def test_the_binary_rule(head: bytes, binary: bool) -> None:
    assert is_binary(head) is binary


# Where reads of one long line end: a plain 1 MiB read, one after the 8 KiB binary peek, and
# where a long line is cut (LONG_LINE_OVERLAP before the end of what was read).
BOUNDARIES = [CHUNK, CHUNK + BINARY_WINDOW, CHUNK + BINARY_WINDOW - LONG_LINE_OVERLAP]


@pytest.mark.parametrize(
    "at",
    [b - back for b in BOUNDARIES for back in (20, 9, 2)],  # token across it; "B|earer" at 2
)
def test_masking_a_long_line_in_pieces_matches_masking_it_whole(at: int) -> None:
    data = b"x" * at + b" Bearer " + TOKEN.encode() + b" " + b"y" * (2 * CHUNK) + b"\n"
    out = io.BytesIO()
    count = Masker(env={}).mask_content(io.BytesIO(data), out)
    assert (out.getvalue(), count) == Masker(env={}).mask(data)
    assert len(list(Masker(env={}).scan_content(io.BytesIO(data)))) == 1


def test_a_token_longer_than_the_overlap_across_a_long_line_cut_is_masked_whole() -> None:
    long_token = "ghp_" + "Ab9" * 40_000  # 120 KiB of token shape, across the first cut
    at = CHUNK + BINARY_WINDOW - LONG_LINE_OVERLAP - 50_000
    data = b"x" * at + b" " + long_token.encode() + b" " + b"y" * (2 * CHUNK) + b"\n"
    out = io.BytesIO()
    assert Masker(env={}).mask_content(io.BytesIO(data), out) == 1
    assert out.getvalue() == Masker(env={}).mask(data)[0]


# -- masking fields on the way in ------------------------------------------------------------


def test_put_mask_secrets_masks_message_metadata_tags_so_scan_is_clean(store: Store) -> None:
    v = store.put(
        "s/t",
        {"log.log": "clean\n"},
        message=f"deploy with {TOKEN}",
        metadata={"tool": {"auth": [f"Bearer {TOKEN}"]}, "api_token": 12345678, "n": 3},
        tags={"k": TOKEN},
        mask_secrets=Masker(env={}),
    )
    assert v.message == "deploy with ***MASKED***"
    assert v.metadata == {
        "tool": {"auth": ["Bearer ***MASKED***"]},
        "api_token": "***MASKED***",
        "n": 3,
    }
    assert dict(v.artifact("log.log").tags) == {"k": "***MASKED***"}
    assert store.scan() == []


def test_put_mask_secrets_refuses_a_run_id_holding_a_token_and_writes_nothing(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s.git"
    (tmp_path / "log.log").write_text("clean\n")
    refused = run(store, "put", "s/t", str(tmp_path / "log.log"), "--run", TOKEN, "--mask-secrets")
    assert refused.exit_code == 20
    assert "run id" in refused.output and TOKEN not in refused.output
    assert Store.open(store).heads() == {}


def test_record_task_masks_fields_by_default_and_refuses_a_secret_run_id(store: Store) -> None:
    rec = record_task(
        store,
        "s/t",
        log="ok\n",
        message=f"ran with {TOKEN}",
        metadata={"env": {"GH": TOKEN}},
        tags={"k": TOKEN},
    )
    assert rec.version is not None
    assert TOKEN not in json.dumps(rec.version.to_dict())
    assert store.scan() == []
    with pytest.raises(SecretsFoundError):
        record_task(store, "s/u", log="ok\n", run_id=f"run-{TOKEN}")
    assert "s/u" not in store.heads()


# -- push: what the remote holds, what is read once -------------------------------------------


def test_push_does_not_refuse_a_clean_version_for_a_tag_the_remote_already_holds(
    disk_store: Store, tmp_path: Path
) -> None:
    remote = bare(tmp_path / "r.git")
    disk_store.put("s/t", {"a.txt": "1"}, tags={"k": TOKEN})
    assert R.push(disk_store, str(remote), allow_secrets=True).updated
    disk_store.put("s/t", {"b.txt": "2"})  # a.txt keeps its tag
    result = R.push(disk_store, str(remote))
    assert [u.task for u in result.updated] == ["s/t"] and not result.refused


class CountingObjects(DiskObjects):
    """Disk objects that remember every blob opened for reading."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened: list[str] = []

    def open_blob(self, oid: str, expect_sha256: str | None = None) -> BlobReader:
        self.opened.append(oid)
        return super().open_blob(oid, expect_sha256)


def test_push_reads_each_blob_once_across_versions_and_tasks(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.git", objects=CountingObjects)
    shared = b"the same log\n" * 100
    for task in ("s/a", "s/b"):
        store.put(task, {"log.log": shared})
        store.put(task, {"more.txt": task})
    objects = store.versions.objects
    assert isinstance(objects, CountingObjects)
    R.push(store, str(bare(tmp_path / "r.git")))
    opened = objects.opened
    assert len(opened) == len(set(opened)) == 3  # the shared log, and more.txt of each task
    store.close()


def test_scan_version_reads_one_version_and_seen_reports_once(store: Store) -> None:
    v1 = store.put("s/t", {"log.log": f"{TOKEN}\n"})
    v2 = store.put("s/t", {"b.txt": "clean"})
    scanner = Scanner(store.versions)
    seen: set[str] = set()
    assert [f.commit for f in scanner.version(v2.commit, seen)] == [v2.commit]
    assert scanner.version(v1.commit, seen) == []  # the same blob: reported already
    assert [f.commit for f in scan_version(store.versions, v1.commit)] == [v1.commit]
