"""Every reader on a store that stock git wrote with hostile content: no crash, no escape.

A store is not trusted either: the corpus of :mod:`hostile` is opened as the store itself (as a
repository written by another tool would be), and every reader runs on it. None may crash
(exit 70), print a raw control character, or write a file outside the folder it was given, and
``verify`` reports each damaged version (exit 6) instead of saying all is well.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hostile import CASES, Case, build_case

from gitstore.cli.main import cli

READERS = [
    ("ls", "s/t"),
    ("show", "s/t"),
    ("log", "s/t"),
    ("log", "--jsonl"),
    ("diff", "s/t"),
    ("scan",),
    ("find",),
    ("get", "s/t", "ok.txt"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("hostile-stores")
    yield {case.id: build_case(case, root / f"{case.id}.git")[0] for case in CASES}


def run(store: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)


def files_under(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_readers_never_crash_nor_print_control_characters(
    corpus: dict[str, Path], case: Case
) -> None:
    for args in READERS:
        result = run(corpus[case.id], *args)
        assert result.exit_code != 70, (args, result.stderr)
        assert len(result.stderr.splitlines()) <= 1, (args, result.stderr)
        if args[0] != "get":
            shown = result.stdout + result.stderr
            assert not any(ch in shown for ch in "\x1b\r\x00"), (args, shown)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_export_writes_nothing_outside_its_folder(
    corpus: dict[str, Path], case: Case, tmp_path: Path
) -> None:
    box = tmp_path / "box"
    dest = box / "out" / "dir"
    dest.mkdir(parents=True)
    result = run(corpus[case.id], "export", "s/t", str(dest))
    assert result.exit_code != 70, result.stderr
    # Whatever happened, every file written is inside dest and carries a name put would accept.
    outside = {p for p in files_under(box) if not p.startswith(os.path.join("out", "dir") + os.sep)}
    assert outside == set()
    for rel in files_under(dest):
        assert ".." not in rel.split(os.sep) and ".git" not in rel.lower().split(os.sep)
    if result.exit_code != 0:
        assert files_under(dest) == set(), "a refused export must write nothing"


@pytest.mark.parametrize("case", [c for c in CASES if c.code == 15], ids=lambda c: c.id)
def test_verify_reports_a_version_that_breaks_the_rules(
    corpus: dict[str, Path], case: Case
) -> None:
    result = run(corpus[case.id], "verify")
    assert result.exit_code == 6, result.stdout + result.stderr
    assert "s/t@" in result.stdout
