"""Issue 14, a command line people enjoy: each finding of the issue, as the behaviour that fixes it.

Typos are loud (exit codes and "did you mean"), output is for people unless --json, long
transfers show progress on a terminal only, and the frictions found are gone (global options
after the command, put saying it created a store, log across the store, binary refused on a
terminal, one confirmation rule, diff saying what changed, completion, help with examples).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from support import git
from test_docs import exit_table

import gitstore.cli.main as cli_main
import gitstore.cli.output as cli_output
from gitstore import Store, Text, UsageError
from gitstore.cli.help import EXIT_CODES
from gitstore.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")


def run(store: Path | None, *args: str, input: bytes | str | None = None, **kw: Any) -> Result:
    prefix = ["--store", str(store)] if store is not None else []
    return CliRunner().invoke(cli, [*prefix, *args], input=input, catch_exceptions=False, **kw)


def ok(store: Path | None, *args: str, input: bytes | str | None = None, **kw: Any) -> Result:
    result = run(store, *args, input=input, **kw)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(result: Result, code: int) -> str:
    """Assert exit ``code`` with one ``gitstore:`` line on stderr; return that line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitstore: "), result.stderr
    return lines[0]


@pytest.fixture
def demo(store_path: Path, tmp_path: Path) -> Path:
    """A store with demo/t1 (two versions: run.log changed, model.bin) and demo/t2."""
    (tmp_path / "run.log").write_text("a\nb\n")
    (tmp_path / "model.bin").write_bytes(bytes(range(256)) * 8)
    ok(store_path, "put", "demo/t1", str(tmp_path / "run.log"), str(tmp_path / "model.bin"))
    ok(store_path, "put", "demo/t2", str(tmp_path / "run.log"))
    (tmp_path / "run.log").write_text("a\nc\n")
    ok(store_path, "put", "demo/t1", str(tmp_path / "run.log"), "-m", "second")
    return store_path


@pytest.fixture
def remote(demo: Path, tmp_path: Path) -> Path:
    """An empty bare repository recorded as remote ``origin`` of ``demo``."""
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    ok(demo, "remote", "add", "origin", str(path))
    return path


def remote_refs(path: Path) -> list[str]:
    return git(path, "for-each-ref", "--format=%(refname)").stdout.split()


# -- typos: an exit code and "did you mean" -----------------------------------------------------


def test_a_misspelt_spec_is_not_found_and_the_spec_suggested(demo: Path) -> None:
    assert "did you mean 'demo'?" in fails(run(demo, "ls", "dmeo"), 4)


def test_a_missing_task_lists_the_tasks_of_its_spec(demo: Path) -> None:
    assert "t1, t2" in fails(run(demo, "ls", "demo/t3"), 4)


def test_a_misspelt_task_suggests_the_nearest(demo: Path) -> None:
    ok(demo, "put", "demo/training", "-", "--as", "a", input="x")
    line = fails(run(demo, "log", "demo/trainign"), 4)
    assert "did you mean 'demo/training'?" in line


def test_a_missing_version_says_which_versions_exist(demo: Path) -> None:
    assert "demo/t1 has v1 to v2" in fails(run(demo, "show", "demo/t1@v7"), 4)


def test_a_misspelt_artifact_suggests_the_name(demo: Path) -> None:
    assert "did you mean 'run.log'?" in fails(run(demo, "get", "demo/t1", "run.lgo"), 4)


def test_get_without_a_name_lists_the_artifacts(demo: Path) -> None:
    line = fails(run(demo, "get", "demo/t1"), 2)
    assert "which artifact? it has model.bin, run.log" in line


def test_push_of_a_misspelt_remote_is_not_found_and_names_the_remote(
    demo: Path, remote: Path
) -> None:
    result = run(demo, "push", "orign")
    assert "did you mean the remote 'origin'?" in fails(result, 4)
    assert "up to date" not in result.stdout
    assert remote_refs(remote) == []


