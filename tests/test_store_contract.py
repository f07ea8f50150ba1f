"""The Store contract: one suite, run against a disk store, an in-memory store and a served one.

Every test takes the ``store`` fixture (parametrized over disk, memory and http in conftest.py:
the http store is a live ``gitstore serve`` reached through ``Store.open("http://...")``), so the
three are held to the same behaviour. Disk-only behaviour lives in test_store_disk.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from pathlib import Path

import pytest

from gitstore import (
    Artifact,
    ArtifactNotFoundError,
    InputError,
    InvalidNameError,
    Store,
    TaskNotFoundError,
    UsageError,
    VersionNotFoundError,
    artifact_uri,
)

pytestmark = pytest.mark.served

# Why a test does not apply to a served store (the client refuses these; see test_client.py).
VERIFY_IS_LOCAL = "verify reads every object of the store, on the machine that holds it"

BIG = (1 << 20) + 4097  # just over the 1 MiB line where inputs start to stream


def big_bytes(n: int = BIG, seed: int = 0) -> bytes:
    """Deterministic bytes that do not compress well (hash-chained, cheap to make)."""
    out = bytearray()
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 8
    return bytes(out[:n])


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def names(version: object) -> list[str]:
    return [a.name for a in version.artifacts]  # type: ignore[attr-defined]


def make_tree(root: Path, files: dict[str, bytes], executable: tuple[str, ...] = ()) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, 0o755 if rel in executable else 0o644)
    return root


# -- put: what goes in ----------------------------------------------------------------------


def test_put_bytes_round_trips(store: Store) -> None:
    store.put("s/t", {"blob.bin": b"\x00\x01\xff"})
    assert store.get("s/t", "blob.bin") == b"\x00\x01\xff"


def test_put_str_is_stored_as_utf8(store: Store) -> None:
    store.put("s/t", {"note.txt": "héllo → wörld\n"})
    assert store.get("s/t", "note.txt") == "héllo → wörld\n".encode()


def test_put_empty_bytes_round_trips(store: Store) -> None:
    v = store.put("s/t", {"empty": b""})
    assert store.get("s/t", "empty") == b""
    assert v.artifact("empty").size == 0


def test_put_path_file_round_trips(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "run.log"
    f.write_bytes(b"line 1\nline 2\n")
    store.put("s/t", {"log.log": f})
    assert store.get("s/t", "log.log") == b"line 1\nline 2\n"


def test_put_large_path_file_round_trips(store: Store, tmp_path: Path) -> None:
    data = big_bytes()
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    v = store.put("s/t", {"big.bin": f})
    assert store.get("s/t", "big.bin") == data
    assert v.artifact("big.bin").oid == git_oid(data)


def test_put_folder_puts_its_files_under_the_name(store: Store, tmp_path: Path) -> None:
    make_tree(tmp_path / "out", {"a.txt": b"a", "sub/b.txt": b"b", "sub/deep/c.txt": b"c"})
    v = store.put("s/t", {"results": tmp_path / "out"})
    assert names(v) == ["results/a.txt", "results/sub/b.txt", "results/sub/deep/c.txt"]
    assert store.get("s/t", "results/sub/deep/c.txt") == b"c"


def test_put_folder_as_dot_puts_its_files_at_the_top(store: Store, tmp_path: Path) -> None:
    make_tree(tmp_path / "out", {"a.txt": b"a", "sub/b.txt": b"b"})
    v = store.put("s/t", {".": tmp_path / "out"})
    assert names(v) == ["a.txt", "sub/b.txt"]


def test_put_folder_keeps_executable_bits(store: Store, tmp_path: Path) -> None:
    make_tree(tmp_path / "out", {"run.sh": b"#!/bin/sh\n", "data.txt": b"d"}, ("run.sh",))
    v = store.put("s/t", {"bin": tmp_path / "out"})
    assert v.artifact("bin/run.sh").executable is True
    assert v.artifact("bin/data.txt").executable is False


def test_put_path_file_keeps_its_executable_bit(store: Store, tmp_path: Path) -> None:
    make_tree(tmp_path, {"tool": b"#!/bin/sh\n"}, ("tool",))
    v = store.put("s/t", {"tool": tmp_path / "tool"})
    assert v.artifact("tool").executable is True


def test_put_small_binary_stream_round_trips(store: Store) -> None:
    store.put("s/t", {"stdin": io.BytesIO(b"streamed\n")})
    assert store.get("s/t", "stdin") == b"streamed\n"


def test_put_large_binary_stream_round_trips(store: Store) -> None:
    data = big_bytes(seed=1)
    v = store.put("s/t", {"big.bin": io.BytesIO(data)})
    assert store.get("s/t", "big.bin") == data
    assert (v.artifact("big.bin").size, v.artifact("big.bin").oid) == (len(data), git_oid(data))


def test_put_text_stream_is_a_usage_error(store: Store) -> None:
    with pytest.raises(UsageError, match="binary"):
        store.put("s/t", {"x": io.StringIO("text")})


def test_put_artifact_carries_type_tags_and_executable(store: Store) -> None:
    v = store.put(
        "s/t",
        {"x": Artifact(b"#!/bin/sh\n", content_type="text/x-sh", tags={"k": "v"}, executable=True)},
    )
    a = v.artifact("x")
    assert (a.content_type, dict(a.tags), a.executable) == ("text/x-sh", {"k": "v"}, True)
    again = store.show("s/t").artifact("x")
    assert (again.content_type, dict(again.tags), again.executable) == (
        "text/x-sh",
        {"k": "v"},
        True,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run.log", "text/plain"),
        ("change.diff", "text/x-diff"),
        ("result.json", "application/json"),
        ("events.jsonl", "application/x-ndjson"),
        ("README.md", "text/markdown"),
        ("page.html", "text/html"),
        ("no-extension", "application/octet-stream"),
        ("CAPS.LOG", "text/plain"),
    ],
)
def test_bytes_get_a_content_type_guessed_from_the_name(
    store: Store, name: str, expected: str
) -> None:
    v = store.put("s/t", {name: b"x"})
    assert v.artifact(name).content_type == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("result.json", "application/json"),
        ("change.diff", "text/x-diff"),
        ("notes", "text/plain"),
    ],
)
def test_str_gets_a_content_type_guessed_from_the_name(
    store: Store, name: str, expected: str
) -> None:
    # Issue 3: "Per-artifact content type (guessed from the name when not given)". A str is text,
    # so a name that says nothing falls back to text/plain, but a .json name stays JSON.
    v = store.put("s/t", {name: "{}"})
    assert v.artifact(name).content_type == expected


def test_put_level_type_and_tags_apply_to_artifacts_without_their_own(store: Store) -> None:
    v = store.put(
        "s/t",
        {"a": b"a", "b": Artifact(b"b", content_type="image/png", tags={"k": "mine"})},
        content_type="text/csv",
        tags={"k": "default", "run": "1"},
    )
    assert (v.artifact("a").content_type, dict(v.artifact("a").tags)) == (
        "text/csv",
        {"k": "default", "run": "1"},
    )
    assert (v.artifact("b").content_type, dict(v.artifact("b").tags)) == (
        "image/png",
        {"k": "mine", "run": "1"},
    )


def test_put_records_run_id_message_and_metadata(store: Store) -> None:
    store.put("s/t", {"a": b"a"}, run_id="run-42", message="first run", metadata={"n": 1})
    v = store.show("s/t")
    assert (v.run_id, v.message, dict(v.metadata)) == ("run-42", "first run", {"n": 1})
    logged = store.log("s/t")[0]
    assert (logged.run_id, logged.message) == ("run-42", "first run")


def test_put_returns_number_commit_and_each_artifacts_identity(store: Store) -> None:
    data = b"some log\n"
    v = store.put("s/t", {"log.log": data})
    a = v.artifact("log.log")
    assert v.version == 1 and v.created is True
    assert len(v.commit) == 40 and v.commit == store.heads()["s/t"]
    assert a.oid == git_oid(data)
    assert a.sha256 == hashlib.sha256(data).hexdigest()
    assert (a.size, a.content_type) == (len(data), "text/plain")
    assert a.uri == artifact_uri("s", "t", v.commit, "log.log")


def test_put_result_matches_what_show_reads_back(store: Store) -> None:
    v = store.put("s/t", {"a.txt": b"a", "b/c.json": b"{}"}, run_id="r")
    shown = store.show("s/t")
    assert [(a.name, a.oid, a.sha256, a.size, a.content_type, a.uri) for a in v.artifacts] == [
        (a.name, a.oid, a.sha256, a.size, a.content_type, a.uri) for a in shown.artifacts
    ]


def test_version_to_dict_is_json_ready(store: Store) -> None:
    v = store.put("s/t", {"a": b"a"}, metadata={"k": [1, 2]})
    doc = json.loads(json.dumps(v.to_dict()))
    assert (doc["spec"], doc["task"], doc["version"], doc["commit"]) == ("s", "t", 1, v.commit)
    assert {"name", "oid", "sha256", "size", "content_type", "uri"} <= set(doc["artifacts"][0])


# -- put: versions --------------------------------------------------------------------------


def test_puts_make_versions_one_two_three(store: Store) -> None:
    numbers = [store.put("s/t", {"a": str(i)}).version for i in range(3)]
    assert numbers == [1, 2, 3]


def test_put_carries_the_previous_versions_artifacts(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    v2 = store.put("s/t", {"b": b"b"})
    assert names(v2) == ["a", "b"]
    assert store.get("s/t", "a") == b"a"


def test_put_replaces_an_artifact_of_the_same_name(store: Store) -> None:
    store.put("s/t", {"a": b"old"})
    store.put("s/t", {"a": b"new"})
    assert (store.get("s/t@v1", "a"), store.get("s/t", "a")) == (b"old", b"new")


def test_unchanged_put_makes_no_new_version(store: Store) -> None:
    v1 = store.put("s/t", {"a": b"a", "b": b"b"})
    again = store.put("s/t", {"a": b"a"}, run_id="other-run")
    assert (again.created, again.version, again.commit) == (False, 1, v1.commit)
    assert len(store.log("s/t")) == 1


def test_unchanged_put_with_force_makes_a_new_version(store: Store) -> None:
    v1 = store.put("s/t", {"a": b"a"})
    v2 = store.put("s/t", {"a": b"a"}, force=True)
    assert (v2.created, v2.version) == (True, 2)
    assert v2.commit != v1.commit and v2.parents == (v1.commit,)


def test_put_changing_only_tags_makes_a_new_version(store: Store) -> None:
    store.put("s/t", {"a": Artifact(b"a", tags={"k": "1"})})
    v2 = store.put("s/t", {"a": Artifact(b"a", tags={"k": "2"})})
    assert (v2.created, v2.version) == (True, 2)


def test_put_changing_only_the_executable_bit_makes_a_new_version(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    v2 = store.put("s/t", {"a": Artifact(b"a", executable=True)})
    assert (v2.created, v2.artifact("a").executable) == (True, True)


def test_replace_starts_from_an_empty_set(store: Store) -> None:
    store.put("s/t", {"a": b"a", "b": b"b"})
    v2 = store.put("s/t", {"c": b"c"}, replace=True)
    assert names(v2) == ["c"]
    assert names(store.show("s/t@v1")) == ["a", "b"]


def test_file_and_folder_of_one_name_in_one_put_are_refused(store: Store) -> None:
    with pytest.raises(InvalidNameError, match="'a' is a file"):
        store.put("s/t", {"a": b"file", "a/b": b"under it"})
    assert store.heads() == {}


def test_folder_under_a_previous_file_is_refused_and_history_unchanged(store: Store) -> None:
    v1 = store.put("s/t", {"a": b"file"})
    with pytest.raises(InvalidNameError, match="'a' is a file"):
        store.put("s/t", {"a/b": b"under it"})
    assert store.heads() == {"s/t": v1.commit}


def test_file_over_a_previous_folder_is_refused_and_history_unchanged(store: Store) -> None:
    v1 = store.put("s/t", {"a/b": b"in a folder"})
    with pytest.raises(InvalidNameError, match="'a' is a file"):
        store.put("s/t", {"a": b"file"})
    assert store.heads() == {"s/t": v1.commit}


def test_file_over_a_previous_folder_is_accepted_with_replace(store: Store) -> None:
    store.put("s/t", {"a/b": b"in a folder"})
    v2 = store.put("s/t", {"a": b"file"}, replace=True)
    assert names(v2) == ["a"]


@pytest.mark.parametrize(
    "bad",
    ["../escape", "/abs", ".git/config", ".gitstore/manifest.json", "a\\b", "a\x00", ""],
)
def test_put_with_a_bad_name_is_refused_before_anything_changes(store: Store, bad: str) -> None:
    v1 = store.put("s/t", {"a": b"a"})
    with pytest.raises(InvalidNameError):
        store.put("s/t", {"good": b"g", bad: b"x"})
    assert store.heads() == {"s/t": v1.commit}
    assert store.specs() == ["s"]


@pytest.mark.parametrize("address", ["s", "s/t@v1", "s/t/u", "../t", "s/.t"])
def test_put_to_a_bad_address_is_refused(store: Store, address: str) -> None:
    with pytest.raises(InvalidNameError):
        store.put(address, {"a": b"a"})
    assert store.heads() == {}


def test_put_of_a_missing_file_is_an_input_error_and_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="no such file"):
        store.put("s/t", {"a": b"a", "b": tmp_path / "missing.log"})
    assert store.heads() == {}


def test_put_of_an_empty_folder_is_an_input_error(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no files"):
        store.put("s/t", {"out": tmp_path / "empty"})


def test_put_of_a_folder_holding_a_bad_name_is_refused(store: Store, tmp_path: Path) -> None:
    make_tree(tmp_path / "out", {"ok.txt": b"ok", "back\\slash": b"x"})
    with pytest.raises(InvalidNameError, match="backslash"):
        store.put("s/t", {"out": tmp_path / "out"})
    assert store.heads() == {}


def test_put_of_nothing_is_a_usage_error(store: Store) -> None:
    with pytest.raises(UsageError):
        store.put("s/t", {})


def test_put_of_an_unsupported_value_is_a_usage_error(store: Store) -> None:
    with pytest.raises(UsageError, match="cannot store a int"):
        store.put("s/t", {"a": 42})  # type: ignore[dict-item]


def test_put_with_metadata_that_is_not_json_is_a_usage_error(store: Store) -> None:
    with pytest.raises(UsageError, match="JSON"):
        store.put("s/t", {"a": b"a"}, metadata={"x": object()})
    assert store.heads() == {}


def test_put_with_a_non_string_tag_is_a_usage_error(store: Store) -> None:
    with pytest.raises(UsageError, match="tag"):
        store.put("s/t", {"a": Artifact(b"a", tags={"k": 1})})  # type: ignore[dict-item]


# -- addresses ------------------------------------------------------------------------------


@pytest.fixture
def three(store: Store) -> list[str]:
    """Three versions of s/t whose artifact "a" holds b"0", b"1", b"2"; their commits."""
    return [store.put("s/t", {"a": str(i).encode()}).commit for i in range(3)]


def test_at_v_n_names_each_version(store: Store, three: list[str]) -> None:
    assert [store.show(f"s/t@v{n}").commit for n in (1, 2, 3)] == three
    assert [store.get(f"s/t@v{n}", "a") for n in (1, 2, 3)] == [b"0", b"1", b"2"]


def test_at_tilde_n_steps_back_from_the_latest(store: Store, three: list[str]) -> None:
    assert [store.show(f"s/t@~{n}").commit for n in (0, 1, 2)] == three[::-1]
    assert store.show("s/t@~").commit == three[1]


def test_at_v_n_past_the_latest_is_version_not_found(store: Store, three: list[str]) -> None:
    with pytest.raises(VersionNotFoundError):
        store.show("s/t@v4")


def test_at_tilde_past_the_first_version_is_version_not_found(
    store: Store, three: list[str]
) -> None:
    with pytest.raises(VersionNotFoundError, match="shorter"):
        store.show("s/t@~3")


@pytest.mark.parametrize("length", [4, 7, 12, 40])
def test_at_commit_prefix_names_that_version(store: Store, three: list[str], length: int) -> None:
    assert store.show(f"s/t@{three[1][:length]}").version == 2


def test_at_commit_prefix_is_case_insensitive(store: Store, three: list[str]) -> None:
    assert store.show(f"s/t@{three[0][:10].upper()}").version == 1


def test_at_unknown_commit_prefix_is_version_not_found(store: Store, three: list[str]) -> None:
    unknown = next(
        p for p in ("0000", "1111", "2222", "3333") if not any(c.startswith(p) for c in three)
    )
    with pytest.raises(VersionNotFoundError):
        store.show(f"s/t@{unknown}")


def test_at_full_commit_of_another_task_is_version_not_found(
    store: Store, three: list[str]
) -> None:
    store.put("s/other", {"a": b"x"})
    with pytest.raises(VersionNotFoundError):
        store.show(f"s/other@{three[0]}")


def test_at_full_id_of_a_blob_is_version_not_found(store: Store, three: list[str]) -> None:
    blob = store.show("s/t").artifact("a").oid
    with pytest.raises(VersionNotFoundError):
        store.show(f"s/t@{blob}")


def test_unknown_task_is_task_not_found(store: Store) -> None:
    with pytest.raises(TaskNotFoundError):
        store.show("s/nothing")
    with pytest.raises(TaskNotFoundError):
        store.get("s/nothing", "a")


def test_uri_keeps_resolving_to_old_bytes_after_newer_versions(store: Store) -> None:
    uri = store.put("s/t", {"a": b"first"}).artifact("a").uri
    store.put("s/t", {"a": b"second"})
    store.put("s/t", {"a": b"third"}, replace=True)
    assert store.get(uri) == b"first"
    assert store.resolve(uri).sha256 == hashlib.sha256(b"first").hexdigest()


def test_uri_keeps_resolving_after_rm_task(store: Store) -> None:
    v = store.put("s/t", {"a b%.txt": b"pinned"})
    store.rm_task("s/t")
    assert store.get(v.artifact("a b%.txt").uri) == b"pinned"
    assert store.show(v.address).version == 1


def test_uri_of_a_name_not_in_that_version_is_artifact_not_found(store: Store) -> None:
    v = store.put("s/t", {"a": b"a"})
    with pytest.raises(ArtifactNotFoundError):
        store.get(artifact_uri("s", "t", v.commit, "b"))


def test_get_with_a_uri_and_a_name_is_a_usage_error(store: Store) -> None:
    uri = store.put("s/t", {"a": b"a"}).artifact("a").uri
    with pytest.raises(UsageError):
        store.get(uri, "a")


def test_get_of_an_address_without_a_name_is_a_usage_error(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    with pytest.raises(UsageError):
        store.get("s/t")


def test_get_of_a_missing_name_is_artifact_not_found(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    with pytest.raises(ArtifactNotFoundError, match="'b'"):
        store.get("s/t", "b")


def test_ambiguous_commit_prefix_is_refused() -> None:
    # Resolution is shared by both backends; the memory store makes the ~300 versions needed for
    # two 4-digit prefixes to collide in well under a second.
    store = Store.memory()
    by_prefix: dict[str, str] = {}
    for _ in range(5000):
        commit = store.put("s/t", {"a": b"a"}, force=True).commit
        if commit[:4] in by_prefix:
            break
        by_prefix[commit[:4]] = commit
    else:
        pytest.fail("no two commits shared a 4-digit prefix")
    with pytest.raises(InvalidNameError, match="ambiguous"):
        store.show(f"s/t@{commit[:4]}")
    assert store.show(f"s/t@{commit}").commit == commit


# -- reading --------------------------------------------------------------------------------


def test_open_artifact_streams_a_large_blob_in_chunks(store: Store) -> None:
    data = big_bytes(3 * (1 << 20) + 5, seed=2)
    store.put("s/t", {"big": data})
    with store.open_artifact("s/t", "big") as f:
        assert f.size == len(data)
        chunks = list(f.iter_chunks())
    assert len(chunks) > 1 and max(map(len, chunks)) <= 1 << 20
    assert b"".join(chunks) == data


def test_open_artifact_read_n_returns_at_most_n_bytes_in_order(store: Store) -> None:
    data = big_bytes(seed=3)
    store.put("s/t", {"big": data})
    parts = []
    with store.open_artifact("s/t", "big") as f:
        while part := f.read(300_001):
            assert len(part) <= 300_001
            parts.append(part)
    assert b"".join(parts) == data


def test_open_artifact_read_then_iter_chunks_continues_where_read_stopped(store: Store) -> None:
    data = big_bytes(seed=4)
    store.put("s/t", {"big": data})
    with store.open_artifact("s/t", "big") as f:
        head = f.read(10)
        rest = b"".join(f.iter_chunks())
    assert head + rest == data


def test_open_artifact_with_verify_reads_good_bytes(store: Store) -> None:
    data = big_bytes(seed=5)
    store.put("s/t", {"big": data, "small": b"s"})
    with store.open_artifact("s/t", "big", verify=True) as f:
        assert f.read() == data
    assert store.get("s/t", "small", verify=True) == b"s"


def test_text_decodes_utf8(store: Store) -> None:
    store.put("s/t", {"t.txt": "ünï\n"})
    assert store.text("s/t", "t.txt") == "ünï\n"


def test_json_parses_the_artifact(store: Store) -> None:
    store.put("s/t", {"r.json": b'{"passed": 3, "failed": []}'})
    assert store.json("s/t", "r.json") == {"passed": 3, "failed": []}


def test_json_of_something_else_is_a_usage_error(store: Store) -> None:
    store.put("s/t", {"r.json": b"not json"})
    with pytest.raises(UsageError, match="not JSON"):
        store.json("s/t", "r.json")


def test_export_writes_nested_folders_and_executable_bits(store: Store, tmp_path: Path) -> None:
    store.put(
        "s/t",
        {"bin/run.sh": Artifact(b"#!/bin/sh\n", executable=True), "a/b/c.txt": b"c", "top": b"t"},
    )
    dest = tmp_path / "out"
    written = store.export("s/t", dest)
    assert sorted(Path(p).relative_to(dest).as_posix() for p in written) == [
        "a/b/c.txt",
        "bin/run.sh",
        "top",
    ]
    assert (dest / "a/b/c.txt").read_bytes() == b"c"
    assert os.stat(dest / "bin/run.sh").st_mode & 0o111
    assert not os.stat(dest / "top").st_mode & 0o111
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["c.txt", "run.sh", "top"]


def test_export_overwrites_existing_files(store: Store, tmp_path: Path) -> None:
    store.put("s/t", {"a.txt": b"stored"})
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "a.txt").write_bytes(b"something older and longer")
    store.export("s/t", dest)
    assert (dest / "a.txt").read_bytes() == b"stored"


def test_export_of_an_old_version_writes_that_version(store: Store, tmp_path: Path) -> None:
    store.put("s/t", {"a": b"one"})
    store.put("s/t", {"a": b"two", "b": b"b"})
    store.export("s/t@v1", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a"]
    assert (tmp_path / "out" / "a").read_bytes() == b"one"


def test_export_of_a_large_artifact_is_byte_exact(store: Store, tmp_path: Path) -> None:
    data = big_bytes(seed=6)
    store.put("s/t", {"big": data})
    store.export("s/t", tmp_path / "out")
    assert (tmp_path / "out" / "big").read_bytes() == data


def test_export_onto_a_file_is_a_usage_error(store: Store, tmp_path: Path) -> None:
    store.put("s/t", {"a": b"a"})
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UsageError):
        store.export("s/t", tmp_path / "file")


def test_diff_between_two_versions_names_added_removed_and_changed(store: Store) -> None:
    store.put("s/t", {"keep": b"k", "gone": b"g", "edit": b"1"})
    store.put("s/t", {"keep": b"k", "new": b"n", "edit": b"2"}, replace=True)
    d = store.diff("s/t@v1", "s/t@v2")
    assert (d.added, d.removed, d.changed) == (("new",), ("gone",), ("edit",))
    assert (d.old.version, d.new.version) == (1, 2)


def test_diff_with_one_address_without_a_revision_shows_the_latest_put(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    store.put("s/t", {"b": b"b"})
    store.put("s/t", {"c": b"c"})
    d = store.diff("s/t")
    assert (d.old.version, d.new.version, d.added) == (2, 3, ("c",))


def test_diff_with_one_revision_compares_it_with_the_latest(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    store.put("s/t", {"b": b"b"})
    store.put("s/t", {"c": b"c"})
    d = store.diff("s/t@v1")
    assert (d.old.version, d.new.version, d.added) == (1, 3, ("b", "c"))


def test_diff_counts_a_tag_or_mode_change_as_changed(store: Store) -> None:
    store.put("s/t", {"a": b"a", "b": b"b"})
    store.put("s/t", {"a": Artifact(b"a", tags={"k": "v"}), "b": Artifact(b"b", executable=True)})
    assert store.diff("s/t").changed == ("a", "b")


def test_diff_of_a_version_with_itself_is_empty(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    d = store.diff("s/t@v1", "s/t")
    assert (d.added, d.removed, d.changed) == ((), (), ())


def test_diff_of_a_single_version_task_has_no_parent(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    with pytest.raises(VersionNotFoundError):
        store.diff("s/t")


def test_log_lists_every_version_newest_first(store: Store, three: list[str]) -> None:
    log = store.log("s/t")
    assert [v.version for v in log] == [3, 2, 1]
    assert [v.commit for v in log] == three[::-1]
    assert log[0].parents == (three[1],) and log[-1].parents == ()


def test_log_limit_keeps_the_newest(store: Store, three: list[str]) -> None:
    assert [v.version for v in store.log("s/t", limit=2)] == [3, 2]


def test_log_from_a_revision_starts_there(store: Store, three: list[str]) -> None:
    assert [v.version for v in store.log("s/t@v2")] == [2, 1]


def test_iter_versions_walks_the_first_parent_chain(store: Store, three: list[str]) -> None:
    assert [v.commit for v in store.iter_versions("s/t")] == three[::-1]


def test_show_returns_that_versions_manifest(store: Store) -> None:
    store.put("s/t", {"a": b"a"}, run_id="r1", metadata={"k": 1})
    store.put("s/t", {"b": b"b"}, run_id="r2")
    v1 = store.show("s/t@v1")
    assert (v1.version, v1.run_id, dict(v1.metadata), names(v1)) == (1, "r1", {"k": 1}, ["a"])
    assert store.artifact("s/t@v1", "a").size == 1


def test_specs_tasks_and_heads_list_what_was_put(store: Store) -> None:
    va = store.put("spec7/a", {"x": b"1"})
    vb = store.put("spec7/b", {"x": b"2"})
    vc = store.put("spec70/a", {"x": b"3"})
    assert store.specs() == ["spec7", "spec70"]
    assert store.tasks("spec7") == ["a", "b"]
    assert store.tasks("spec70") == ["a"]
    assert store.tasks("nothing") == []
    assert store.heads() == {"spec7/a": va.commit, "spec7/b": vb.commit, "spec70/a": vc.commit}
    assert store.heads("spec7") == {"spec7/a": va.commit, "spec7/b": vb.commit}


@pytest.mark.local_only(VERIFY_IS_LOCAL)
def test_empty_store_lists_nothing(store: Store) -> None:
    assert (store.specs(), store.heads(), store.verify()) == ([], {}, [])


def test_tasks_of_a_bad_spec_name_is_refused(store: Store) -> None:
    with pytest.raises(InvalidNameError):
        store.tasks("../x")


def test_rm_task_removes_the_task_from_listings(store: Store) -> None:
    store.put("s/keep", {"a": b"a"})
    head = store.put("s/gone", {"a": b"a"}).commit
    assert store.rm_task("s/gone") == head
    assert store.tasks("s") == ["keep"]
    assert "s/gone" not in store.heads()
    with pytest.raises(TaskNotFoundError):
        store.show("s/gone")


def test_specs_forget_a_spec_whose_last_task_was_removed(store: Store) -> None:
    store.put("only/t", {"a": b"a"})
    store.rm_task("only/t")
    # specs() promises "every spec that has at least one task".
    assert store.specs() == []


def test_rm_task_of_a_missing_task_is_task_not_found(store: Store) -> None:
    with pytest.raises(TaskNotFoundError):
        store.rm_task("s/none")


def test_put_after_rm_task_starts_again_at_v1(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    store.put("s/t", {"b": b"b"})
    store.rm_task("s/t")
    v = store.put("s/t", {"c": b"c"})
    assert (v.version, v.parents, names(v)) == (1, (), ["c"])


def test_rm_makes_a_new_version_without_the_names(store: Store) -> None:
    store.put("s/t", {"a": b"a", "b": b"b", "c": b"c"})
    v2 = store.rm("s/t", ["a", "c"], run_id="cleanup")
    assert (v2.version, names(v2), v2.run_id) == (2, ["b"], "cleanup")
    assert names(store.show("s/t@v1")) == ["a", "b", "c"]


def test_rm_of_a_folder_name_removes_its_files(store: Store) -> None:
    store.put("s/t", {"out/a": b"a", "out/sub/b": b"b", "outside": b"o"})
    v2 = store.rm("s/t", ["out"])
    assert names(v2) == ["outside"]


def test_rm_of_a_missing_name_is_artifact_not_found_and_changes_nothing(store: Store) -> None:
    v1 = store.put("s/t", {"a": b"a", "ab": b"ab"})
    with pytest.raises(ArtifactNotFoundError, match="'b'"):
        store.rm("s/t", ["a", "b"])
    assert store.heads() == {"s/t": v1.commit}
    assert [v.version for v in store.log("s/t")] == [1]


def test_rm_of_a_name_prefix_that_is_not_a_folder_is_artifact_not_found(store: Store) -> None:
    store.put("s/t", {"abc": b"abc"})
    with pytest.raises(ArtifactNotFoundError):
        store.rm("s/t", ["ab"])


def test_rm_on_a_missing_task_is_task_not_found(store: Store) -> None:
    with pytest.raises(TaskNotFoundError):
        store.rm("s/none", ["a"])


def test_rm_with_no_names_is_a_usage_error(store: Store) -> None:
    store.put("s/t", {"a": b"a"})
    with pytest.raises(UsageError):
        store.rm("s/t", [])


# -- verify ---------------------------------------------------------------------------------


@pytest.mark.local_only(VERIFY_IS_LOCAL)
def test_verify_of_a_healthy_store_finds_nothing(store: Store, tmp_path: Path) -> None:
    make_tree(tmp_path / "out", {"x": b"x", "y/z": big_bytes(seed=7)})
    store.put("s/t", {"a": b"a", "out": tmp_path / "out"})
    store.put("s/t", {"b": "b"})
    store.put("s/u", {"c": b"c"})
    assert store.verify() == []
    assert store.verify("s") == []
    assert store.verify("s/t") == []


@pytest.mark.local_only(VERIFY_IS_LOCAL)
def test_verify_of_a_missing_task_is_task_not_found(store: Store) -> None:
    with pytest.raises(TaskNotFoundError):
        store.verify("s/none")


# -- threads --------------------------------------------------------------------------------


def _run_threads(n: int, target: object) -> None:
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)  # type: ignore[operator]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_threads_putting_to_one_task_lose_no_version(store: Store) -> None:
    threads, puts = 4, 8
    returned: list[tuple[int, str]] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for j in range(puts):
            v = store.put("s/shared", {f"t{i}/p{j}": f"{i}-{j}"})
            with lock:
                returned.append((v.version, v.commit))

    _run_threads(threads, work)
    log = store.log("s/shared")
    assert sorted(v.version for v in log) == list(range(1, threads * puts + 1))
    assert {v.commit for v in log} == {c for _, c in returned}
    assert sorted(n for n, _ in returned) == list(range(1, threads * puts + 1))
    # Every put was applied on top of the one before: the latest holds every name.
    assert len(store.show("s/shared").artifacts) == threads * puts


def test_threads_putting_to_different_tasks_lose_no_version(store: Store) -> None:
    threads, puts = 4, 6

    def work(i: int) -> None:
        for j in range(puts):
            store.put(f"s/t{i}", {"a": f"{j}"})

    _run_threads(threads, work)
    assert store.tasks("s") == [f"t{i}" for i in range(threads)]
    for i in range(threads):
        assert [v.version for v in store.log(f"s/t{i}")] == list(range(puts, 0, -1))
        assert store.get(f"s/t{i}", "a") == str(puts - 1).encode()
