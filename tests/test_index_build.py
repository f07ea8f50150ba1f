"""The first build of the query index (issue 13): versions read many at a time the quick way,
and half of a big store's tasks read by a helper process. Neither may change what a query
answers or how it fails: each is held to the careful one-version-at-a-time read, on good stores
and on every hostile store of :mod:`hostile`, and on a pack damaged under a manifest."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hostile import CASES, Case, build_case
from support import compressible, git

import gitstore.query as query
from gitstore import Store
from gitstore.backend.objects import DiskObjects
from gitstore.cli.main import cli
from gitstore.versions import Versions

COMMANDS = [("log", "--jsonl"), ("find",), ("find", "--run", "r1")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("hostile-index")
    yield {case.id: build_case(case, root / f"{case.id}.git")[0] for case in CASES}


def _answers(store: Path) -> list[tuple[int, str, str]]:
    """Exit code, output and error of each query of COMMANDS, each with no index on disk."""
    out = []
    for args in COMMANDS:
        (store / "gitstore" / "index" / "versions.msgpack").unlink(missing_ok=True)
        r = CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)
        out.append((r.exit_code, r.stdout, r.stderr))
    return out


def _careful_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every version read one at a time, the careful way (what the index read before)."""

    def nothing_quick(self: Versions, commits: Sequence[str]) -> list[None]:
        return [None] * len(commits)

    monkeypatch.setattr(Versions, "read_many", nothing_quick)


def _helped(monkeypatch: pytest.MonkeyPatch) -> list[list[bytes | None]]:
    """Every refresh of a spec's tasks shared with the helper; returns the helper's answers."""
    answers: list[list[bytes | None]] = []
    ask = query._Helper._ask

    def recorded(proc: Any, request: bytes) -> list[bytes | None]:
        answers.append(ask(proc, request))
        return answers[-1]

    monkeypatch.setattr(query, "_HELP_AT", 1)
    monkeypatch.setattr(query._Helper, "_ask", staticmethod(recorded))
    return answers


def _store(path: Path) -> Path:
    """A good store: tasks with several versions, a merge, runs and tags."""
    with Store.open(path, create=True) as s:
        for i in range(12):
            s.put(f"s{i % 2}/t{i % 5}", {"log.log": f"line {i}\n"}, run_id=f"r{i % 3}")
    return path


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_quick_read_answers_as_the_careful_read_on_a_hostile_store(
    corpus: dict[str, Path], case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick = _answers(corpus[case.id])
    _careful_only(monkeypatch)
    assert _answers(corpus[case.id]) == quick


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_helper_answers_as_this_process_on_a_hostile_store(
    corpus: dict[str, Path], case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = _answers(corpus[case.id])
    answers = _helped(monkeypatch)
    assert _answers(corpus[case.id]) == alone
    assert answers, "the helper was never asked"


def test_the_helper_reads_the_same_records_as_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _store(tmp_path / "s.git")
    alone = _answers(path)
    answers = _helped(monkeypatch)
    assert _answers(path) == alone
    # It read versions itself (a helper that failed at everything would be answered for here).
    assert any(raw is not None for answer in answers for raw in answer)


def test_a_damaged_pack_entry_fails_the_same_with_the_quick_read_and_the_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _store(tmp_path / "s.git")
    git(path, "repack", "-a", "-d", "-q")
    with Store.open(path) as s:
        head = s.heads()["s1/t3"]
    (idx,) = (path / "objects" / "pack").glob("*.idx")
    with idx.open("rb") as f:
        listing = subprocess.run(["git", "show-index"], stdin=f, capture_output=True, check=True)
    offsets = {
        line.split()[1]: int(line.split()[0])
        for line in listing.stdout.decode().split("\n")
        if line
    }
    pack = idx.with_suffix(".pack")
    data = bytearray(pack.read_bytes())
    data[offsets[head] + 4 : offsets[head] + 12] = b"\x00" * 8  # inside the commit's stream
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))
    quick = _answers(path)
    assert quick[0][0] != 0 and head in quick[0][2]  # refused, naming the damaged commit
    _helped(monkeypatch)
    assert _answers(path) == quick
    monkeypatch.undo()
    _careful_only(monkeypatch)
    assert _answers(path) == quick


def test_many_objects_read_at_once_are_what_one_read_gives(tmp_path: Path) -> None:
    path = _store(tmp_path / "s.git")  # packs as gitstore writes them: no deltas
    with Store.open(path) as s:
        loose = s.put("s0/loose", {"big.log": compressible(2 << 20)}).artifacts[0].oid
    assert (path / "objects" / loose[:2] / loose[2:]).exists()
    oids = [o[:40] for o in git(path, "rev-list", "--objects", "--all").stdout.splitlines()]
    with Store.open(path) as s:
        objects = s.versions.objects
        assert isinstance(objects, DiskObjects)
        many = objects.get_raw_many([*oids, "0" * 40, "not hex"])
        # A loose object, a missing one and no id at all are left to the careful way.
        assert many == [None if o == loose else objects.get_raw(o) for o in oids] + [None, None]


def test_a_script_that_builds_the_index_is_not_run_again_by_the_helper(tmp_path: Path) -> None:
    # A script without a __main__ guard (multiprocessing's spawn would run it again).
    path = _store(tmp_path / "s.git")
    script = tmp_path / "script.py"
    script.write_text(
        "import gitstore.query as q\n"
        "from gitstore import Store\n"
        "q._HELP_AT = 1\n"
        "ask = q._Helper._ask\n"
        "def told(proc, request):\n"
        "    answer = ask(proc, request)\n"
        "    print('helped')\n"
        "    return answer\n"
        "q._Helper._ask = staticmethod(told)\n"
        "print('ran')\n"
        f"with Store.open({str(path)!r}) as s:\n"
        "    print(len(q.find(s, artifacts=False)))\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == ["ran", "helped", "12"]


def test_a_helper_started_early_but_not_needed_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.git"
    with Store.open(path, create=True) as s:
        for i in range(4):
            s.put(f"a/t{i}", {"log.log": f"line {i}\n"}, run_id="r1")
        s.put("b/t0", {"log.log": "b\n"}, run_id="r1")
    alone = _answers(path)
    # Spec a's four tasks promise eight over the two specs, spec b brings the count to five:
    # the helper starts after a, and is not asked.
    monkeypatch.setattr(query, "_HELP_AT", 6)
    started: list[subprocess.Popen[bytes]] = []
    start = query._Helper.start

    def recorded(helper: query._Helper) -> bool:
        ok = start(helper)
        started.append(helper._proc)  # type: ignore[arg-type]
        return ok

    monkeypatch.setattr(query._Helper, "start", recorded)
    answers = _helped(monkeypatch)
    monkeypatch.setattr(query, "_HELP_AT", 6)
    assert _answers(path) == alone
    assert started and answers == []
    assert all(proc.poll() is not None for proc in started)  # stopped, and waited for