def test_push_of_a_scope_matching_nothing_is_exit_4(demo: Path, remote: Path) -> None:
    line = fails(run(demo, "push", "origin", "demo/nosuchtask"), 4)
    assert "no task 'demo/nosuchtask'" in line and "t1, t2" in line
    assert remote_refs(remote) == []


def test_pull_of_a_scope_matching_nothing_is_exit_4_not_up_to_date(
    demo: Path, remote: Path
) -> None:
    ok(demo, "push", "origin")
    result = run(demo, "pull", "origin", "nosuchspec")
    assert "the remote origin has no spec 'nosuchspec'" in fails(result, 4)
    assert "up to date" not in result.stdout


def test_a_remote_after_the_scope_is_refused_with_the_order_to_use(
    demo: Path, remote: Path
) -> None:
    # Argument order rule: REMOTE first, then scope; a remote's name later is a usage error.
    line = fails(run(demo, "push", "demo/t1", "origin"), 2)
    assert "REMOTE goes first (gitstore push origin demo/t1)" in line
    assert "no remote given" not in line


def test_sync_with_a_misspelt_remote_suggests_it(demo: Path, remote: Path) -> None:
    assert "did you mean 'origin'?" in fails(run(demo, "sync", "orgin"), 4)


def test_a_misspelt_help_topic_suggests_one() -> None:
    assert "did you mean 'exit-codes'?" in fails(run(None, "help", "exit-code"), 2)


# -- human output ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (314572800, "300.0 MiB"),
        (5 << 40, "5.0 TiB"),
    ],
)
def test_sizes_are_shown_in_binary_units(n: int, shown: str) -> None:
    assert cli_output.size(n) == shown


def test_ls_of_a_version_shows_sizes_for_people_under_headers(demo: Path) -> None:
    title, header, *rows = ok(demo, "ls", "demo/t1").stdout.splitlines()
    assert header.split() == ["NAME", "SIZE", "TYPE", "SHA256", "NOTE"]
    assert rows[0].split()[:3] == ["model.bin", "2.0", "KiB"]
    assert "commit " in title  # the commit is labelled, unlike the sha256 column


def test_a_table_longer_than_one_write_prints_every_row_once_in_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [(f"task{i}", str(i)) for i in range(10_000)]  # several writes of lines
    cli_output.table(rows, header=("TASK", "N"), right=frozenset({1}))
    header, *lines = capsys.readouterr().out.splitlines()
    assert header == "TASK         N"
    assert lines == [f"{name:<8}  {n:>4}" for name, n in rows]


def test_a_table_column_of_empty_cells_takes_no_width(capsys: pytest.CaptureFixture[str]) -> None:
    cli_output.table([("a", "", "x"), ("bb", "", "y")], indent="  ")
    assert capsys.readouterr().out.splitlines() == ["  a     x", "  bb    y"]


def test_ls_spec_shows_a_ref_holding_control_characters_escaped(demo: Path) -> None:
    # Not a value git or gitstore writes (nor can stock git write it): another tool's damage.
    (demo / "refs" / "artifacts" / "demo" / "t2").write_bytes(b"\x1b[31m" + b"0" * 35 + b"\n")
    header, *rows = ok(demo, "ls", "demo", "-v").stdout.splitlines()
    assert rows[1] == "t2    \\x1b[31m" + "0" * 35
    assert header.split() == ["TASK", "LATEST"] and rows[0].startswith("t1    ")


def test_push_rows_line_up_under_headers(demo: Path, remote: Path) -> None:
    header, *rows = ok(demo, "push", "origin").stdout.splitlines()[:-1]
    assert header.split() == ["ACTION", "TASK", "OLD", "NEW", "NOTE"]
    assert len({row.index(row.split()[3]) for row in rows}) == 1
    assert {row.split()[0] for row in rows} == {"created"}


