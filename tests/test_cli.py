"""The ``gitstore`` command line: every command, its --json shapes, byte-exactness and exit codes.

Each test drives the real Click group through CliRunner against a real store in ``tmp_path``;
stock git is the second opinion where the CLI claims to show what git shows.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from support import compressible, fsck, git

import gitstore.cli.output as cli_output
from gitstore import ConflictError, Store
from gitstore.cli.main import cli

ARTIFACT_KEYS = {"name", "oid", "sha256", "size", "content_type", "uri"}
VERSION_KEYS = {"version", "commit", "created_at", "run_id", "message"}
# Every byte value, a NUL, a lone CR, invalid UTF-8 and no final newline: what comes out must be it.
AWKWARD = bytes(range(256)) + b"\x00\r\n\xff\xfe\xc3(" + b"end without newline"


def run(store: Path | None, *args: str, input: bytes | str | None = None) -> Result:
    """``gitstore [--store STORE] ARGS`` in-process, exactly as the console script runs it."""
    prefix = ["--store", str(store)] if store is not None else []
    return CliRunner().invoke(cli, [*prefix, *args], input=input, catch_exceptions=False)


def ok(store: Path | None, *args: str, input: bytes | str | None = None) -> Result:
    """Like :func:`run`, asserting success."""
    result = run(store, *args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def as_json(store: Path | None, *args: str, input: bytes | str | None = None) -> Any:
    """Run with ``--json`` and parse the one document on stdout."""
    return json.loads(ok(store, *args, "--json", input=input).stdout)


def fails(result: Result, code: int) -> str:
    """Assert a failure with ``code`` and one ``gitstore:`` line on stderr; return that line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitstore: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder with what an agent run leaves behind: a diff, a log and a results folder."""
    root = tmp_path / "run"
    (root / "results" / "junit").mkdir(parents=True)
    (root / "diff.diff").write_bytes(b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n")
    (root / "log.log").write_bytes(b"step 1\nstep 2\n")
    (root / "results" / "test.json").write_bytes(b'{"passed": 3, "failed": 0}\n')
    (root / "results" / "junit" / "report.xml").write_bytes(b"<testsuite/>\n")
    return root


def corrupt_loose_blob(store: Path, oid: str) -> None:
    """Replace a loose object's bytes with others of the same size (a flipped first byte)."""
    path = store / "objects" / oid[:2] / oid[2:]
    raw = zlib.decompress(path.read_bytes())
    header, _, body = raw.partition(b"\0")
    os.chmod(path, 0o644)
    path.write_bytes(zlib.compress(header + b"\0" + bytes([body[0] ^ 0xFF]) + body[1:]))


# -- init and the store location ----------------------------------------------------------------


def test_init_creates_a_bare_repository(store_path: Path) -> None:
    ok(store_path, "init")
    assert git(store_path, "rev-parse", "--is-bare-repository").stdout.strip() == "true"


