"""History as JSON Lines written straight from the index's records (issue 13): the lines of
tasks read in a query are made as they are read (by the helper process for its half), the
others from the index. Either way each line must be, byte for byte, what encoding the record's
dict (``iter_history``, held equal to ``Store.show(...).to_dict()``) gives."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from hostile import CASES, Case, build_case

import gitstore.query as query
from gitstore import Artifact, Store
from gitstore.cli.main import cli
from gitstore.meta import ArtifactEntry, Truncation
from gitstore.query import VersionRecord, iter_history, write_jsonl

# How write_jsonl encoded each record before it wrote lines straight from the records.
_reference = msgspec.json.Encoder(order="sorted")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("hostile-lines")
    yield {case.id: build_case(case, root / f"{case.id}.git")[0] for case in CASES}


def _index(store: Path) -> Path:
    return store / "gitstore" / "index" / "versions.msgpack"


def _log(store: Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["--store", str(store), "log", "--jsonl"], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _expected(store: Path) -> str:
    with Store.open(store) as s:
        return "".join(_reference.encode(d).decode() + "\n" for d in iter_history(s))


def _odd_store(path: Path) -> Path:
    """Versions with what JSON and URIs make hard: names to quote, control characters, keys
    that sort differently as text and as code points, floats, big integers, a truncation."""
    cut = Truncation(original_size=10, original_sha256="a" * 64, kept=[(0, 4), (8, 10)])
    metadata = {
        "é": 1,
        "Z": [0.1, 1e300, -0.0, 2**63, None, True],
        "a": {"\x00nul": "\x1b[31m\u2028\n\t", "": {}},
        "_": "ü ☃ 𝄞",
    }
    with Store.open(path, create=True) as s:
        s.put(
            "odd/t0",
            {
                "a b/ü %.txt": b"x",
                "x~y-z_.w": Artifact(b"y", executable=True, tags={"k": "v", "B": "\x07"}),
                "cut.log": Artifact(b"0123", truncated=cut, masked_secrets=2),
            },
            run_id="r\x01",
            message="line 1\nline 2\r\x00",
            metadata=metadata,
        )
        s.put("odd/t0", {"second": b"2"}, metadata={"n": -1})
        s.put("odd/t1", {"?#&=+": b"q"}, content_type="text/x-odd")
        for i in range(6):
            s.put(f"more{i % 3}/t{i}", {"o": b"%d" % i}, run_id=f"r{i}")
    return path


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_log_jsonl_is_the_same_cold_warm_and_with_the_helper_on_a_hostile_store(
    corpus: dict[str, Path], case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = corpus[case.id]
    _index(store).unlink(missing_ok=True)
    cold = _log(store)  # lines made as the versions are read
    warm = _log(store)  # lines made from the index
    assert warm == cold
    if cold[0] == 0:
        assert cold[1] == _expected(store)
    monkeypatch.setattr(query, "_HELP_AT", 1)  # half the tasks read by the helper
    _index(store).unlink(missing_ok=True)
    assert _log(store) == cold
    monkeypatch.setattr(query, "_SEND_AT", 1)  # asked while the refs are still read
    _index(store).unlink(missing_ok=True)
    assert _log(store) == cold


def test_odd_versions_are_written_as_their_records_encode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _odd_store(tmp_path / "s.git")
    expected = _expected(store)
    assert "%C3%BC%20%25.txt" in expected and '"\\u0000nul"' in expected
    _index(store).unlink()
    assert _log(store) == (0, expected, "")  # cold
    assert _log(store) == (0, expected, "")  # warm
    monkeypatch.setattr(query, "_HELP_AT", 1)
    _index(store).unlink()
    assert _log(store) == (0, expected, "")  # with the helper
    monkeypatch.setattr(query, "_SEND_AT", 1)
    asked: list[int] = []
    walk = query._Helper.walk

    def recorded(helper: query._Helper, moved: list[Any], lines: bool = False) -> Any:
        asked.append(len(moved))
        return walk(helper, moved, lines)

    monkeypatch.setattr(query._Helper, "walk", recorded)
    _index(store).unlink()
    assert _log(store) == (0, expected, "")  # the helper asked while refs are still read
    assert len(asked) >= 2 and sum(asked) == query._helper_part(8)  # its part, in pieces


def test_a_limit_counts_lines_made_while_reading(tmp_path: Path) -> None:
    store = _odd_store(tmp_path / "s.git")
    # Split at newlines only (str.splitlines would split inside a value at U+2028 too).
    expected = [line + "\n" for line in _expected(store).split("\n")[:-1]]
    for limit in range(len(expected) + 1):
        _index(store).unlink()
        out = io.StringIO()
        with Store.open(store) as s:
            assert write_jsonl(s, out, limit=limit) == limit
        assert out.getvalue() == "".join(expected[:limit])


@pytest.mark.parametrize("conflicts", [[], ["a.txt", "b/c"]])
def test_a_line_is_the_encoded_dict_of_its_record(conflicts: list[str]) -> None:
    entry = ArtifactEntry(
        oid="0" * 40, size=3, sha256="1" * 64, content_type="text/plain", created_at="t"
    )
    record = VersionRecord(
        "s", "t", "2" * 40, 3, "t", None, ["3" * 40], {"b b": entry, "a": entry}, None, {}
    )
    record.conflicts = conflicts
    line = query._jsonl.encode(query._line(record))
    assert line == _reference.encode(query._record_dict(record))
    assert (b'"conflicts"' in line) == bool(conflicts)
