"""``retain`` on real stores: the plan read from a store, its config policy, remote copies, the CLI.

The rules themselves are tested without a disk in test_retention.py; here a store's history,
git config and the heads its remotes were last seen to hold become the planner's input; a dry
run changes nothing, and an applied plan is a rewritten chain that still reads as it did.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support import fsck, git

from gitstore import NotFoundError, Store, UsageError, remoteheads
from gitstore import remote as R
from gitstore.cli.main import cli
from gitstore.retain import apply_plan


def run(store: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)


def history(store: Store, key: str, n: int, **extra: bytes) -> list[str]:
    """Put ``n`` versions of ``key`` (a diff each, plus ``extra``); return their commits."""
    return [
        store.put(key, {"diff.diff": f"change {i}\n".encode(), **extra}, force=True).commit
        for i in range(n)
    ]


def dropped(plan_dict: dict[str, object]) -> list[int]:
    return [
        v["version"]
        for t in plan_dict["tasks"]  # type: ignore[attr-defined]
        for v in t["versions"]
        if not v["keep"]
    ]


def test_a_dry_run_plans_from_the_history_and_writes_nothing(disk_store: Store) -> None:
    history(disk_store, "s/t", 5)
    assert disk_store.path is not None
    before = git(disk_store.path, "for-each-ref").stdout
    plan = disk_store.retain(keep_last=2)
    assert not plan.applied
    assert [(v.number, v.keep) for v in plan.tasks[0].versions] == [
        (5, True),
        (4, True),
        (3, False),
        (2, False),
        (1, False),
    ]
    assert plan.tasks[0].versions[0].reasons == ("latest", "last")
    assert plan.bytes_freed == 3 * len(b"change 0\n")
    assert git(disk_store.path, "for-each-ref").stdout == before
    assert len(disk_store.log("s/t")) == 5
    fsck(disk_store.path)


def test_the_scope_limits_the_plan_to_its_specs_and_tasks(disk_store: Store) -> None:
    for key in ("a/x", "a/y", "b/z"):
        history(disk_store, key, 2)
    plan = disk_store.retain(["a/y", "b"], keep_last=1)
    assert [(t.spec, t.task) for t in plan.tasks] == [("a", "y"), ("b", "z")]


def test_a_content_type_rule_expires_artifacts_not_versions(disk_store: Store) -> None:
    for i in range(3):
        disk_store.put("s/t", {"run.log": f"log {i}\n", "diff.diff": f"d {i}\n"})
    plan = disk_store.retain(content_type="text/plain", keep_last=1)
    assert plan.dropped == 0
    assert [[e.name for e in v.expire] for v in plan.tasks[0].versions] == [
        [],
        ["run.log"],
        ["run.log"],
    ]


def test_the_store_config_is_the_policy_when_no_rule_is_given(disk_store: Store) -> None:
    history(disk_store, "nightly/t", 4)
    history(disk_store, "other/t", 4)
    assert disk_store.path is not None
    git(disk_store.path, "config", "gitstore.retain.keepLast", "3")
    git(disk_store.path, "config", "gitstore.retain.spec.nightly.keepLast", "1")
    plan = disk_store.retain()
    assert {t.spec: len(t.dropped) for t in plan.tasks} == {"nightly": 3, "other": 1}


def test_no_rule_and_no_policy_is_a_usage_error(disk_store: Store) -> None:
    history(disk_store, "s/t", 2)
    with pytest.raises(UsageError, match="no retention rule"):
        disk_store.retain()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--keep-within", "7x"], 2, "'7x' is not a duration"),
        (["--keep-last", "0"], 2, "--keep-last"),
        (["--keep-tag", "novalue"], 2, "is not KEY=VALUE"),
        (["--type", "text/x-log"], 2, "give at least one --keep-* rule"),
        (["--type", "log", "--keep-last", "1"], 2, "'log' is not a content type"),
        ([], 2, "no retention rule"),
        (["nosuchspec", "--keep-last", "1"], 4, "no spec 'nosuchspec'"),
    ],
)
def test_bad_arguments_get_one_line_and_their_code(
    disk_store: Store, store_path: Path, args: list[str], code: int, message: str
) -> None:
    history(disk_store, "s/t", 2)
    result = run(store_path, "retain", *args)
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_bad_config_policy_names_the_setting_and_exits_8(
    disk_store: Store, store_path: Path
) -> None:
    history(disk_store, "s/t", 2)
    assert disk_store.path is not None
    git(disk_store.path, "config", "gitstore.retain.type.text/x-log.keepWithin", "a week")
    result = run(store_path, "retain")
    assert result.exit_code == 8
    assert "gitstore.retain.type.text/x-log.keepwithin: 'a week' is not a duration" in (
        result.stderr
    )


def test_the_cli_prints_what_goes_what_stays_and_why(disk_store: Store, store_path: Path) -> None:
    commits = history(disk_store, "s/t", 3)
    result = run(store_path, "retain", "--keep-last", "2")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "s/t"
    assert lines[1].startswith(f"  keep v3  {commits[2][:12]}  ")
    assert lines[1].endswith("latest, last")
    assert lines[3].startswith(f"  drop v1  {commits[0][:12]}")
    assert lines[-1] == "would drop 1 version; kept 2 versions; 9 B to free; --yes applies it"
    doc = json.loads(run(store_path, "retain", "--keep-last", "2", "--json").stdout)
    assert doc["applied"] is False and doc["bytes_freed"] == 9
    assert dropped(doc) == [1]


# -- copies on remotes -------------------------------------------------------------------------


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def test_push_and_pull_record_what_the_remote_holds(disk_store: Store, tmp_path: Path) -> None:
    commits = history(disk_store, "s/t", 2)
    R.add_remote(disk_store, "origin", str(bare(tmp_path / "remote.git")))
    R.push(disk_store, "origin")
    assert disk_store.path is not None
    assert remoteheads.read(disk_store.path) == {"origin": {"s/t": commits[1]}}
    with Store.open(tmp_path / "other.git", create=True) as other:
        R.add_remote(other, "up", str(tmp_path / "remote.git"))
        R.pull(other, "up")
    assert remoteheads.read(str(tmp_path / "other.git")) == {"up": {"s/t": commits[1]}}
    # A push to a bare URL has no remote name to keep its state under.
    R.push(disk_store, str(bare(tmp_path / "unnamed.git")))
    assert list(remoteheads.read(disk_store.path)) == ["origin"]
    # The state pins nothing: no ref beyond the task's own is made.
    assert git(disk_store.path, "for-each-ref", "--format=%(refname)").stdout.split() == [
        "refs/artifacts/s/t"
    ]
    fsck(disk_store.path)


def test_min_copies_keeps_versions_no_remote_has_unless_forced(
    disk_store: Store, tmp_path: Path
) -> None:
    history(disk_store, "s/t", 3)
    R.add_remote(disk_store, "origin", str(bare(tmp_path / "remote.git")))
    R.push(disk_store, "origin")
    history(disk_store, "s/t", 2)  # v4 and v5 are only here
    plan = disk_store.retain(keep_last=1, min_copies=1)
    assert [(v.number, v.keep) for v in plan.tasks[0].versions] == [
        (5, True),
        (4, True),
        (3, False),
        (2, False),
        (1, False),
    ]
    assert plan.tasks[0].versions[1].reasons == ("on 0 of 1 remotes",)
    assert disk_store.retain(keep_last=1, min_copies=1, force=True).dropped == 4


def test_min_copies_follows_versions_through_a_rewrite(disk_store: Store, tmp_path: Path) -> None:
    history(disk_store, "s/t", 4)
    R.add_remote(disk_store, "origin", str(bare(tmp_path / "remote.git")))
    R.push(disk_store, "origin")
    # v1 goes; v2..v4 are rewritten (new commits), and the remote still holds them in old form.
    disk_store.retain(keep_last=3, apply=True)
    history(disk_store, "s/t", 1)  # v5, only here
    plan = disk_store.retain(keep_last=1, min_copies=1)
    assert [(v.number, v.keep) for v in plan.tasks[0].versions] == [
        (5, True),
        (4, False),
        (3, False),
        (2, False),
    ]


def test_min_copies_comes_from_the_config_too(disk_store: Store) -> None:
    history(disk_store, "s/t", 3)
    assert disk_store.path is not None
    git(disk_store.path, "config", "gitstore.retain.minCopies", "1")
    assert disk_store.retain(keep_last=1).dropped == 0
    assert disk_store.retain(keep_last=1, min_copies=0).dropped == 2


# -- applying the plan -------------------------------------------------------------------------


def test_apply_drops_versions_and_keeps_numbers_and_uris(disk_store: Store) -> None:
    commits = history(disk_store, "s/t", 5)
    old_uri = f"gitstore://s/t@{commits[3]}/diff.diff"
    plan = disk_store.retain(keep_last=2, apply=True)
    assert plan.applied and plan.dropped == 3
    assert plan.tasks[0].new_head == disk_store.heads()["s/t"]
    assert [v.version for v in disk_store.log("s/t")] == [5, 4]
    assert disk_store.get("s/t@v4", "diff.diff") == b"change 3\n"
    # A kept version's old URI still reads its bytes; a dropped one is refused as gone.
    assert disk_store.get(old_uri) == b"change 3\n"
    with pytest.raises(NotFoundError, match="gone: dropped by retention"):
        disk_store.get(f"gitstore://s/t@{commits[0]}/diff.diff")
    # Idempotent on a real store too: a second run plans nothing.
    again = disk_store.retain(keep_last=2)
    assert again.dropped == 0 and again.bytes_freed == 0
    assert disk_store.path is not None
    fsck(disk_store.path)


def test_apply_expires_artifacts_and_records_them_in_the_manifest(disk_store: Store) -> None:
    for i in range(3):
        disk_store.put("s/t", {"run.log": f"log {i}\n", "diff.diff": f"d {i}\n"})
    disk_store.retain(content_type="text/plain", keep_last=1, apply=True)
    v1 = disk_store.show("s/t@v1")
    assert [a.name for a in v1.artifacts] == ["diff.diff"]
    assert [(r.name, r.kind, r.size) for r in v1.removed] == [("run.log", "expired", 6)]
    assert "type text/plain: keep-last 1" in v1.removed[0].why
    with pytest.raises(NotFoundError, match=r"run\.log expired on"):
        disk_store.get("s/t@v1", "run.log")
    assert disk_store.get("s/t@v3", "run.log") == b"log 2\n"
    assert disk_store.retain(content_type="text/plain", keep_last=1).expired == 0
    assert disk_store.path is not None
    fsck(disk_store.path)


def test_the_cli_applies_with_yes_and_says_what_it_did(disk_store: Store, store_path: Path) -> None:
    history(disk_store, "s/t", 3)
    result = run(store_path, "retain", "--keep-last", "1", "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("s/t  (now ")
    assert result.stdout.splitlines()[-1] == (
        "dropped 2 versions; kept 1 version; 18 B freed by the next gc"
    )
    assert [v.version for v in disk_store.log("s/t")] == [3]


def test_the_cron_line_applies_the_store_policy(disk_store: Store, store_path: Path) -> None:
    for i in range(4):
        disk_store.put("s/t", {"run.log": f"log {i}\n", "diff.diff": f"d {i}\n"})
    assert disk_store.path is not None
    git(disk_store.path, "config", "gitstore.retain.keepLast", "3")
    git(disk_store.path, "config", "gitstore.retain.type.text/plain.keepLast", "1")
    result = run(store_path, "retain", "--yes")
    assert result.exit_code == 0, result.stderr
    assert [v.version for v in disk_store.log("s/t")] == [4, 3, 2]
    assert [a.name for a in disk_store.show("s/t@v3").artifacts] == ["diff.diff"]
    assert [a.name for a in disk_store.show("s/t@v4").artifacts] == ["diff.diff", "run.log"]
    assert run(store_path, "retain").stdout.splitlines()[-1].startswith("would drop 0 versions;")
    fsck(disk_store.path)


def test_a_task_whose_history_was_replaced_after_planning_is_skipped(disk_store: Store) -> None:
    history(disk_store, "s/t", 3)
    history(disk_store, "s/u", 3)
    plan = disk_store.retain(keep_last=1)
    # s/t is deleted and written anew: its head no longer builds on the one planned from.
    disk_store.rm_task("s/t")
    fresh = history(disk_store, "s/t", 2)
    done = apply_plan(disk_store.versions, plan, at="2026-01-01T00:00:00.000000Z")
    skipped = {t.task: t.skipped for t in done.tasks}
    assert skipped["u"] is None
    assert "plan again" in (skipped["t"] or "")
    assert [v.commit for v in disk_store.log("s/t")] == fresh[::-1]
    assert [v.version for v in disk_store.log("s/u")] == [3]


def test_a_version_with_an_alias_is_never_dropped(disk_store: Store) -> None:
    history(disk_store, "s/t", 5)
    shipped = disk_store.alias("s/t@v2", "shipped")
    plan = disk_store.retain(keep_last=1, apply=True)
    assert plan.applied and plan.dropped == 3
    assert [v.version for v in disk_store.log("s/t")] == [5, 2]
    # The alias followed its version through the rewrite and still reads the same bytes.
    assert disk_store.show("s/t@shipped").version == 2
    assert disk_store.show("s/t@shipped").commit != shipped.commit
    assert disk_store.get("s/t@shipped", "diff.diff") == b"change 1\n"
    assert disk_store.path is not None
    fsck(disk_store.path)


def test_the_number_of_a_dropped_version_is_refused_as_gone(disk_store: Store) -> None:
    history(disk_store, "s/t", 4)
    disk_store.retain(keep_last=2, apply=True)
    with pytest.raises(NotFoundError, match=r"s/t@v2 is gone: dropped by retention on \d{4}-"):
        disk_store.show("s/t@v2")
    # A number that never existed is still just not found.
    with pytest.raises(NotFoundError, match="has no version v9"):
        disk_store.show("s/t@v9")
    result = run(disk_store.path, "show", "s/t@v1")  # type: ignore[arg-type]
    assert result.exit_code == 4 and "is gone: dropped by retention" in result.output