def test_init_twice_keeps_the_store(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    ok(store_path, "init")
    assert ok(store_path, "get", "s/t", "log.log").stdout_bytes == b"step 1\nstep 2\n"


def test_store_defaults_to_gitstore_dir(
    tmp_path: Path, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSTORE_DIR", str(tmp_path / "env.git"))
    ok(None, "put", "s/t", str(files / "log.log"))
    assert ok(tmp_path / "env.git", "ls").stdout.split() == ["SPEC", "TASKS", "s", "1"]


def test_store_option_wins_over_gitstore_dir(
    tmp_path: Path, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSTORE_DIR", str(tmp_path / "env.git"))
    ok(tmp_path / "opt.git", "put", "s/t", str(files / "log.log"))
    assert (tmp_path / "opt.git" / "HEAD").is_file()
    assert not (tmp_path / "env.git").exists()


def test_store_defaults_to_dot_gitstore_in_home(files: Path) -> None:
    # conftest points HOME at a temp folder and clears GITSTORE_DIR.
    ok(None, "put", "s/t", str(files / "log.log"))
    assert git(Path.home() / ".gitstore", "rev-parse", "--is-bare-repository").stdout.strip() == (
        "true"
    )


def test_read_on_a_missing_store_is_not_found_and_creates_nothing(store_path: Path) -> None:
    line = fails(run(store_path, "ls"), 4)
    assert str(store_path) in line
    assert not store_path.exists()


def test_refused_put_creates_no_store(store_path: Path, files: Path) -> None:
    fails(run(store_path, "put", "s/../t", str(files / "log.log")), 3)
    fails(run(store_path, "put", "s/t", str(files / "log.log"), "--as", "../x"), 3)
    fails(run(store_path, "put", "s/t", str(files / "missing.log")), 7)
    assert not store_path.exists()


# -- put --------------------------------------------------------------------------------------


def test_put_file_is_stored_under_its_base_name(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"), str(files / "diff.diff"))
    names = [a["name"] for a in as_json(store_path, "ls", "s/t")["artifacts"]]
    assert names == ["diff.diff", "log.log"]


def test_put_folder_is_stored_under_its_base_name(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "results") + "/")
    names = [a["name"] for a in as_json(store_path, "ls", "s/t")["artifacts"]]
    assert names == ["results/junit/report.xml", "results/test.json"]


def test_put_folder_as_dot_puts_its_files_at_the_top(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "results"), "--as", ".")
    names = [a["name"] for a in as_json(store_path, "ls", "s/t")["artifacts"]]
    assert names == ["junit/report.xml", "test.json"]


def test_put_as_names_a_file(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"), "--as", "logs/agent.log")
    assert ok(store_path, "get", "s/t", "logs/agent.log").stdout_bytes == b"step 1\nstep 2\n"


def test_put_stdin_is_byte_exact(store_path: Path) -> None:
    ok(store_path, "put", "s/t", "-", "--as", "blob.bin", input=AWKWARD)
    assert ok(store_path, "get", "s/t", "blob.bin").stdout_bytes == AWKWARD


def test_put_file_is_byte_exact(store_path: Path, tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(AWKWARD)
    ok(store_path, "put", "s/t", str(tmp_path / "blob.bin"))
    assert ok(store_path, "get", "s/t", "blob.bin").stdout_bytes == AWKWARD


def test_put_large_stdin_streams_in_byte_exact(store_path: Path) -> None:
    # Larger than the library's in-memory limit for streams, so it takes the spooled path.
    data = os.urandom(3 << 20)
    ok(store_path, "put", "s/t", "-", "--as", "big.bin", input=data)
    assert ok(store_path, "get", "s/t", "big.bin").stdout_bytes == data


def test_put_json_has_the_documented_shape(store_path: Path, files: Path) -> None:
    out = as_json(store_path, "put", "s/t", str(files / "log.log"), "--run", "r-1", "-m", "first")
    assert {"spec", "task", "version", "commit", "artifacts"} <= out.keys()
    assert (out["spec"], out["task"], out["version"], out["created"]) == ("s", "t", 1, True)
    assert len(out["commit"]) == 40
    (art,) = out["artifacts"]
    assert art.keys() >= ARTIFACT_KEYS
    assert art["uri"] == f"gitstore://s/t@{out['commit']}/log.log"
    assert (art["size"], art["content_type"]) == (14, "text/plain")


def test_put_records_type_tags_run_message_and_metadata(store_path: Path, files: Path) -> None:
    ok(
        store_path,
        *("put", "s/t", str(files / "log.log"), "--type", "text/x-agent-log"),
        *("--tag", "kind=log", "--tag", "step=2", "--run", "r-7", "-m", "why"),
        *("--meta", "model=m1"),
    )
    version = as_json(store_path, "show", "s/t")
    assert (version["run_id"], version["message"], version["metadata"]) == (
        "r-7",
        "why",
        {"model": "m1"},
    )
    (art,) = version["artifacts"]
    assert (art["content_type"], art["tags"]) == ("text/x-agent-log", {"kind": "log", "step": "2"})


def test_put_unchanged_makes_no_new_version(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    out = as_json(store_path, "put", "s/t", str(files / "log.log"))
    assert (out["version"], out["created"]) == (1, False)
    assert "unchanged" in ok(store_path, "put", "s/t", str(files / "log.log")).stdout


def test_put_force_makes_a_new_version_even_if_unchanged(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    out = as_json(store_path, "put", "s/t", str(files / "log.log"), "--force")
    assert (out["version"], out["created"]) == (2, True)


def test_put_keeps_previous_artifacts_unless_replace(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    kept = as_json(store_path, "put", "s/t", str(files / "diff.diff"))
    replaced = as_json(store_path, "put", "s/t", str(files / "diff.diff"), "--replace")
    assert [a["name"] for a in kept["artifacts"]] == ["diff.diff", "log.log"]
    assert [a["name"] for a in replaced["artifacts"]] == ["diff.diff"]


def test_put_stdin_without_as_is_a_usage_error(store_path: Path) -> None:
    assert "--as" in fails(run(store_path, "put", "s/t", "-", input=b"x"), 2)


def test_put_as_with_two_paths_is_a_usage_error(store_path: Path, files: Path) -> None:
    paths = (str(files / "log.log"), str(files / "diff.diff"))
    assert "--as" in fails(run(store_path, "put", "s/t", *paths, "--as", "x"), 2)


def test_put_two_paths_with_one_name_is_a_usage_error(store_path: Path, tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "log.log").write_bytes(sub.encode())
    line = fails(run(store_path, "put", "s/t", *(str(tmp_path / s / "log.log") for s in "ab")), 2)
    assert "log.log" in line


def test_put_bad_tag_is_a_usage_error(store_path: Path, files: Path) -> None:
    fails(run(store_path, "put", "s/t", str(files / "log.log"), "--tag", "novalue"), 2)


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    """A run folder holding a symbolic link to a secret file outside it."""
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    (tmp_path / "home" / ".ssh" / "id_rsa").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    run_dir = tmp_path / "leaky"
    run_dir.mkdir()
    (run_dir / "log.log").write_bytes(b"step 1\n")
    (run_dir / "leak").symlink_to(tmp_path / "home" / ".ssh" / "id_rsa")
    return run_dir


def test_put_refuses_a_symlink_inside_a_folder_and_creates_no_store(
    store_path: Path, leaky: Path
) -> None:
    line = fails(run(store_path, "put", "s/t", str(leaky)), 7)
    assert str(leaky / "leak") in line and "--follow-symlinks" in line
    assert not store_path.exists()


def test_put_refusing_a_symlink_leaves_an_existing_store_unchanged(
    store_path: Path, files: Path, leaky: Path
) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    head = git(store_path, "rev-parse", "refs/artifacts/s/t").stdout
    objects = git(store_path, "count-objects", "-v").stdout
    fails(run(store_path, "put", "s/t", str(leaky)), 7)
    assert git(store_path, "rev-parse", "refs/artifacts/s/t").stdout == head
    assert git(store_path, "count-objects", "-v").stdout == objects


def test_put_refuses_a_symlink_to_a_file_inside_the_same_folder(
    store_path: Path, files: Path
) -> None:
    (files / "results" / "alias.json").symlink_to("test.json")
    assert "alias.json" in fails(run(store_path, "put", "s/t", str(files / "results")), 7)


def test_put_follow_symlinks_stores_the_file_a_link_points_at(
    store_path: Path, leaky: Path
) -> None:
    ok(store_path, "put", "s/t", str(leaky), "--follow-symlinks")
    stored = ok(store_path, "get", "s/t", "leaky/leak").stdout_bytes
    assert stored == b"-----BEGIN PRIVATE KEY-----\n"


def test_put_follow_symlinks_still_refuses_a_link_to_a_folder(
    store_path: Path, files: Path
) -> None:
    (files / "results" / "again").symlink_to(files / "results" / "junit")
    line = fails(run(store_path, "put", "s/t", str(files), "--follow-symlinks"), 7)
    assert "again" in line and "folder" in line


def test_put_follow_symlinks_refuses_a_dangling_link_clearly(store_path: Path, files: Path) -> None:
    (files / "gone").symlink_to(files / "does-not-exist")
    line = fails(run(store_path, "put", "s/t", str(files), "--follow-symlinks"), 7)
    assert str(files / "gone") in line and "symbolic link to nothing" in line
    assert not store_path.exists()


def test_put_follows_a_path_that_is_itself_a_symlink(
    store_path: Path, files: Path, tmp_path: Path
) -> None:
    (tmp_path / "latest").symlink_to(files / "results")
    ok(store_path, "put", "s/t", str(tmp_path / "latest"))
    names = [a["name"] for a in as_json(store_path, "ls", "s/t")["artifacts"]]
    assert names == ["latest/junit/report.xml", "latest/test.json"]


# -- get and export ---------------------------------------------------------------------------


def test_get_output_writes_the_file_and_no_temp_file(
    store_path: Path, files: Path, tmp_path: Path
) -> None:
    ok(store_path, "put", "s/t", str(files / "diff.diff"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = ok(store_path, "get", "s/t", "diff.diff", "-o", str(out_dir / "d.diff"))
    assert result.stdout_bytes == b""
    assert (out_dir / "d.diff").read_bytes() == (files / "diff.diff").read_bytes()
    assert os.listdir(out_dir) == ["d.diff"]


def test_get_output_replaces_an_existing_file(
    store_path: Path, files: Path, tmp_path: Path
) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    (tmp_path / "f").write_bytes(b"a much longer previous content than the artifact has")
    ok(store_path, "get", "s/t", "log.log", "-o", str(tmp_path / "f"))
    assert (tmp_path / "f").read_bytes() == b"step 1\nstep 2\n"


def test_get_output_dash_is_stdout(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    assert ok(store_path, "get", "s/t", "log.log", "-o", "-").stdout_bytes == b"step 1\nstep 2\n"


def test_get_verify_failure_leaves_no_output_file(store_path: Path, tmp_path: Path) -> None:
    data = compressible((1 << 20) + 10)  # above the pack threshold: a loose object
    ok(store_path, "put", "s/t", "-", "--as", "big.bin", input=data)
    oid = as_json(store_path, "show", "s/t", "big.bin")["oid"]
    corrupt_loose_blob(store_path, oid)
    fails(run(store_path, "get", "s/t", "big.bin", "--verify", "-o", str(tmp_path / "f")), 6)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".f", "f"))] == []


def test_get_by_revision(store_path: Path) -> None:
    for text in ("one", "two", "three"):
        ok(store_path, "put", "s/t", "-", "--as", "a.txt", input=text)
    first = as_json(store_path, "log", "s/t")[-1]["commit"]
    assert ok(store_path, "get", "s/t@v1", "a.txt").stdout == "one"
    assert ok(store_path, "get", "s/t@~1", "a.txt").stdout == "two"
    assert ok(store_path, "get", f"s/t@{first[:8]}", "a.txt").stdout == "one"
    assert ok(store_path, "get", "s/t", "a.txt").stdout == "three"


def test_get_uri_returns_the_pinned_bytes(store_path: Path) -> None:
    uri = as_json(store_path, "put", "s/t", "-", "--as", "a.txt", input="old")["artifacts"][0][
        "uri"
    ]
    ok(store_path, "put", "s/t", "-", "--as", "a.txt", input="new")
    assert ok(store_path, "get", uri).stdout == "old"


def test_get_uri_and_a_name_is_a_usage_error(store_path: Path) -> None:
    uri = as_json(store_path, "put", "s/t", "-", "--as", "a.txt", input="x")["artifacts"][0]["uri"]
    fails(run(store_path, "get", uri, "a.txt"), 2)


def test_export_writes_every_artifact_with_its_executable_bit(
    store_path: Path, files: Path, tmp_path: Path
) -> None:
    (files / "results" / "run.sh").write_bytes(b"#!/bin/sh\n")
    (files / "results" / "run.sh").chmod(0o755)
    ok(store_path, "put", "s/t", str(files / "results"), "--as", ".")
    dest = tmp_path / "exported"
    assert "3 artifacts" in ok(store_path, "export", "s/t", str(dest)).stdout
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "junit/report.xml",
        "run.sh",
        "test.json",
    ]
    assert (dest / "test.json").read_bytes() == (files / "results" / "test.json").read_bytes()
    assert os.access(dest / "run.sh", os.X_OK)
    assert not os.access(dest / "test.json", os.X_OK)


def test_export_over_a_folder_where_a_file_goes_writes_nothing(
    store_path: Path, tmp_path: Path
) -> None:
    ok(store_path, "put", "s/t", "-", "--as", "a.txt", input="a")
    ok(store_path, "put", "s/t", "-", "--as", "b.txt", input="b")
    (tmp_path / "dest" / "b.txt").mkdir(parents=True)
    assert str(tmp_path / "dest" / "b.txt") in fails(
        run(store_path, "export", "s/t", str(tmp_path / "dest")), 7
    )
    assert sorted(os.listdir(tmp_path / "dest")) == ["b.txt"]


# -- ls, log, show, diff ----------------------------------------------------------------------


def test_ls_lists_specs_with_task_counts(store_path: Path) -> None:
    for address in ("a/t1", "a/t2", "b/t1"):
        ok(store_path, "put", address, "-", "--as", "x", input="x")
    assert as_json(store_path, "ls") == [{"name": "a", "tasks": 2}, {"name": "b", "tasks": 1}]
    assert ok(store_path, "ls").stdout.splitlines() == ["SPEC  TASKS", "a         2", "b         1"]


def test_ls_of_an_empty_store_is_empty(store_path: Path) -> None:
    ok(store_path, "init")
    assert as_json(store_path, "ls") == []
    assert ok(store_path, "ls").stdout == ""


def test_ls_spec_lists_tasks_with_their_heads(store_path: Path) -> None:
    heads = {
        task: as_json(store_path, "put", f"a/{task}", "-", "--as", "x", input=task)["commit"]
        for task in ("t2", "t1")
    }
    listed = as_json(store_path, "ls", "a")
    assert [(t["name"], t["commit"]) for t in listed] == sorted(heads.items())
    assert ok(store_path, "ls", "a").stdout.splitlines()[1] == f"t1    {heads['t1'][:12]}"


def test_ls_unknown_spec_is_not_found(store_path: Path) -> None:
    ok(store_path, "put", "a/t", "-", "--as", "x", input="x")
    fails(run(store_path, "ls", "nope"), 4)


def test_ls_version_json_has_the_documented_shape(store_path: Path, files: Path) -> None:
    put = as_json(store_path, "put", "s/t", str(files / "log.log"), str(files / "diff.diff"))
    listed = as_json(store_path, "ls", "s/t@v1")
    assert {"spec", "task", "version", "commit", "artifacts"} <= listed.keys()
    assert (listed["version"], listed["commit"]) == (1, put["commit"])
    assert all(a.keys() >= ARTIFACT_KEYS for a in listed["artifacts"])
    assert listed["artifacts"] == put["artifacts"]


def test_ls_version_text_is_aligned(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"), str(files / "results"))
    title, header, *rows = ok(store_path, "ls", "s/t").stdout.splitlines()
    assert title.startswith("s/t v1 ")
    assert header.split() == ["NAME", "SIZE", "TYPE", "SHA256", "NOTE"]
    assert [row.split()[0] for row in rows] == [
        "log.log",
        "results/junit/report.xml",
        "results/test.json",
    ]
    # Every column starts at the same place on every row (sizes are right-aligned: "14 B").
    assert len({row.index(row.split()[3]) for row in [header, *rows][1:]}) == 1
    assert len({row.index(" B  ") for row in rows}) == 1


def test_log_json_lists_versions_newest_first(store_path: Path) -> None:
    ok(store_path, "put", "s/t", "-", "--as", "a", "--run", "r1", "-m", "first", input="1")
    ok(store_path, "put", "s/t", "-", "--as", "a", "--run", "r2", input="2")
    versions = as_json(store_path, "log", "s/t")
    assert all(v.keys() >= VERSION_KEYS for v in versions)
    assert [(v["version"], v["run_id"], v["message"]) for v in versions] == [
        (2, "r2", None),
        (1, "r1", "first"),
    ]


def test_log_text_shows_one_line_per_version(store_path: Path) -> None:
    ok(store_path, "put", "s/t", "-", "--as", "a", "-m", "first try", input="1")
    ok(store_path, "put", "s/t", "-", "--as", "a", input="2")
    header, *lines = ok(store_path, "log", "s/t").stdout.splitlines()
    assert header.split()[:3] == ["VERSION", "COMMIT", "CREATED"]
    assert [line.split()[0] for line in lines] == ["v2", "v1"]
    assert lines[1].endswith("first try")


def test_log_limit(store_path: Path) -> None:
    for n in range(3):
        ok(store_path, "put", "s/t", "-", "--as", "a", input=str(n))
    assert [v["version"] for v in as_json(store_path, "log", "s/t", "-n", "2")] == [3, 2]


def test_show_version(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"), "--run", "r-1", "--meta", "k=v")
    text = ok(store_path, "show", "s/t").stdout
    assert "run_id:     r-1" in text and "metadata:   k=v" in text and "log.log" in text
    assert as_json(store_path, "show", "s/t")["metadata"] == {"k": "v"}


def test_show_artifact_json(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    info = as_json(store_path, "show", "s/t@v1", "log.log")
    assert info.keys() >= ARTIFACT_KEYS
    assert info["sha256"] == hashlib.sha256(b"step 1\nstep 2\n").hexdigest()
    assert "sha256:" in ok(store_path, "show", "s/t", "log.log").stdout


def test_show_missing_artifact_is_not_found(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    fails(run(store_path, "show", "s/t", "nope.txt"), 4)


def test_diff_one_revision_compares_it_with_the_latest(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"), str(files / "diff.diff"))
    ok(store_path, "put", "s/t", "-", "--as", "log.log", input="changed")
    ok(store_path, "rm", "s/t", "diff.diff")
    ok(store_path, "put", "s/t", str(files / "results"))
    out = ok(store_path, "diff", "s/t@v1").stdout.splitlines()
    assert out == [
        "s/t@v1 -> s/t@v4",
        "D diff.diff  38 B",
        "M log.log  content 14 B -> 7 B",
        "A results/junit/report.xml  13 B",
        "A results/test.json  27 B",
    ]


def test_diff_without_revision_shows_what_the_latest_put_changed(
    store_path: Path, files: Path
) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    ok(store_path, "put", "s/t", str(files / "diff.diff"))
    d = as_json(store_path, "diff", "s/t")
    assert (d["old"]["version"], d["new"]["version"], d["added"]) == (1, 2, ["diff.diff"])


def test_diff_two_revisions_json(store_path: Path) -> None:
    for text in ("1", "2", "3"):
        ok(store_path, "put", "s/t", "-", "--as", "a", input=text)
    d = as_json(store_path, "diff", "s/t@v1", "s/t@v2")
    assert d["old"] == {
        "spec": "s",
        "task": "t",
        "version": 1,
        "commit": d["old"]["commit"],
    }
    assert (d["new"]["version"], d["added"], d["removed"], d["changed"]) == (2, [], [], ["a"])


# -- rm ---------------------------------------------------------------------------------------


def test_rm_names_makes_a_version_without_them(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"), str(files / "results"))
    out = as_json(store_path, "rm", "s/t", "results")
    assert (out["version"], [a["name"] for a in out["artifacts"]]) == (2, ["log.log"])
    assert ok(store_path, "get", "s/t@v1", "results/test.json").stdout_bytes.startswith(b"{")


def test_rm_missing_name_is_not_found_and_writes_nothing(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    fails(run(store_path, "rm", "s/t", "nope"), 4)
    assert len(as_json(store_path, "log", "s/t")) == 1


def test_rm_task_deletes_its_ref(store_path: Path, files: Path) -> None:
    uri = as_json(store_path, "put", "s/t", str(files / "log.log"))["artifacts"][0]["uri"]
    ok(store_path, "put", "s/u", str(files / "log.log"))
    ok(store_path, "rm", "s/t", "--task", "--yes")
    assert git(store_path, "for-each-ref", "--format=%(refname)").stdout.split() == [
        "refs/artifacts/s/u"
    ]
    # The version stays in the object database: its pinned URI still resolves.
    assert ok(store_path, "get", uri).stdout_bytes == b"step 1\nstep 2\n"


def test_rm_needs_names_or_task_but_not_both(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    fails(run(store_path, "rm", "s/t"), 2)
    fails(run(store_path, "rm", "s/t", "log.log", "--task"), 2)


# -- verify -----------------------------------------------------------------------------------


def test_verify_clean_store(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "results"))
    assert ok(store_path, "verify").stdout.startswith("ok")
    assert as_json(store_path, "verify", "s/t") == []


def test_verify_names_every_mismatch_and_exits_6(store_path: Path) -> None:
    oids = []
    for task in ("t1", "t2"):
        data = compressible((1 << 20) + 10)
        put = as_json(store_path, "put", f"s/{task}", "-", "--as", "big.bin", input=data)
        oids.append(put["artifacts"][0]["oid"])
    ok(store_path, "put", "s/t3", "-", "--as", "fine.txt", input="fine")
    for oid in oids:
        corrupt_loose_blob(store_path, oid)
    result = run(store_path, "verify")
    assert "2 problems" in fails(result, 6)
    lines = result.stdout.splitlines()
    assert [line.split("@")[0] for line in lines] == ["s/t1", "s/t2"]
    assert all("big.bin" in line for line in lines)
    ok(store_path, "verify", "s/t3")


# -- gc ---------------------------------------------------------------------------------------


def test_gc_prunes_what_no_ref_reaches(store_path: Path) -> None:
    data = compressible((1 << 20) + 10)
    put = as_json(store_path, "put", "s/t", "-", "--as", "big.bin", input=data)["artifacts"][0]
    uri, oid = put["uri"], put["oid"]
    loose = store_path / "objects" / oid[:2] / oid[2:]
    ok(store_path, "put", "s/u", "-", "--as", "kept.txt", input="kept")
    ok(store_path, "rm", "s/t", "--task", "--yes")
    dry = as_json(store_path, "gc", "--prune-after", "0", "--dry-run")
    assert dry["pruned_objects"] >= 1 and dry["dry_run"] is True
    assert ok(store_path, "get", uri).stdout_bytes == data  # a dry run changes nothing
    size = loose.stat().st_size
    assert as_json(store_path, "gc", "--prune-after", "0")["pruned_bytes"] >= size
    # Gone: its blob is missing (6) or, where the commit went too, its version (4).
    assert run(store_path, "get", uri).exit_code in (4, 6)
    assert ok(store_path, "get", "s/u", "kept.txt").stdout == "kept"
    fsck(store_path)


def test_gc_keeps_recent_unreachable_objects_by_default(store_path: Path) -> None:
    data = compressible((1 << 20) + 10)
    uri = as_json(store_path, "put", "s/t", "-", "--as", "big.bin", input=data)["artifacts"][0][
        "uri"
    ]
    ok(store_path, "rm", "s/t", "--task", "--yes")
    assert as_json(store_path, "gc")["pruned_objects"] == 0
    assert ok(store_path, "get", uri).stdout_bytes == data


# -- exit codes: one test per code of the README table -----------------------------------------


def test_exit_2_for_a_click_usage_error(store_path: Path) -> None:
    assert "--bogus" in fails(run(store_path, "ls", "--bogus"), 2)


def test_exit_2_for_a_missing_command() -> None:
    fails(run(None), 2)


def test_exit_3_for_an_invalid_name(store_path: Path) -> None:
    line = fails(run(store_path, "put", "s/t", "-", "--as", "../escape", input="x"), 3)
    assert "../escape" in line


def test_exit_4_for_something_not_found(store_path: Path) -> None:
    ok(store_path, "init")
    assert "s/t" in fails(run(store_path, "get", "s/t", "x"), 4)


def test_exit_5_for_a_write_conflict(
    store_path: Path, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real lost compare-and-swap race is the library's to test; this checks the mapping.
    def contended(*args: object, **kwargs: object) -> None:
        raise ConflictError("refs/artifacts/s/t: gave up after 9 attempts")

    monkeypatch.setattr(Store, "put", contended)
    assert "gave up" in fails(run(store_path, "put", "s/t", str(files / "log.log")), 5)


def test_exit_6_for_an_integrity_failure(store_path: Path) -> None:
    ok(store_path, "put", "s/t", "-", "--as", "big.bin", input=compressible((1 << 20) + 10))
    corrupt_loose_blob(store_path, as_json(store_path, "show", "s/t", "big.bin")["oid"])
    fails(run(store_path, "get", "s/t", "big.bin", "--verify"), 6)


def test_exit_7_for_unreadable_input(store_path: Path, tmp_path: Path) -> None:
    line = fails(run(store_path, "put", "s/t", str(tmp_path / "missing.log")), 7)
    assert "missing.log" in line


def test_exit_7_for_an_output_file_that_cannot_be_written(
    store_path: Path, files: Path, tmp_path: Path
) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"))
    target = tmp_path / "no" / "such" / "dir" / "f"
    assert str(target) in fails(run(store_path, "get", "s/t", "log.log", "-o", str(target)), 7)


def test_exit_8_for_a_path_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a store")
    fails(run(tmp_path, "ls"), 8)


def test_exit_70_for_a_bug_without_traceback(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Store) -> list[str]:
        raise RuntimeError("boom")

    ok(store_path, "init")
    monkeypatch.setattr(Store, "specs", broken)
    assert fails(run(store_path, "ls"), 70) == (
        "gitstore: internal error: RuntimeError: boom (set GITSTORE_DEBUG=1 for a traceback)"
    )


def test_gitstore_debug_shows_the_traceback_of_a_bug(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Store) -> list[str]:
        raise RuntimeError("boom")

    ok(store_path, "init")
    monkeypatch.setattr(Store, "specs", broken)
    monkeypatch.setenv("GITSTORE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        run(store_path, "ls")


def test_exit_130_when_interrupted(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Store) -> list[str]:
        raise KeyboardInterrupt

    ok(store_path, "init")
    monkeypatch.setattr(Store, "specs", interrupted)
    result = run(store_path, "ls")
    assert result.exit_code == 130
    assert result.stderr.strip() == "gitstore: interrupted"


def test_exit_141_quietly_when_stdout_is_closed_early(store_path: Path) -> None:
    """``gitstore get ... | head -c 10``: no message, no traceback, the SIGPIPE status."""
    ok(store_path, "put", "s/t", "-", "--as", "big.bin", input=os.urandom(4 << 20))
    with subprocess.Popen(
        [sys.executable, "-m", "gitstore", "--store", str(store_path), "get", "s/t", "big.bin"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert len(proc.stdout.read(10)) == 10
        proc.stdout.close()  # the reader goes away with most of 4 MiB unread
        assert proc.wait(timeout=30) == 141
        assert proc.stderr.read() == b""


def test_ls_of_a_big_spec_exits_141_quietly_when_stdout_is_closed_early(store_path: Path) -> None:
    """``gitstore ls SPEC | head``: rows are written in blocks, and a closed pipe still ends
    the listing with the SIGPIPE status and nothing on stderr."""
    commit = as_json(store_path, "put", "s/t", "-", "--as", "x", input="x")["commit"]
    creates = "".join(f"create refs/artifacts/s/t{i} {commit}\n" for i in range(20_000))
    subprocess.run(
        ["git", f"--git-dir={store_path}", "update-ref", "--stdin"],
        input=creates,
        text=True,
        check=True,
    )
    with subprocess.Popen(
        [sys.executable, "-m", "gitstore", "--store", str(store_path), "ls", "s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().split() == [b"TASK", b"LATEST"]
        proc.stdout.close()  # ~20,000 rows unread: more than a pipe holds
        assert proc.wait(timeout=60) == 141
        assert proc.stderr.read() == b""


# -- progress ---------------------------------------------------------------------------------


def test_no_progress_output_when_stderr_is_not_a_terminal(store_path: Path, tmp_path: Path) -> None:
    ok(store_path, "init")  # a first put would say it created the store
    (tmp_path / "big.bin").write_bytes(os.urandom(2 << 20))
    result = ok(store_path, "put", "s/t", str(tmp_path / "big.bin"))
    assert result.stderr == ""
    assert ok(store_path, "get", "s/t", "big.bin", "-o", str(tmp_path / "out")).stderr == ""


def test_progress_bar_when_stderr_is_a_terminal(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(2 << 20))
    monkeypatch.setattr(cli_output, "progress_allowed", lambda: True)
    # tqdm draws on CliRunner's stderr: the label shows a bar was made, fed by the library's
    # progress callback.
    assert "storing" in ok(store_path, "put", "s/t", str(tmp_path / "big.bin")).stderr
    assert "reading" in ok(store_path, "get", "s/t", "big.bin", "-o", str(tmp_path / "o")).stderr
    assert "exporting" in ok(store_path, "export", "s/t", str(tmp_path / "e")).stderr


# -- stock git agrees ---------------------------------------------------------------------------


def test_git_log_shows_the_versions_gitstore_log_shows(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "log.log"), "--run", "r-1")
    ok(store_path, "put", "s/t", str(files / "diff.diff"), "--run", "r-2")
    ok(store_path, "rm", "s/t", "log.log")
    ours = as_json(store_path, "log", "s/t")
    theirs = git(
        store_path,
        "log",
        "--format=%H %(trailers:key=Gitstore-Version,valueonly,separator=)",
        "refs/artifacts/s/t",
    ).stdout.split()
    assert theirs == [x for v in ours for x in (v["commit"], str(v["version"]))]
    fsck(store_path)


def test_git_cat_file_shows_the_bytes_gitstore_get_shows(store_path: Path, files: Path) -> None:
    ok(store_path, "put", "s/t", str(files / "results"))
    info = as_json(store_path, "show", "s/t", "results/test.json")
    ours = ok(store_path, "get", "s/t", "results/test.json").stdout
    assert git(store_path, "cat-file", "-p", info["oid"]).stdout == ours
    commit = as_json(store_path, "show", "s/t")["commit"]
    assert git(store_path, "cat-file", "-p", f"{commit}:results/test.json").stdout == ours
    assert git(store_path, "rev-parse", "refs/artifacts/s/t").stdout.strip() == commit


def test_version_option() -> None:
    assert ok(None, "--version").stdout.startswith("gitstore, version ")


def test_an_error_naming_a_file_with_a_newline_stays_one_line(
    store_path: Path, tmp_path: Path
) -> None:
    fails(run(store_path, "put", "s/t", str(tmp_path / "two\nlines.log")), 7)
