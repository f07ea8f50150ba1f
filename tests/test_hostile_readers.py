"""Readers facing a hostile store: export writes nothing outside its folder, text output cannot
forge lines, and a tree nested 10,000 deep is a problem verify reports, not a crash.

put refuses every name these stores hold, so each one is written with stock git plumbing
(``git hash-object -w``, ``git hash-object -t tree --literally``, ``git commit-tree``,
``git update-ref``): a store written by stock git is not trusted either.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import pytest
from click.testing import CliRunner, Result
from dulwich.objects import ObjectID, Tree
from dulwich.repo import Repo
from support import git

from gitstore import InvalidNameError, Store
from gitstore.cli.main import cli
from gitstore.cli.output import printable

PAYLOAD = b"payload\n"


@dataclass(frozen=True)
class TreeId:
    """A tree already written, to place in a layout."""

    oid: str


# name bytes -> a blob id, a tree already written, or a nested layout (a tree to write)
Layout = Mapping[bytes, Union[str, TreeId, "Layout"]]


# -- crafting stores with stock git -----------------------------------------------------------


def hash_object(gitdir: Path, data: bytes, *args: str) -> str:
    """``git hash-object -w [ARGS] --stdin``: store ``data`` and return its id."""
    argv = ["git", f"--git-dir={gitdir}", "hash-object", "-w", *args, "--stdin"]
    return subprocess.run(argv, input=data, capture_output=True, check=True).stdout.decode().strip()


def write_tree(gitdir: Path, layout: Layout) -> str:
    """Write ``layout`` as raw tree objects; ``--literally`` lets names like ``..`` through."""

    def key(name: bytes) -> bytes:  # git orders a tree's folders as if they ended in '/'
        return name + b"/" if not isinstance(layout[name], str) else name

    raw = b""
    for name in sorted(layout, key=key):
        value = layout[name]
        if isinstance(value, str):
            mode, oid = b"100644", value
        elif isinstance(value, TreeId):
            mode, oid = b"40000", value.oid
        else:
            mode, oid = b"40000", write_tree(gitdir, value)
        raw += mode + b" " + name + b"\0" + bytes.fromhex(oid)
    return hash_object(gitdir, raw, "-t", "tree", "--literally")


def layout_of(names: Sequence[str], blob: str) -> dict[bytes, Any]:
    """The tree a version holding ``names`` would have (a leading '/' dropped)."""
    root: dict[bytes, Any] = {}
    for name in names:
        node = root
        *folders, leaf = name.lstrip("/").encode().split(b"/")
        for part in folders:
            node = node.setdefault(part, {})
        node[leaf] = blob
    return root


def manifest(names: Sequence[str], blob: str) -> bytes:
    """A manifest listing ``names``, each the PAYLOAD blob, as JSON written by hand."""
    entry = {
        "oid": blob,
        "size": len(PAYLOAD),
        "sha256": hashlib.sha256(PAYLOAD).hexdigest(),
        "content_type": "text/plain",
        "created_at": "2025-01-01T00:00:00.000000Z",
    }
    return json.dumps(
        {
            "format": 1,
            "spec": "s",
            "task": "t",
            "version": 1,
            "created_at": "2025-01-01T00:00:00.000000Z",
            "artifacts": {name: entry for name in names},
        },
        sort_keys=True,
    ).encode()


def craft(gitdir: Path, names: Sequence[str], extra: Layout | None = None) -> str:
    """A store at ``gitdir`` whose ``s/t`` lists ``names``; returns the version's commit."""
    if not gitdir.exists():
        subprocess.run(["git", "init", "-q", "--bare", str(gitdir)], check=True)
    blob = hash_object(gitdir, PAYLOAD)
    layout = {
        **layout_of(names, blob),
        **(extra or {}),
        b".gitstore": {b"manifest.json": hash_object(gitdir, manifest(names, blob))},
    }
    tree = write_tree(gitdir, layout)
    message = "crafted\n\nGitstore-Spec: s\nGitstore-Task: t\nGitstore-Version: 1\n"
    commit = git(gitdir, "commit-tree", tree, "-m", message).stdout.strip()
    git(gitdir, "update-ref", "refs/artifacts/s/t", commit)
    return commit


def listing(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file bytes, link targets, '<dir>' for folders."""
    out: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(folder) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = "-> " + os.readlink(full)
            elif full.is_dir():
                out[rel] = "<dir>"
            else:
                out[rel] = full.read_bytes()
    return out


def run(store: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)


def refused(result: Result, code: int) -> str:
    """Assert exit ``code`` with one ``gitstore:`` line on stderr and nothing on stdout."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitstore: "), result.stderr
    assert result.stdout == ""
    return lines[0]