def test_find_log_and_show_print_one_date_format(demo: Path) -> None:
    created = json.loads(ok(demo, "show", "demo/t2", "--json").stdout)["created_at"]
    shown = dt.datetime.fromisoformat(created.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%SZ")
    assert shown in ok(demo, "find", "--task", "demo/t2").stdout
    assert shown in ok(demo, "log", "demo/t2").stdout
    assert shown in ok(demo, "show", "demo/t2").stdout
    assert "T" not in DATE.findall(ok(demo, "find").stdout)[0]


def test_log_shows_how_long_ago(demo: Path) -> None:
    assert "just now" in ok(demo, "log", "demo/t1").stdout


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(5, "just now"), (90, "2 minutes ago"), (3 * 3600, "3 hours ago"), (86400, "1 day ago")],
)
def test_relative_times_read_as_people_say_them(seconds: int, said: str) -> None:
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    then = (now - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert cli_output.ago(then, now) == said


def test_show_and_gc_print_true_and_false(demo: Path) -> None:
    text = ok(demo, "show", "demo/t1", "run.log").stdout + ok(demo, "gc", "--dry-run").stdout
    assert re.search(r"executable: +false", text) and re.search(r"dry_run: +true", text)
    assert "True" not in text and "False" not in text


def test_an_empty_store_says_so(store_path: Path) -> None:
    ok(store_path, "init")
    result = ok(store_path, "ls")
    assert result.stdout == ""  # scripts still read nothing
    assert "is empty" in result.stderr


def test_json_before_or_after_the_command_is_the_same_document(demo: Path) -> None:
    after = ok(demo, "ls", "demo/t1", "--json").stdout
    assert ok(demo, "--json", "ls", "demo/t1").stdout == after
    assert json.loads(after)["version"] == 2


# -- colour, -q, -v -----------------------------------------------------------------------------


def test_no_colour_when_stdout_is_not_a_terminal(demo: Path) -> None:
    assert "\x1b[" not in ok(demo, "ls", "demo/t1").stdout


def test_color_always_colours_and_never_does_not(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "\x1b[1m" in ok(demo, "--color", "always", "ls", "demo/t1").stdout
    monkeypatch.setattr(cli_output, "is_terminal", lambda stream: True)
    assert "\x1b[" in ok(demo, "ls", "demo/t1").stdout
    assert "\x1b[" not in ok(demo, "ls", "demo/t1", "--color=never").stdout


def test_no_color_is_honoured_on_a_terminal(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_output, "is_terminal", lambda stream: True)
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in ok(demo, "ls", "demo/t1").stdout


def test_quiet_leaves_out_notes(store_path: Path) -> None:
    result = ok(store_path, "-q", "put", "s/t", "-", "--as", "a", input="x")
    assert result.stderr == "" and "s/t v1" in result.stdout


def test_verbose_shows_full_commit_ids(demo: Path) -> None:
    commit = json.loads(ok(demo, "show", "demo/t2", "--json").stdout)["commit"]
    assert commit in ok(demo, "ls", "demo", "-v").stdout
    assert commit not in ok(demo, "ls", "demo").stdout


# -- progress -------------------------------------------------------------------------------------


def test_put_and_get_progress_show_bytes_rate_and_eta(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(3 << 20))
    ok(store_path, "init")
    monkeypatch.setattr(cli_output, "progress_allowed", lambda: True)
    for result in (
        ok(store_path, "put", "s/t", str(tmp_path / "big.bin")),
        ok(store_path, "get", "s/t", "big.bin", "-o", str(tmp_path / "out")),
    ):
        last = result.stderr.replace("\r", "\n").strip().splitlines()[-1]
        # "storing: 100%|████| 3.00MiB/3.00MiB [00:00<00:00, 95.1MiB/s]": bytes, ETA, rate.
        assert re.search(r"3\.00MiB/3\.00MiB \[[\d:]+<[\d:]+, [\d.]+\wiB/s\]", last), last


def test_push_progress_shows_the_bytes_sent_of_the_expected_total_with_an_eta(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(store_path, "put", "s/t", "-", "--as", "big.bin", input=os.urandom(3 << 20))
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "r.git")], check=True)
    monkeypatch.setattr(cli_output, "progress_allowed", lambda: True)
    result = ok(store_path, "push", str(tmp_path / "r.git"))
    last = result.stderr.replace("\r", "\n").strip().splitlines()[-1]
    # "push (read 3.1 MiB): 100%|███| 3.00MiB/3.00MiB [00:00<00:00, 9.1MiB/s, ...]": the pack
    # written into git receive-pack's pipe (counted once, not again when it exits), of the
    # total push announced once it had counted the objects, and the ETA.
    sent = re.search(
        r"push \(read [^)]*\): +\d+%\|.*\| ([\d.]+)MiB/([\d.]+)MiB \[[\d:]+<[\d:]+,", last
    )
    assert sent, last
    assert 3.0 <= float(sent.group(1)) < 4.0 and 3.0 <= float(sent.group(2)) < 4.0, last


