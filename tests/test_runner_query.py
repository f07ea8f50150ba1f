"""Queries, delete by run and history as JSON Lines, from a runner's point of view: many runs
write many tasks; a runner (or a person) asks what one run wrote, and removes it."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gitstore import Artifact, Store
from gitstore.query import delete_run, find, iter_history, write_jsonl

# The store fixture's tests also run against a store served over HTTP (see conftest.py).
pytestmark = pytest.mark.served


def _fill(store: Store) -> None:
    store.put("fix/t1", {"log.log": "a"}, run_id="r1", tags={"model": "m1", "kind": "log"})
    store.put("fix/t2", {"log.log": "b"}, run_id="r1", tags={"model": "m2"})
    store.put("fix/t1", {"log.log": "c"}, run_id="r2", tags={"model": "m1"})
    store.put(
        "docs/t1",
        {"test.json": Artifact(b"{}", tags={"model": "m1", "kind": "tests"})},
        run_id="r2",
    )


def test_find_by_run_newest_first(store: Store) -> None:
    _fill(store)
    assert [(v.spec, v.task, v.version) for v in find(store, run="r1")] == [
        ("fix", "t2", 1),
        ("fix", "t1", 1),
    ]
    assert [v.task for v in find(store, run="r2", limit=1)] == ["t1"]
    assert find(store, run="nope") == []


def test_find_by_tags_all_must_match_on_one_artifact(store: Store) -> None:
    _fill(store)
    hits = find(store, tags={"model": "m1", "kind": "tests"})
    assert [(v.spec, v.task) for v in hits] == [("docs", "t1")]
    assert len(find(store, tags={"model": "m1"})) == 3
    assert find(store, tags={"model": "m2", "kind": "log"}) == []
    assert [v.spec for v in find(store, content_type="application/json")] == ["docs"]
    assert len(find(store, content_type="text/*")) == 3


def test_find_by_pattern_and_time(store: Store) -> None:
    _fill(store)
    assert {v.spec for v in find(store, pattern="fix/*")} == {"fix"}
    assert {v.task for v in find(store, pattern="fix")} == {"t1", "t2"}
    assert len(find(store, pattern="*/t1")) == 3
    newest = find(store, limit=1)[0]
    assert find(store, since=newest.created_at)[0].commit == newest.commit
    assert newest.commit not in {v.commit for v in find(store, until=newest.created_at)}
    assert find(store, since="2999-01-01") == []


def test_delete_by_run_leaves_other_runs_intact(store: Store) -> None:
    _fill(store)
    plan = delete_run(store, "r1", dry_run=True)
    assert plan.deleted == ("fix/t2",) and "fix/t1" in plan.kept
    assert "r2" in plan.kept["fix/t1"]
    assert store.show("fix/t2").version == 1  # a dry run changes nothing
    done = delete_run(store, "r1")
    assert done.deleted == ("fix/t2",)
    assert sorted(store.heads()) == ["docs/t1", "fix/t1"]
    assert store.text("fix/t1", "log.log") == "c"
    # The kept task's history still holds the run's version.
    assert [(v.task, v.version) for v in find(store, run="r1")] == [("t1", 1)]


def test_the_index_follows_the_refs_and_is_never_trusted_blindly(disk_store: Store) -> None:
    _fill(disk_store)
    assert len(find(disk_store, run="r2")) == 2
    index = Path(disk_store.path or "") / "gitstore" / "index" / "versions.msgpack"
    assert index.is_file()
    # Another process writes: a fresh handle sees it although the index file predates it.
    with Store.open(disk_store.path or "") as other:
        other.put("fix/t3", {"log.log": "d"}, run_id="r2")
        other.rm_task("docs/t1")
    assert {v.task for v in find(disk_store, run="r2")} == {"t1", "t3"}
    # A damaged index is ignored and rebuilt.
    index.write_bytes(b"garbage")
    with Store.open(disk_store.path or "") as fresh:
        assert {v.task for v in find(fresh, run="r2")} == {"t1", "t3"}


def test_history_as_json_lines(store: Store, tmp_path: Path) -> None:
    _fill(store)
    out = io.StringIO()
    assert write_jsonl(store, out) == 4
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["spec"], r["task"], r["version"]) for r in lines] == [
        ("docs", "t1", 1),
        ("fix", "t1", 2),
        ("fix", "t1", 1),
        ("fix", "t2", 1),
    ]
    assert lines[0]["artifacts"][0]["name"] == "test.json" and lines[1]["run_id"] == "r2"
    assert len(list(iter_history(store, "fix"))) == 3
    assert len(list(iter_history(store, "fix/t1"))) == 2


@pytest.mark.slow
def test_a_query_over_many_tasks_reads_only_its_hits_once_indexed(
    disk_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitstore.versions import Versions

    for i in range(300):
        disk_store.put(f"s{i % 3}/t{i}", {"log.log": str(i)}, run_id=f"r{i % 7}")
    find(disk_store, run="r1")  # builds the index
    assert os.path.exists(os.path.join(disk_store.path or "", "gitstore", "index"))
    read: set[str] = set()
    manifest = Versions.manifest

    def counted(self: Versions, commit: str) -> Any:
        read.add(commit)
        return manifest(self, commit)

    monkeypatch.setattr(Versions, "manifest", counted)
    with Store.open(disk_store.path or "") as fresh:
        hits = find(fresh, run="r1")
    # Speed lives in benchmarks/; here: a fresh process answers from the index, reading the
    # versions it returns and none of the other 257.
    assert len(hits) == 43
    assert read <= {v.commit for v in hits}


def test_cli_find_rm_run_and_log_jsonl(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gitstore.cli.main import cli

    with Store.open(tmp_path / "s.git", create=True) as s:
        _fill(s)
    run = CliRunner()
    base = ["--store", str(tmp_path / "s.git")]
    out = run.invoke(cli, [*base, "find", "--run", "r2", "--tag", "model=m1", "--json"])
    assert out.exit_code == 0
    records = json.loads(out.output)
    assert [(r["spec"], r["task"], r["version"]) for r in records] == [
        ("docs", "t1", 1),
        ("fix", "t1", 2),
    ]
    assert "artifacts" not in records[0] and records[0]["run_id"] == "r2"
    text = run.invoke(cli, [*base, "find", "--type", "application/json"])
    assert text.output.splitlines()[1].startswith("docs/t1@v1 ")
    assert run.invoke(cli, [*base, "find", "--since", "yesterday"]).exit_code == 2
    dry = run.invoke(cli, [*base, "rm-run", "r1"])
    assert dry.exit_code == 0
    assert "would delete fix/t2" in dry.output and "kept fix/t1" in dry.output
    assert "dry run" in dry.output
    assert "t2 " in run.invoke(cli, [*base, "ls", "fix"]).output
    done = run.invoke(cli, [*base, "rm-run", "r1", "--yes", "--json"])
    assert json.loads(done.output)["deleted"] == ["fix/t2"]
    assert "t2" not in run.invoke(cli, [*base, "ls", "fix"]).output
    lines = run.invoke(cli, [*base, "log", "--jsonl"]).output.splitlines()
    assert [json.loads(x)["task"] for x in lines] == ["t1", "t1", "t1"]
    assert (
        len(run.invoke(cli, [*base, "log", "fix", "--jsonl", "-n", "1"]).output.splitlines()) == 1
    )
    # Without an address, log lists the newest versions across the store (issue 14).
    assert run.invoke(cli, [*base, "log"]).output.splitlines()[1].startswith("docs/t1@v1 ")


def test_delete_by_run_keeps_a_task_that_moved_meanwhile(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(store)
    real = store.heads

    def heads_then_a_new_version(spec: str | None = None) -> dict[str, str]:
        out = real(spec)
        store.put("fix/t2", {"log.log": "late"}, run_id="r3")  # another run, just after the read
        return out

    monkeypatch.setattr(store, "heads", heads_then_a_new_version)
    done = delete_run(store, "r1")
    assert done.deleted == () and "fix/t2" in done.kept
    assert store.text("fix/t2", "log.log") == "late"


def test_ls_and_show_say_what_was_cut_and_masked(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gitstore.capture import CapturePolicy
    from gitstore.cli.main import cli
    from gitstore.cli.output import size
    from gitstore.runner import record_task

    with Store.open(tmp_path / "s.git", create=True) as s:
        log = "".join(f"line {i} token=abc{i}\n" for i in range(2000))
        record_task(s, "s/t", log=log, capture_policy=CapturePolicy(max_bytes=1000))
    out = CliRunner().invoke(cli, ["--store", str(tmp_path / "s.git"), "show", "s/t"]).output
    masked_size = sum(len(f"line {i} token=***MASKED***\n") for i in range(2000))
    assert f"truncated from {size(masked_size)}, 2000 secrets masked" in out


def test_find_without_artifacts_answers_from_the_index(store: Store) -> None:
    _fill(store)
    store.put("fix/t9", {"log.log": "x"}, run_id="r9", message="why", metadata={"k": 1})
    full = find(store, run="r9")
    bare = find(store, run="r9", artifacts=False)
    assert bare[0].artifacts == () and len(full[0].artifacts) == 1
    assert bare[0].to_dict(artifacts=False) == full[0].to_dict(artifacts=False)