# -- export ------------------------------------------------------------------------------------


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """Where exports go (``work/out/dir``), with a bystander file the export must not touch."""
    (tmp_path / "work" / "out").mkdir(parents=True)
    (tmp_path / "work" / "bystander.txt").write_bytes(b"mine\n")
    return tmp_path / "work"


ESCAPING_NAMES = {
    "dot-dot": "../x",
    "dot-dot-inside": "a/../../b",
    "deep-dot-dot": "../../../esc",
    "dot-git": ".git/config",
    "control": "two\nlines.txt",
    "escape-sequence": "red\x1b[31m.txt",
    "reserved": ".gitstore/manifest.json.x",
}


@pytest.mark.parametrize("name", ESCAPING_NAMES.values(), ids=ESCAPING_NAMES.keys())
def test_export_refuses_a_name_put_would_refuse_and_writes_nothing(
    store_path: Path, work: Path, name: str
) -> None:
    commit = craft(store_path, ["ok.txt", name])
    before = listing(work)
    line = refused(run(store_path, "export", "s/t", str(work / "out" / "dir")), 3)
    assert f"s/t@{commit}" in line and repr(name) in line
    assert listing(work) == before


def test_export_refuses_an_absolute_name_and_writes_nothing(store_path: Path, work: Path) -> None:
    name = f"{work}/absolute.txt"
    craft(store_path, ["ok.txt", name])
    before = listing(work)
    assert repr(name) in refused(run(store_path, "export", "s/t", str(work / "out" / "dir")), 3)
    assert listing(work) == before


def test_export_into_a_project_refuses_to_replace_its_git_config(
    store_path: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "config").write_bytes(b"[core]\n\tbare = false\n")
    craft(store_path, ["ok.txt", ".git/config"])
    before = listing(tmp_path / "project")
    refused(run(store_path, "export", "s/t", str(project)), 3)
    assert listing(tmp_path / "project") == before


def test_export_refuses_to_write_through_a_symlink_already_in_its_folder(
    store_path: Path, work: Path, tmp_path: Path
) -> None:
    (tmp_path / "etc").mkdir()
    dest = work / "out" / "dir"
    dest.mkdir()
    (dest / "a").symlink_to(tmp_path / "etc")
    commit = craft(store_path, ["ok.txt", "a/passwd"])
    before = listing(work), listing(tmp_path / "etc")
    line = refused(run(store_path, "export", "s/t", str(dest)), 3)
    assert f"s/t@{commit}" in line and "'a/passwd'" in line and "symbolic link" in line
    assert (listing(work), listing(tmp_path / "etc")) == before


def test_export_refuses_to_replace_a_symlink_already_in_its_folder(
    store_path: Path, work: Path, tmp_path: Path
) -> None:
    (tmp_path / "target.txt").write_bytes(b"theirs\n")
    dest = work / "out" / "dir"
    dest.mkdir()
    (dest / "ok.txt").symlink_to(tmp_path / "target.txt")
    craft(store_path, ["ok.txt"])
    before = listing(work)
    refused(run(store_path, "export", "s/t", str(dest)), 3)
    assert listing(work) == before
    assert (tmp_path / "target.txt").read_bytes() == b"theirs\n"


