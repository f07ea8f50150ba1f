"""Recording a task, as an agent runner does it: one call at the end of a task, one version.

Also references in run state (a ref keeps resolving to the old bytes) and failures as data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gitstore import InputError, Store, TaskNotFoundError, UsageError, VersionNotFoundError
from gitstore.capture import CapturePolicy
from gitstore.failures import TRACEBACK_MAX, classify
from gitstore.runner import artifact_ref, is_artifact_ref, record_task, resolve_ref

# The store fixture's tests also run against a store served over HTTP (see conftest.py).
pytestmark = pytest.mark.served

GH = "ghp_" + "R4nD0m" * 6


def test_one_call_records_diff_log_tests_and_files_as_one_version(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "cov.xml").write_text("<coverage/>\n")
    seen: list[str] = []
    rec = record_task(
        store,
        "fix-login/t1",
        diff="--- a/x\n+++ b/x\n",
        log="step 1\nstep 2\n",
        tests={"passed": 3, "failed": 0},
        files={"report": tmp_path / "report", "notes.md": "# notes\n"},
        run_id="run-1",
        agent="coder",
        model="m-1",
        prompt_hash="sha256:abc",
        tool_versions={"python": "3.11"},
        source_repo="https://example.com/r.git",
        source_commit="0" * 40,
        parent_uris=["gitstore://plan/t1@" + "1" * 40 + "/plan.md"],
        on_recorded=seen.append,
    )
    v = rec.version
    assert v is not None and v.version == 1 and v.run_id == "run-1"
    assert sorted(rec.uris) == ["diff.diff", "log.log", "notes.md", "report/cov.xml", "test.json"]
    assert sorted(seen) == sorted(rec.uris.values())
    assert store.json(rec.uris["test.json"]) == {"failed": 0, "passed": 3}
    assert store.text(rec.uris["log.log"]) == "step 1\nstep 2\n"
    assert v.metadata["agent"] == "coder" and v.metadata["model"] == "m-1"
    assert v.metadata["tool_versions"] == {"python": "3.11"}
    assert v.metadata["parent_uris"][0].endswith("/plan.md")
    assert rec.excerpts["log.log"].head == "step 1\nstep 2\n"
    assert rec.warnings == ()
    json.dumps(rec.to_dict())  # fits in a runner's JSON state


def test_absent_parts_are_absent(store: Store) -> None:
    rec = record_task(store, "s/t", log="only a log\n")
    assert rec.version is not None
    assert [a.name for a in rec.version.artifacts] == ["log.log"]
    with pytest.raises(UsageError):
        record_task(store, "s/t")


def test_a_log_carrying_an_environment_token_is_stored_masked_and_counted(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-0123456789abcdef")
    log = tmp_path / "agent.log"
    log.write_text("calling the model with sk-live-0123456789abcdef\nok\n")
    rec = record_task(store, "s/t", log=log, diff=f"+token = '{GH}'\n", secrets=["hunter2-pw"])
    assert store.text(rec.uris["log.log"]) == "calling the model with ***MASKED***\nok\n"
    assert store.text(rec.uris["diff.diff"]) == "+token = '***MASKED***'\n"
    assert rec.version is not None
    assert rec.version.artifact("log.log").masked_secrets == 1
    assert rec.version.artifact("diff.diff").masked_secrets == 1
    assert "sk-live" not in json.dumps(rec.to_dict())
    # Off per call: stored as given.
    off = record_task(store, "s/u", log=log, mask=False)
    assert "sk-live-0123456789abcdef" in store.text(off.uris["log.log"])


def test_a_failing_part_with_strict_false_still_records_the_rest(
    store: Store, tmp_path: Path
) -> None:
    rec = record_task(
        store,
        "s/t",
        diff="+x\n",
        log=tmp_path / "missing.log",
        tests=tmp_path / "missing.json",
        files={"bad/../name": b"x", "ok.txt": b"fine"},
        strict=False,
    )
    assert sorted(rec.uris) == ["diff.diff", "ok.txt"]
    assert len(rec.warnings) == 3
    assert any("'log'" in w and "missing.log" in w for w in rec.warnings)
    assert any("'tests'" in w for w in rec.warnings)
    assert any("bad/../name" in w for w in rec.warnings)


def test_a_failing_part_with_strict_records_nothing_and_names_the_part(
    store: Store, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=r"part 'log' failed.*missing\.log"):
        record_task(store, "s/t", diff="+x\n", log=tmp_path / "missing.log")
    with pytest.raises(InputError, match=r"part 'tests' failed.*not JSON"):
        record_task(store, "s/t", diff="+x\n", tests="{not json")
    with pytest.raises(TaskNotFoundError):
        store.show("s/t")


def test_every_part_failing_records_nothing(store: Store, tmp_path: Path) -> None:
    rec = record_task(store, "s/t", log=tmp_path / "nope.log", strict=False)
    assert rec.version is None and rec.uris == {} and len(rec.warnings) == 1


def test_a_failing_callback_is_reported_and_the_version_kept(store: Store) -> None:
    def registry(uri: str) -> None:
        raise ConnectionError("registry is down")

    rec = record_task(store, "s/t", log="x\n", on_recorded=registry)
    assert rec.version is not None and store.show("s/t").commit == rec.version.commit
    assert len(rec.callback_errors) == 1 and "registry is down" in rec.callback_errors[0]
    assert rec.callback_errors[0] in rec.warnings


def test_the_log_is_captured_with_the_policy(store: Store) -> None:
    log = "".join(f"line {i}\n" for i in range(100_000))
    rec = record_task(store, "s/t", log=log, capture_policy=CapturePolicy(max_bytes=8000))
    assert rec.version is not None
    art = rec.version.artifact("log.log")
    assert art.size <= 8000 and art.truncated is not None
    assert art.truncated["original_size"] == len(log)
    assert rec.excerpts["log.log"].truncated


# -- references ----------------------------------------------------------------------------------


def test_a_ref_resolves_to_the_old_bytes_after_a_newer_version(store: Store) -> None:
    first = record_task(store, "s/t", tests={"passed": 1})
    ref = artifact_ref(first.uris["test.json"])
    state = json.loads(json.dumps({"step": 3, "tests": ref}))  # through the runner's state
    record_task(store, "s/t", tests={"passed": 2})
    assert is_artifact_ref(state["tests"])
    assert resolve_ref(store, state["tests"], as_="json") == {"passed": 1}
    assert resolve_ref(store, ref, as_="text").startswith("{")
    assert resolve_ref(store, ref) == store.get(first.uris["test.json"])


@pytest.mark.parametrize(
    "value",
    [
        {"$artifact": "http://x"},
        {"$artifact": "gitstore://s/t@a/b", "x": 1},
        "gitstore://s/t",
        None,
    ],
)
def test_is_artifact_ref_is_true_only_for_that_shape(value: object) -> None:
    assert not is_artifact_ref(value)


def test_a_gone_version_raises_not_found_or_returns_none(store: Store) -> None:
    ref = {"$artifact": "gitstore://s/t@" + "a" * 40 + "/log.log"}
    with pytest.raises(VersionNotFoundError):
        resolve_ref(store, ref)
    assert resolve_ref(store, ref, missing_ok=True) is None


# -- failures ------------------------------------------------------------------------------------


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:  # caught here so that it carries a traceback
        return e


def test_a_failure_is_recorded_in_the_same_version_classified_and_masked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE_TOKEN", "tok-abcdef-123456")
    err = _raise(TimeoutError("model call timed out using tok-abcdef-123456"))
    rec = record_task(
        store, "s/t", diff="+x\n", log="boom\n", files={"notes.txt": "n\n"}, failure=err
    )
    f = store.json(rec.uris["failure.json"])
    assert f["kind"] == "timeout" and f["type"] == "TimeoutError"
    assert "tok-abcdef" not in json.dumps(f) and "***MASKED***" in f["message"]
    assert f["masked_secrets"] >= 1
    assert f["artifacts"] == ["diff.diff", "log.log", "notes.txt"]
    assert "TimeoutError" in f["traceback"] and not f["traceback_truncated"]


def test_a_long_traceback_is_capped_with_a_marker(store: Store) -> None:
    failure = {"type": "RateLimitError", "message": "429", "traceback": "frame\n" * 5000}
    rec = record_task(store, "s/t", failure=failure)
    f = store.json(rec.uris["failure.json"])
    assert f["kind"] == "quota_exhausted" and f["traceback_truncated"]
    assert f["traceback"].startswith("[gitstore: ") and "characters cut here]" in f["traceback"]
    assert len(f["traceback"]) < TRACEBACK_MAX + 100


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (ValueError("bad field"), "validation_error"),
        (MemoryError(), "out_of_memory"),
        (ConnectionRefusedError("connection refused"), "network"),
        (RuntimeError("insufficient_quota: you exceeded your quota"), "quota_exhausted"),
        (RuntimeError("something else"), "error"),
        ({"kind": "cancelled", "message": "stopped"}, "cancelled"),
    ],
)
def test_failures_are_classified(failure: BaseException | dict[str, str], kind: str) -> None:
    assert classify(failure) == kind


def test_record_task_keeps_temp_files_inside_the_store_and_leaves_none(
    disk_store: Store, tmp_path: Path
) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"x" * 100 + b"\n" + f"{GH}\n".encode() * 60_000)
    rec = record_task(disk_store, "s/t", log=log)
    assert GH.encode() not in disk_store.get(rec.uris["log.log"])
    assert disk_store.path is not None
    assert not [n for n in os.listdir(os.path.join(disk_store.path, "objects")) if "tmp" in n]


def test_a_folder_at_the_top_reports_its_files(store: Store, tmp_path: Path) -> None:
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "a.txt").write_text("a\n")
    (tmp_path / "out" / "sub" / "b.txt").write_text("b\n")
    store.put("s/t", {"old.txt": "kept from before\n"})
    rec = record_task(store, "s/t", files={".": tmp_path / "out"}, log="x\n")
    assert sorted(rec.uris) == ["a.txt", "log.log", "sub/b.txt"]
