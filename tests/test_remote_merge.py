"""The merge version a pull makes: union, who keeps a name, clashes, unrelated histories."""

from __future__ import annotations

import re
import time
from pathlib import Path

from click.testing import CliRunner

from gitstore import Store
from gitstore import remote as R
from gitstore.cli.main import cli


def two_stores(tmp_path: Path) -> tuple[Store, Store]:
    return (
        Store.open(tmp_path / "a.git", create=True),
        Store.open(tmp_path / "b.git", create=True),
    )


def test_unrelated_histories_merge_with_every_differing_name_a_conflict(tmp_path: Path) -> None:
    a, b = two_stores(tmp_path)
    a.put("s/t", {"x": "a", "same": "1", "only-a": "a"})
    time.sleep(1.05)
    b.put("s/t", {"x": "b", "same": "1", "only-b": "b"})
    assert b.path is not None
    (merge,) = R.pull(a, b.path).merged
    assert merge.conflicts == ("x",)
    m = a.show("s/t")
    assert {x.name for x in m.artifacts} == {"x", "same", "only-a", "only-b"}
    assert a.get("s/t", "x") == b"b"  # b's head is newer
    assert m.version == 2
    # The text of show names the conflicts too.
    shown = CliRunner().invoke(cli, ["--store", str(a.path), "show", "s/t"])
    assert re.search(r"^conflicts: +x$", shown.stdout, re.M)
    a.close()
    b.close()


def test_a_file_on_one_side_and_a_folder_on_the_other(tmp_path: Path) -> None:
    a, b = two_stores(tmp_path)
    a.put("s/t", {"out": "a file"})
    time.sleep(1.05)
    b.put("s/t", {"out/inner.txt": "in a folder"})
    assert b.path is not None and a.path is not None
    (merge,) = R.pull(a, b.path).merged
    # b is newer: its folder stays; a's file is out of the tree, kept in history, and reported.
    assert merge.conflicts == ("out",)
    assert [x.name for x in a.show("s/t").artifacts] == ["out/inner.txt"]
    assert a.get(f"s/t@{merge.old}", "out") == b"a file"
    a.close()
    b.close()


def test_a_deleted_name_comes_back_and_one_sided_changes_win(tmp_path: Path) -> None:
    a, b = two_stores(tmp_path)
    a.put("s/t", {"keep": "base", "gone": "base", "changed": "base"})
    assert a.path is not None and b.path is not None
    R.pull(b, a.path)
    b.put("s/t", {"changed": "by b"})  # b's head will be the older one
    time.sleep(1.05)
    a.rm("s/t", ["gone"])
    a.put("s/t", {"new": "a"})
    (merge,) = R.pull(a, b.path).merged
    assert merge.conflicts == ()
    assert a.get("s/t", "changed") == b"by b"  # only b changed it: b's bytes, though b is older
    assert a.get("s/t", "gone") == b"base"  # the union: a's delete does not win
    assert a.get("s/t", "new") == b"a"
    a.close()
    b.close()


def test_merge_of_merges_stays_deterministic(tmp_path: Path) -> None:
    """After criss-cross merges, both sides still compute the same merge of the same heads."""
    a, b = two_stores(tmp_path)
    assert a.path is not None and b.path is not None
    a.put("s/t", {"x": "0"})
    R.pull(b, a.path)
    for i in range(3):
        a.put("s/t", {f"a{i}": "a", "x": f"a{i}"})
        b.put("s/t", {f"b{i}": "b", "x": f"b{i}"})
        R.sync(a, b.path)
    assert a.heads() == b.heads()
    names = {x.name for x in a.show("s/t").artifacts}
    assert names == {"x", "a0", "a1", "a2", "b0", "b1", "b2"}
    a.close()
    b.close()