def test_export_into_a_folder_given_as_a_symlink_follows_it(
    store_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    craft(store_path, ["ok.txt", "sub/b.txt"])
    assert run(store_path, "export", "s/t", str(tmp_path / "link")).exit_code == 0
    assert sorted(listing(tmp_path / "real")) == ["ok.txt", "sub", "sub/b.txt"]


def test_library_export_raises_before_writing(store_path: Path, work: Path) -> None:
    craft(store_path, ["ok.txt", "../x"])
    before = listing(work)
    with Store.open(store_path) as s, pytest.raises(InvalidNameError, match=re.escape("'../x'")):
        s.export("s/t", work / "out" / "dir")
    assert listing(work) == before


def test_get_output_of_a_hostile_name_is_refused_and_writes_nothing(
    store_path: Path, work: Path
) -> None:
    craft(store_path, ["ok.txt", "../x"])
    before = listing(work)
    refused(run(store_path, "get", "s/t", "../x", "-o", str(work / "out" / "f")), 3)
    assert listing(work) == before
    # The store's other names do not matter to get -o: FILE is the user's, not the store's.
    assert run(store_path, "get", "s/t", "ok.txt", "-o", str(work / "out" / "f")).exit_code == 0
    assert (work / "out" / "f").read_bytes() == PAYLOAD


# -- text output -------------------------------------------------------------------------------

FORGING = ["ok.txt", "evil\nok.txt  999  text/plain", "red\x1b[31m.txt", "bell\x07\x9b.txt"]


def test_ls_shows_control_characters_in_names_as_escapes(store_path: Path) -> None:
    craft(store_path, FORGING)
    out = run(store_path, "ls", "s/t").stdout
    rows = out.splitlines()[2:]  # after the version's line and the column headers
    assert len(rows) == len(FORGING)
    assert any(r.startswith("evil\\nok.txt  999  text/plain ") for r in rows)
    assert any(r.startswith("red\\x1b[31m.txt ") for r in rows)
    assert any(r.startswith("bell\\x07\\x9b.txt ") for r in rows)
    assert not any(c in out for c in "\x1b\x07\x9b\r")


def test_ls_json_keeps_the_exact_names(store_path: Path) -> None:
    craft(store_path, FORGING)
    result = run(store_path, "ls", "s/t", "--json")
    assert sorted(a["name"] for a in json.loads(result.stdout)["artifacts"]) == sorted(FORGING)
    assert "\\u001b" in result.stdout  # JSON's own escape, as before


def test_verify_names_bad_names_escaped_on_their_own_lines(store_path: Path) -> None:
    craft(store_path, ["ok.txt", "evil\nname.txt", "../x"])
    result = run(store_path, "verify")
    assert result.exit_code == 6
    # One problem per version: the first rule it breaks, as a pull would refuse it.
    (problem,) = result.stdout.splitlines()
    assert problem.startswith("s/t@") and "'../x'" in problem and "'..'" in problem


def test_an_error_quoting_a_path_shows_its_escape_sequence_as_text(
    store_path: Path, tmp_path: Path
) -> None:
    line = refused(run(store_path, "put", "s/t", str(tmp_path / "red\x1b[31m.log")), 7)
    assert "red\\x1b[31m.log" in line


# -- a tree 10,000 levels deep -----------------------------------------------------------------


@pytest.fixture
def deep_store(store_path: Path) -> Path:
    """A valid-looking version (manifest: ok.txt) whose tree also holds ``deep/d/d/.../leaf``."""
    subprocess.run(["git", "init", "-q", "--bare", str(store_path)], check=True)
    leaf = hash_object(store_path, b"leaf\n")
    trees = []
    inner = Tree()
    inner.add(b"leaf", 0o100644, ObjectID(leaf.encode()))
    trees.append(inner)
    for _ in range(10_000):
        outer = Tree()
        outer.add(b"d", 0o040000, trees[-1].id)
        trees.append(outer)
    repo = Repo(str(store_path))
    try:
        repo.object_store.add_objects([(t, None) for t in trees])
    finally:
        repo.close()
    commit = craft(store_path, ["ok.txt"], extra={b"deep": TreeId(trees[-1].id.decode())})
    # Stock git sees the nesting: 10,000 folders, then the leaf.
    deepest = git(store_path, "rev-parse", f"{commit}:deep/{'d/' * 10_000}leaf").stdout.strip()
    assert deepest == leaf
    return store_path


def test_verify_reports_a_tree_too_deep_for_any_name(deep_store: Path) -> None:
    result = run(deep_store, "verify")
    assert result.exit_code == 6, (result.stdout, result.stderr)
    # Refused at the first folder the manifest does not list, without walking 10,000 levels.
    assert "its tree holds 'deep/', which the manifest does not list" in result.stdout
    assert result.stderr == "gitstore: verify found 1 problem\n"


def test_readers_of_the_manifest_are_untroubled_by_a_deep_tree(
    deep_store: Path, tmp_path: Path
) -> None:
    assert "ok.txt" in run(deep_store, "ls", "s/t").stdout
    assert "ok.txt" in run(deep_store, "show", "s/t").stdout
    assert run(deep_store, "export", "s/t", str(tmp_path / "e")).exit_code == 0
    assert listing(tmp_path / "e") == {"ok.txt": PAYLOAD}


def test_show_log_and_find_escape_messages_run_ids_and_metadata(store_path: Path) -> None:
    with Store.open(store_path, create=True) as s:
        s.put(
            "s/t",
            {"a.txt": b"x"},
            message="done\x1b[2J",
            run_id="run\x1b]0;title\x07",
            metadata={"note": "two\nlines"},
        )
    for args in (("show", "s/t"), ("log", "s/t"), ("find", "--task", "s/t")):
        out = run(store_path, *args).stdout
        assert "\x1b" not in out and "\x07" not in out, args
        assert "run\\x1b]0;title\\x07" in out, args
    show = run(store_path, "show", "s/t").stdout
    assert "done\\x1b[2J" in show and "note=two\\nlines" in show


def test_printable_keeps_ordinary_unicode_and_escapes_what_moves_the_cursor() -> None:
    assert printable("résumé 日本語 ✓ a\\b") == "résumé 日本語 ✓ a\\b"
    assert printable("a\u2028b\u202ec\udcff") == "a\\u2028b\\u202ec\\udcff"
    assert printable("\t\r\n\x00\x7f\x85") == "\\t\\r\\n\\x00\\x7f\\x85"
    assert printable(printable("x\x1by")) == printable("x\x1by")