def test_push_announces_the_expected_pack_size_once_objects_are_counted(
    store_path: Path, tmp_path: Path
) -> None:
    import gitstore.remote

    remote = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(remote, "config", "receive.unpackLimit", "1")  # keep the pack as it came, to weigh it
    totals: list[int] = []
    with Store.open(store_path, create=True) as store:
        store.put("s/t", {"big.bin": os.urandom(3 << 20)})
        gitstore.remote.push(store, str(remote), on_total=totals.append)
        received = sum(p.stat().st_size for p in (remote / "objects" / "pack").glob("*.pack"))
        # The entries as stored here: the pack the remote got, within 1% (a small push deflates
        # its commits and trees afresh rather than reusing their stored entries).
        assert len(totals) == 1 and abs(totals[0] - received) < received / 100, (totals, received)
        totals.clear()
        gitstore.remote.push(store, str(remote), on_total=totals.append)
    assert totals == []  # nothing left to send: no total announced


def test_retain_shows_progress_while_it_plans_and_applies(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        ok(store_path, "put", "s/t", "-", "--as", "a.txt", input=f"v{n}")
    monkeypatch.setattr(cli_output, "progress_allowed", lambda: True)
    planned = ok(store_path, "retain", "--keep-last", "1")
    assert "retain (planning)" in planned.stderr and "it/s" not in planned.stderr
    applied = ok(store_path, "retain", "--keep-last", "1", "--yes")
    last = applied.stderr.replace("\r", "\n").strip().splitlines()[-1]
    # "retain (read 1.2 MiB): 4.00kiB [00:00, 20.1kiB/s]": bytes and rate, drawn on stderr.
    assert re.match(r"retain( \(read [^)]*\))?: [\d.]+\w?iB \[[\d:]+, ", last), last
    assert "dropped 2 versions" in applied.stdout


def test_no_progress_when_quiet(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_output, "is_terminal", lambda stream: True)
    result = ok(store_path, "-q", "put", "s/t", "-", "--as", "b", input=os.urandom(2 << 20))
    assert result.stderr == ""


def test_help_does_not_load_the_progress_library() -> None:
    code = (
        "import sys\n"
        "from gitstore.cli.main import cli\n"
        "cli.main(['--help'], standalone_mode=False)\n"
        "print('tqdm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt install tmux)")
def test_progress_is_drawn_in_a_real_terminal(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(8 << 20))
    gitstore = Path(sys.executable).parent / "gitstore"
    session = f"gitstore-test-{os.getpid()}"
    command = (
        f"{gitstore} --store {tmp_path / 's.git'} put s/t {tmp_path / 'big.bin'}; "
        f"touch {tmp_path / 'done'}; sleep 30"
    )
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "20", command],
        check=True,
        env=env,
    )
    try:
        for _ in range(300):  # a bound on waiting, not a timing assertion
            if (tmp_path / "done").exists():
                break
            time.sleep(0.1)
        screen = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert re.search(r"storing: 100%.*8\.00MiB/8\.00MiB \[.*iB/s\]", screen), screen


# -- frictions ------------------------------------------------------------------------------------


