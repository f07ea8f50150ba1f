"""Every way into a store refuses a hostile version whole: clone, pull and bundle import.

The corpus (:mod:`hostile`) is built with stock git plumbing. Each case goes through each way in
through the CLI; each must exit with the case's code and one line on stderr that names the task,
and leave the receiving store's refs exactly as they were (a clone leaves no store at all), even
for the good task the same remote holds beside the bad one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hostile import CASES, MODE_FILE, B, Case, Repo, build_case, hostile_version, version
from support import git

from gitstore import GitstoreError, Store
from gitstore.cli.main import cli
from gitstore.validate import check_incoming


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, str]]]:
    """Every hostile store, built once for the module (they are only read)."""
    root = tmp_path_factory.mktemp("hostile")
    yield {case.id: build_case(case, root / f"{case.id}.git") for case in CASES}


def run(store: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)


def refs(gitdir: Path) -> str:
    return git(gitdir, "for-each-ref").stdout


def check_refused(result: Result, case: Case, head: str) -> None:
    assert result.exit_code == case.code, (case.id, result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "refs/artifacts/s/t" in lines[0]
    if case.code == 15:
        assert "no ref moved" in lines[0]
    # Escaped: a name in the message can neither forge a line nor drive the terminal.
    assert "\x1b" not in result.stderr and "\r" not in result.stderr


def test_the_corpus_holds_every_finding() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 45


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_clone_refuses_a_hostile_store_and_leaves_nothing(
    corpus: dict[str, tuple[Path, str]], case: Case, tmp_path: Path
) -> None:
    remote, head = corpus[case.id]
    dest = tmp_path / "clone.git"
    result = run(dest, "clone", str(remote), str(dest))
    check_refused(result, case, head)
    assert not dest.exists()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_pull_refuses_a_hostile_store_and_moves_no_ref(
    corpus: dict[str, tuple[Path, str]], case: Case, tmp_path: Path
) -> None:
    remote, head = corpus[case.id]
    dest = tmp_path / "mine.git"
    with Store.open(dest, create=True) as s:
        s.put("mine/t", {"x": "1"})
    before = refs(dest)
    check_refused(run(dest, "pull", str(remote)), case, head)
    assert refs(dest) == before


@pytest.mark.parametrize("case", [c for c in CASES if c.bundle], ids=lambda c: c.id)
def test_bundle_import_refuses_a_hostile_bundle_and_moves_no_ref(
    corpus: dict[str, tuple[Path, str]], case: Case, tmp_path: Path
) -> None:
    remote, head = corpus[case.id]
    bundle = tmp_path / "evil.bundle"
    git(remote, "bundle", "create", str(bundle), "refs/artifacts/s/t", "refs/artifacts/a/ok")
    dest = tmp_path / "mine.git"
    with Store.open(dest, create=True) as s:
        s.put("mine/t", {"x": "1"})
    before = refs(dest)
    check_refused(run(dest, "bundle", "import", str(bundle)), case, head)
    assert refs(dest) == before


def test_a_good_store_made_the_same_way_is_accepted(tmp_path: Path) -> None:
    """The corpus's own good versions pass: the refusals above are about the damage alone."""
    repo = Repo(tmp_path / "good.git")
    first = version(repo, {"log.log": b"one\n", "out/r.json": b"{}\n"})
    second = version(repo, {"log.log": b"two\n"}, parents=(first,), number=2)
    repo.set_ref("refs/artifacts/s/t", second)
    dest = tmp_path / "c.git"
    result = run(dest, "clone", str(repo.path), str(dest))
    assert result.exit_code == 0, result.stderr
    with Store.open(dest) as s:
        assert s.get("s/t", "log.log") == b"two\n"
        assert [v.version for v in s.log("s/t")] == [2, 1]


def test_a_pull_on_top_of_local_history_checks_only_what_is_new(tmp_path: Path) -> None:
    """A bad version pushed on top of a history the store already holds is still refused."""
    src = tmp_path / "src.git"
    with Store.open(src, create=True) as s:
        s.put("s/t", {"ok.txt": "1"})
    dest = tmp_path / "dest.git"
    assert run(dest, "clone", str(src), str(dest)).exit_code == 0
    repo = Repo(src, create=False)
    base = git(src, "rev-parse", "refs/artifacts/s/t").stdout.strip()
    b = repo.blob(B)
    bad = hostile_version(
        repo,
        {"ok.txt": B},
        [(MODE_FILE, b"ok.txt", b), (MODE_FILE, b"hidden.txt", b)],
        parents=(base,),
        number=2,
    )
    repo.set_ref("refs/artifacts/s/t", bad)
    before = refs(dest)
    result = run(dest, "pull")
    assert result.exit_code == 15, result.stderr
    assert "hidden.txt" in result.stderr and bad in result.stderr
    assert refs(dest) == before


def test_a_refused_fetch_leaves_only_unreferenced_objects(tmp_path: Path) -> None:
    """What a refused pull fetched is not reachable from any ref: stock fsck sees it dangling."""
    case = next(c for c in CASES if c.id == "dotdot-folder")
    remote, head = build_case(case, tmp_path / "evil.git")
    dest = tmp_path / "mine.git"
    with Store.open(dest, create=True) as s:
        s.put("mine/t", {"x": "1"})
    assert run(dest, "pull", str(remote)).exit_code == 15
    reachable = subprocess.run(
        ["git", f"--git-dir={dest}", "rev-list", "--all"], capture_output=True, text=True
    ).stdout
    assert head not in reachable


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_check_refuses_each_case_with_the_objects_already_here(
    corpus: dict[str, tuple[Path, str]], case: Case
) -> None:
    """The validation itself, without a transport that might refuse first (stock git does for
    some): the hostile repository is opened as the store, as the HTTP service's receive-pack
    will hold a pushed pack's objects before any ref moves."""
    remote, head = corpus[case.id]
    with Store.open(remote) as s:
        with pytest.raises(GitstoreError) as info:
            check_incoming(
                s.versions.objects, "s", "t", head, local_head=None, known_number=s.versions.number
            )
        assert info.value.exit_code == case.direct_code, str(info.value)
        assert "refs/artifacts/s/t" in str(info.value)
        # The good task beside it passes the same check.
        ok = s.heads()["a/ok"]
        check_incoming(
            s.versions.objects, "a", "ok", ok, local_head=None, known_number=s.versions.number
        )


def test_a_manifest_over_the_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding a manifest holds it whole, so its size is capped before it is read."""
    import gitstore.validate as validate

    src = tmp_path / "src.git"
    with Store.open(src, create=True) as s:
        s.put("s/t", {f"f{i}.txt": str(i) for i in range(20)})
    monkeypatch.setattr(validate, "MAX_MANIFEST_BYTES", 1000)
    dest = tmp_path / "dest.git"
    result = run(dest, "clone", str(src), str(dest))
    assert result.exit_code == 15
    assert "manifest is" in result.stderr and "at most 1000" in result.stderr
    assert not dest.exists()
