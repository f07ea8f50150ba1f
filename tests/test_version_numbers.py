"""A version number never silently changes meaning: after a pull merges diverged histories, `@vN`
resolves to the commit it named before, or is refused as ambiguous (exit 17) naming each
candidate and its side; `log` draws the history's shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import git

from gitstore import AmbiguousRevisionError, InvalidNameError, Store
from gitstore import remote as R
from gitstore.cli.main import cli
from gitstore.names import Address, Rev


def run(store: Path | str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--store", str(store), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def diverged(tmp_path: Path) -> tuple[Store, dict[str, str]]:
    """Store ``a`` after pulling ``b``: both had v1 in common, then each made its own v2 and v3.

    Returns ``a`` and the commits: ``v1``, ``a2``, ``a3`` (made in a), ``b2``, ``b3`` (in b),
    ``merge``.
    """
    a = Store.open(tmp_path / "a.git", create=True)
    v1 = a.put("s/t", {"x": "1"}).commit
    assert a.path is not None
    b, _ = R.clone(a.path, tmp_path / "b.git")
    commits = {"v1": v1}
    for n in (2, 3):
        commits[f"a{n}"] = a.put("s/t", {"x": f"a{n}"}).commit
        commits[f"b{n}"] = b.put("s/t", {"y": f"b{n}"}).commit
    assert b.path is not None
    before = {n: a.show(f"s/t@v{n}").commit for n in (1, 2, 3)}
    assert before == {1: v1, 2: commits["a2"], 3: commits["a3"]}
    (merge,) = R.pull(a, b.path).merged
    commits["merge"] = str(merge.new)
    b.close()
    yield a, commits
    a.close()


def test_a_number_both_sides_made_is_refused_naming_both_commits(
    diverged: tuple[Store, dict[str, str]],
) -> None:
    a, c = diverged
    with pytest.raises(AmbiguousRevisionError) as caught:
        a.show("s/t@v3")
    assert set(caught.value.candidates) == {c["a3"], c["b3"]}
    assert c["a3"] in str(caught.value) and c["b3"] in str(caught.value)
    assert "s/t@<commit>" in str(caught.value)
    # Still an InvalidNameError for handlers written before the class existed.
    assert isinstance(caught.value, InvalidNameError)


def test_the_error_says_which_side_of_the_merge_each_candidate_is_on(
    diverged: tuple[Store, dict[str, str]],
) -> None:
    a, c = diverged
    with pytest.raises(AmbiguousRevisionError) as caught:
        a.show("s/t@v2")
    text = str(caught.value)
    # Merge parents: the newer head first; stock git says which parent each side is.
    first, second = git(
        a.path or "", "rev-parse", f"{c['merge']}^1", f"{c['merge']}^2"
    ).stdout.split()
    side = {first: "first", second: "second"}
    for mine in (c["a2"], c["b2"]):
        head = c["a3"] if mine == c["a2"] else c["b3"]
        assert re.search(
            rf"{mine} \(made [^)]*, on the {side[head]} parent's side of merge {c['merge'][:12]}",
            text,
        ), text


def test_a_number_only_one_side_has_still_names_the_same_commit(
    diverged: tuple[Store, dict[str, str]],
) -> None:
    a, c = diverged
    assert a.show("s/t@v1").commit == c["v1"]
    assert a.show("s/t@v4").commit == c["merge"]


def test_no_number_resolves_to_another_commit_than_before_the_pull(
    diverged: tuple[Store, dict[str, str]],
) -> None:
    a, c = diverged
    before = {1: c["v1"], 2: c["a2"], 3: c["a3"]}
    for n, commit in before.items():
        try:
            assert a.show(f"s/t@v{n}").commit == commit
        except AmbiguousRevisionError as e:
            assert commit in e.candidates


def test_the_cli_exits_17_and_a_commit_picks_one(diverged: tuple[Store, dict[str, str]]) -> None:
    a, c = diverged
    code, _, err = run(a.path or "", "show", "s/t@v3")
    assert code == 17
    assert err.count("\n") == 1 and "ambiguous" in err
    code, out, _ = run(a.path or "", "show", f"s/t@{c['b3']}", "--json")
    assert code == 0 and json.loads(out)["commit"] == c["b3"]


def test_a_shared_commit_prefix_is_ambiguous_too(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.git", create=True) as s:
        commits = [s.put("s/t", {"x": str(i)}).commit for i in range(40)]
        # Among 40 commits, two share their first hex digit: pick such a pair's prefix (4 digits
        # are the least a prefix may have, so look for a shared 1-digit start and pad it).
        by_first: dict[str, list[str]] = {}
        for commit in commits:
            by_first.setdefault(commit[0], []).append(commit)
        pairs = [v for v in by_first.values() if len(v) > 1]
        assert pairs
        # A prefix shorter than 4 is refused by the address rules: ask the resolver directly.
        with pytest.raises(AmbiguousRevisionError) as caught:
            s.versions.resolve(Address("s", "t", Rev("commit", pairs[0][0][0])))
        assert set(pairs[0]) <= set(caught.value.candidates)


def test_log_draws_the_two_sides_of_the_merge(diverged: tuple[Store, dict[str, str]]) -> None:
    a, c = diverged
    code, out, _ = run(a.path or "", "log", "s/t")
    assert code == 0
    lines = out.splitlines()[1:]  # under the header row
    assert lines[0].startswith("*") and c["merge"][:12] in lines[0]
    assert lines[1].rstrip() == "|\\"
    # Each side's versions sit in their own lane until they meet at v1.
    lane = {c[k][:12]: line[:3] for line in lines for k in c if c[k][:12] in line}
    assert {lane[c["a3"][:12]], lane[c["b3"][:12]]} == {"* |", "| *"}
    assert lane[c["a2"][:12]] == lane[c["a3"][:12]]
    assert lane[c["b2"][:12]] == lane[c["b3"][:12]]
    assert lines[-2].rstrip() == "|/"
    assert lines[-1].startswith("*") and c["v1"][:12] in lines[-1]


def test_log_of_a_linear_history_draws_no_graph(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.git", create=True) as s:
        s.put("s/t", {"x": "1"})
        s.put("s/t", {"x": "2"})
    code, out, _ = run(tmp_path / "s.git", "log", "s/t")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["VERSION", "v2", "v1"]


def test_log_json_has_both_parents_of_the_merge(diverged: tuple[Store, dict[str, str]]) -> None:
    a, c = diverged
    code, out, _ = run(a.path or "", "log", "s/t", "--json")
    assert code == 0
    (merge,) = [v for v in json.loads(out) if v["commit"] == c["merge"]]
    parents = git(a.path or "", "rev-parse", f"{c['merge']}^1", f"{c['merge']}^2").stdout.split()
    assert merge["parents"] == parents
