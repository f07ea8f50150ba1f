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
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from click.testing import CliRunner, Result
from support import git

from cli.main import cli
from cli.output import printable
from gitstore import Store

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
    commit = git(gitdir, "commit-tree", tree, "-m", "crafted").stdout.strip()
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


# -- text output -------------------------------------------------------------------------------

FORGING = ["ok.txt", "evil\nok.txt  999  text/plain", "red\x1b[31m.txt", "bell\x07\x9b.txt"]


def test_ls_shows_control_characters_in_names_as_escapes(store_path: Path) -> None:
    craft(store_path, FORGING)
    out = run(store_path, "ls", "s/t").stdout
    rows = out.splitlines()[1:]
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


def test_an_error_quoting_a_path_shows_its_escape_sequence_as_text(
    store_path: Path, tmp_path: Path
) -> None:
    line = refused(run(store_path, "put", "s/t", str(tmp_path / "red\x1b[31m.log")), 7)
    assert "red\\x1b[31m.log" in line


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