def test_global_options_are_accepted_after_the_command(demo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = CliRunner().invoke(
        cli, ["ls", "--store", str(demo), "-v", "--color", "never", "demo"], env={"HOME": "/nx"}
    )
    assert result.exit_code == 0, result.output
    assert "t1" in result.stdout


def test_a_url_store_after_the_command_is_refused_like_before_it(demo: Path) -> None:
    line = fails(run(None, "verify", "--store", "http://127.0.0.1:1"), 2)
    assert "verify needs a store on this machine" in line


def test_put_says_when_it_created_the_store(store_path: Path) -> None:
    first = ok(store_path, "put", "s/t", "-", "--as", "a", input="1")
    assert f"created a new store at {store_path}" in first.stderr
    assert ok(store_path, "put", "s/t", "-", "--as", "a", input="2").stderr == ""


def test_log_without_an_address_shows_the_newest_versions_across_the_store(demo: Path) -> None:
    header, *rows = ok(demo, "log").stdout.splitlines()
    assert header.split()[0] == "VERSION"
    assert [row.split()[0] for row in rows] == ["demo/t1@v2", "demo/t2@v1", "demo/t1@v1"]
    assert len(ok(demo, "log", "-n", "1").stdout.splitlines()) == 2


def test_get_refuses_binary_to_a_terminal(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "_stdout_is_tty", lambda: True)
    result = run(demo, "get", "demo/t1", "model.bin")
    assert "binary" in fails(result, 2) and result.stdout_bytes == b""
    assert ok(demo, "get", "demo/t1", "model.bin", "--force").stdout_bytes[:3] == b"\x00\x01\x02"
    assert ok(demo, "get", "demo/t1", "model.bin", "-o", "-").stdout_bytes[:3] == b"\x00\x01\x02"
    assert ok(demo, "get", "demo/t1", "run.log").stdout == "a\nc\n"


def test_rm_task_off_a_terminal_without_yes_deletes_nothing(demo: Path) -> None:
    result = ok(demo, "rm", "demo/t2", "--task")
    assert "would delete demo/t2" in result.stdout and "--yes" in result.stderr
    assert "refs/artifacts/demo/t2" in git(demo, "for-each-ref").stdout
    ok(demo, "rm", "demo/t2", "--task", "--yes")
    assert "refs/artifacts/demo/t2" not in git(demo, "for-each-ref").stdout


def test_rm_task_on_a_terminal_asks(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_output, "is_terminal", lambda stream: True)
    ok(demo, "rm", "demo/t2", "--task", input="n\n")
    assert "refs/artifacts/demo/t2" in git(demo, "for-each-ref").stdout
    ok(demo, "rm", "demo/t2", "--task", input="y\n")
    assert "refs/artifacts/demo/t2" not in git(demo, "for-each-ref").stdout


def test_rm_run_follows_the_same_rule(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(store_path, "put", "s/t", "-", "--as", "a", "--run", "r1", input="x")
    assert "would delete s/t" in ok(store_path, "rm-run", "r1").stdout  # no terminal: says only
    assert "refs/artifacts/s/t" in git(store_path, "for-each-ref").stdout
    monkeypatch.setattr(cli_output, "is_terminal", lambda stream: True)
    ok(store_path, "rm-run", "r1", input="y\n")
    assert "refs/artifacts/s/t" not in git(store_path, "for-each-ref").stdout


def test_diff_says_what_changed(store_path: Path, tmp_path: Path) -> None:
    (tmp_path / "a.sh").write_text("echo 1\n")
    ok(store_path, "put", "s/t", str(tmp_path / "a.sh"), "--tag", "k=1")
    (tmp_path / "a.sh").chmod(0o755)
    ok(store_path, "put", "s/t", str(tmp_path / "a.sh"), "--tag", "k=2", "--type", "text/x-sh")
    (line,) = ok(store_path, "diff", "s/t").stdout.splitlines()[1:]
    assert line == "M a.sh  type text/x-sh -> text/x-sh; tags -k=1 +k=2; mode 644 -> 755" or (
        line.startswith("M a.sh  ") and "tags -k=1 +k=2" in line and "mode 644 -> 755" in line
    )


def test_diff_patch_shows_the_line_diff_of_a_changed_text_artifact(demo: Path) -> None:
    out = ok(demo, "diff", "demo/t1", "--patch").stdout.splitlines()
    assert out[1] == "M run.log  content 4 B -> 4 B"
    assert out[2:] == ["--- a/run.log", "+++ b/run.log", "@@ -1,2 +1,2 @@", " a", "-b", "+c"]


def test_diff_patch_says_binary_artifacts_differ(store_path: Path) -> None:
    ok(store_path, "put", "s/t", "-", "--as", "m.bin", input=b"\x00\x01")
    ok(store_path, "put", "s/t", "-", "--as", "m.bin", input=b"\x00\x02")
    assert "Binary artifact m.bin differs" in ok(store_path, "diff", "s/t", "-p").stdout


# -- completion ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    script = ok(None, "completion", shell).stdout
    assert "_GITSTORE_COMPLETE" in script and f"{shell}_complete" in script


def complete(store: Path, words: str) -> list[str]:
    """What the shell would offer after ``words`` (Click's bash protocol: TYPE,VALUE lines)."""
    parts = words.split(" ")
    env = {
        "_GITSTORE_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
        "GITSTORE_DIR": str(store),
    }
    result = CliRunner().invoke(cli, [], env=env, prog_name="gitstore")
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_completion_offers_commands_and_options(demo: Path) -> None:
    assert "push" in complete(demo, "gitstore pu")
    assert "--patch" in complete(demo, "gitstore diff --pa")


def test_completion_offers_specs_tasks_and_artifact_names(demo: Path) -> None:
    assert complete(demo, "gitstore ls d") == ["demo/"]
    assert complete(demo, "gitstore get demo/") == ["demo/t1", "demo/t2"]
    assert complete(demo, "gitstore get demo/t1 ") == ["model.bin", "run.log"]


def test_completion_offers_remotes_first_for_push(demo: Path, remote: Path) -> None:
    assert complete(demo, "gitstore push ") == ["origin", "demo/"]


# -- help ------------------------------------------------------------------------------------------


def every_command() -> list[tuple[str, Any]]:
    import click

    out: list[tuple[str, Any]] = []

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in group.commands.items():
            out.append((f"{prefix}{name}", command))
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")

    walk(cli, "")
    return out


@pytest.mark.parametrize(("path", "command"), every_command(), ids=lambda x: str(x))
def test_every_command_has_a_summary_that_fits_and_examples(path: str, command: Any) -> None:
    assert not command.get_short_help_str(limit=60).endswith("..."), path
    text = ok(None, *path.split(), "--help").stdout
    examples = [line for line in text.splitlines() if line.strip().startswith("gitstore ")]
    assert "Examples:" in text and len(examples) >= 1, path
    assert len(examples) >= 2 or path.count(" ") > 0, path  # a subcommand may have one


def test_gitstore_help_lists_the_exit_codes() -> None:
    text = ok(None, "--help").stdout
    assert "Exit codes:" in text and "gitstore help exit-codes" in text


def test_help_exit_codes_matches_the_readme_table() -> None:
    table = set(exit_table())
    listed = ok(None, "help", "exit-codes").stdout
    assert set(EXIT_CODES) == table
    for code in table:
        assert re.search(rf"^\s*{code}  \S", listed, re.M), code


def test_help_of_a_command_is_its_help() -> None:
    assert ok(None, "help", "put").stdout == ok(None, "put", "--help").stdout


# -- the library asks which is meant when a str names a file -------------------------------------


def test_put_refuses_a_str_that_names_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "agent.log").write_text("the log\n")
    with Store.open(tmp_path / "s.git", create=True) as store:
        with pytest.raises(UsageError, match=r"pathlib\.Path\('out/agent\.log'\)"):
            store.put("s/t", {"agent.log": "out/agent.log"})
        assert store.heads() == {}
        store.put("s/t", {"file.log": Path("out/agent.log"), "name.txt": Text("out/agent.log")})
        assert store.get("s/t", "file.log") == b"the log\n"
        assert store.get("s/t", "name.txt") == b"out/agent.log"
        store.put("s/t", {"plain.txt": "no such file", "lines.txt": "out/agent.log\nmore"})
    assert UsageError.exit_code == 2
