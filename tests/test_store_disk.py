"""Disk-only behaviour: what a refused write leaves on disk, opening paths, damaged objects."""

from __future__ import annotations

import os
import subprocess
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitstore import (
    ArtifactNotFoundError,
    InputError,
    IntegrityError,
    InvalidNameError,
    Store,
    StoreError,
    StoreNotFoundError,
    UsageError,
)


def snapshot(gitdir: Path) -> dict[str, bytes]:
    """Every file of the store except objects' contents: names of objects, refs with values."""
    out: dict[str, bytes] = {}
    for root, _dirs, files in os.walk(gitdir):
        for f in files:
            full = Path(root) / f
            rel = full.relative_to(gitdir).as_posix()
            out[rel] = b"" if rel.startswith("objects/") else full.read_bytes()
    return out


def loose_path(gitdir: Path, oid: str) -> Path:
    return gitdir / "objects" / oid[:2] / oid[2:]


def explode(gitdir: Path) -> None:
    """Turn every pack into loose objects, so one object's file can be damaged on its own."""
    pack_dir = gitdir / "objects" / "pack"
    for pack in sorted(pack_dir.glob("*.pack")):
        data = pack.read_bytes()
        for side in pack_dir.glob(pack.stem + ".*"):
            side.unlink()
        subprocess.run(
            ["git", f"--git-dir={gitdir}", "unpack-objects", "-q"], input=data, check=True
        )


@pytest.fixture
def reopen(store_path: Path) -> Iterator[Callable[[], Store]]:
    """Open the store again (after its files were changed behind the first Store's back)."""
    opened: list[Store] = []

    def open_again() -> Store:
        opened.append(Store.open(store_path))
        return opened[-1]

    yield open_again
    for s in opened:
        s.close()


def overwrite_loose(gitdir: Path, oid: str, raw: bytes) -> None:
    """Replace a loose object file's bytes (objects are written read-only, as git does)."""
    path = loose_path(gitdir, oid)
    assert path.is_file(), f"{oid} is not a loose object"
    os.chmod(path, 0o644)
    path.write_bytes(raw)


# -- refused writes leave the store as it was -------------------------------------------------


@pytest.fixture
def seeded(disk_store: Store) -> Store:
    disk_store.put("s/t", {"a": b"a", "dir/b": b"b"})
    return disk_store


def test_put_with_a_bad_name_writes_nothing(seeded: Store, store_path: Path) -> None:
    before = snapshot(store_path)
    with pytest.raises(InvalidNameError):
        seeded.put("s/t", {"new.txt": b"fresh bytes", "../escape": b"more fresh bytes"})
    assert snapshot(store_path) == before


def test_put_of_a_missing_file_writes_nothing(
    seeded: Store, store_path: Path, tmp_path: Path
) -> None:
    before = snapshot(store_path)
    with pytest.raises(InputError):
        seeded.put("s/t", {"new.txt": b"fresh bytes", "gone": tmp_path / "missing"})
    assert snapshot(store_path) == before


def test_put_of_a_folder_holding_a_bad_name_writes_nothing(
    seeded: Store, store_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "good.txt").write_bytes(b"fresh bytes")
    (tmp_path / "out" / "bad\x01name").write_bytes(b"more fresh bytes")
    before = snapshot(store_path)
    with pytest.raises(InvalidNameError, match="control character"):
        seeded.put("s/t", {"out": tmp_path / "out"})
    assert snapshot(store_path) == before


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """A folder with a good file and a symbolic link to a secret file outside it."""
    (tmp_path / "secret").write_bytes(b"private key")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "good.txt").write_bytes(b"fresh bytes")
    (tmp_path / "out" / "leak").symlink_to(tmp_path / "secret")
    return tmp_path / "out"


def test_put_of_a_folder_holding_a_symlink_writes_nothing(
    seeded: Store, store_path: Path, linked: Path
) -> None:
    before = snapshot(store_path)
    with pytest.raises(InputError, match="symbolic link"):
        seeded.put("s/t", {"out": linked})
    assert snapshot(store_path) == before


def test_check_put_refuses_a_symlink_inside_a_folder(linked: Path) -> None:
    with pytest.raises(InputError, match="leak"):
        Store.check_put("s/t", {"out": linked})
    Store.check_put("s/t", {"out": linked}, follow_symlinks=True)


def test_put_follow_symlinks_stores_what_a_link_to_a_file_points_at(
    seeded: Store, linked: Path
) -> None:
    seeded.put("s/t", {"out": linked}, follow_symlinks=True)
    assert seeded.get("s/t", "out/leak") == b"private key"
    assert seeded.get("s/t", "out/good.txt") == b"fresh bytes"


def test_put_follow_symlinks_refuses_a_link_loop(
    seeded: Store, store_path: Path, linked: Path
) -> None:
    (linked / "loop").symlink_to(linked / "loop")
    before = snapshot(store_path)
    with pytest.raises(InputError, match="cannot be followed"):
        seeded.put("s/t", {"out": linked}, follow_symlinks=True)
    assert snapshot(store_path) == before


def test_put_with_metadata_that_is_not_json_writes_nothing(seeded: Store, store_path: Path) -> None:
    before = snapshot(store_path)
    with pytest.raises(UsageError):
        seeded.put("s/t", {"new.txt": b"fresh bytes"}, metadata={"x": object()})
    assert snapshot(store_path) == before


def test_file_and_folder_conflict_in_one_put_writes_nothing(
    seeded: Store, store_path: Path
) -> None:
    before = snapshot(store_path)
    with pytest.raises(InvalidNameError):
        seeded.put("s/t", {"x": b"fresh bytes", "x/y": b"more fresh bytes"})
    assert snapshot(store_path) == before


@pytest.mark.parametrize("size", [100, (1 << 20) + 100], ids=["small", "large"])
def test_folder_under_a_previous_file_writes_nothing(
    seeded: Store, store_path: Path, size: int
) -> None:
    # DESIGN 1: a refused name is refused "before anything is written". Here the conflict is with
    # the previous version's file "a", which the put can see before it stores any blob.
    before = snapshot(store_path)
    with pytest.raises(InvalidNameError, match="'a' is a file"):
        seeded.put("s/t", {"a/under": os.urandom(size)})
    assert snapshot(store_path) == before


def test_rm_of_a_missing_name_writes_nothing(seeded: Store, store_path: Path) -> None:
    before = snapshot(store_path)
    with pytest.raises(ArtifactNotFoundError):
        seeded.rm("s/t", ["a", "nope"])
    assert snapshot(store_path) == before


def test_unchanged_put_moves_no_ref(seeded: Store, store_path: Path) -> None:
    before = snapshot(store_path)
    assert seeded.put("s/t", {"a": b"a"}).created is False
    refs = {k: v for k, v in snapshot(store_path).items() if k.startswith("refs/")}
    assert refs == {k: v for k, v in before.items() if k.startswith("refs/")}


# -- opening ----------------------------------------------------------------------------------


def test_open_of_a_missing_path_is_store_not_found(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        Store.open(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_open_of_a_plain_folder_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "file.txt").write_text("x")
    with pytest.raises(StoreError, match="not a gitstore"):
        Store.open(tmp_path / "plain")


def test_open_of_a_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError):
        Store.open(tmp_path / "file")


def test_store_error_is_not_a_not_found_error(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError) as err:
        Store.open(tmp_path / "plain")
    assert not isinstance(err.value, StoreNotFoundError)


def test_create_in_a_folder_with_files_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(StoreError):
        Store.open(tmp_path / "busy", create=True)
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]


def test_create_in_an_empty_folder_makes_a_bare_repository(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with Store.open(tmp_path / "empty", create=True) as s:
        s.put("s/t", {"a": b"a"})
    out = subprocess.run(
        ["git", f"--git-dir={tmp_path / 'empty'}", "rev-parse", "--is-bare-repository"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "true"


def test_open_of_a_working_tree_uses_its_git_folder(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "wt")], check=True)
    with Store.open(tmp_path / "wt") as s:
        s.put("s/t", {"a": b"a"})
    assert (tmp_path / "wt" / ".git" / "refs" / "artifacts" / "s" / "t").is_file()


def test_a_bad_gitstore_setting_is_a_store_error(disk_store: Store, store_path: Path) -> None:
    subprocess.run(
        ["git", f"--git-dir={store_path}", "config", "gitstore.compression", "42"], check=True
    )
    with pytest.raises(StoreError, match="compression"):
        Store.open(store_path)


def test_second_store_object_on_the_same_path_sees_new_versions(
    disk_store: Store, store_path: Path
) -> None:
    with Store.open(store_path) as other:
        other.put("s/t", {"a": b"from the other"})
    assert disk_store.get("s/t", "a") == b"from the other"
    v2 = disk_store.put("s/t", {"b": b"b"})
    assert v2.version == 2


def test_uri_resolves_after_rm_task_in_a_freshly_opened_store(
    disk_store: Store, store_path: Path
) -> None:
    uri = disk_store.put("s/t", {"a": b"pinned"}).artifact("a").uri
    disk_store.put("s/t", {"a": b"newer"})
    disk_store.rm_task("s/t")
    with Store.open(store_path) as fresh:
        assert fresh.get(uri) == b"pinned"


# -- damaged objects --------------------------------------------------------------------------


def test_verify_names_the_artifact_whose_object_is_corrupt(
    disk_store: Store, store_path: Path, reopen: Callable[[], Store]
) -> None:
    v = disk_store.put("s/t", {"log.log": b"original log line\n" * 50, "ok": b"fine"})
    disk_store.put("s/u", {"other": b"untouched"})
    explode(store_path)
    oid = v.artifact("log.log").oid
    raw = bytearray(loose_path(store_path, oid).read_bytes())
    raw[len(raw) // 2 :] = b"\xff" * (len(raw) - len(raw) // 2)
    overwrite_loose(store_path, oid, bytes(raw))
    store = reopen()
    problems = store.verify()
    assert problems
    assert {(p.spec, p.task, p.name) for p in problems} == {("s", "t", "log.log")}
    assert "s/t" in str(problems[0]) and "log.log" in str(problems[0])
    assert store.verify("s/u") == []


def test_verify_reports_a_blob_whose_bytes_were_replaced(
    disk_store: Store, store_path: Path, reopen: Callable[[], Store]
) -> None:
    v = disk_store.put("s/t", {"a": b"honest"})
    explode(store_path)
    overwrite_loose(store_path, v.artifact("a").oid, zlib.compress(b"blob 6\0forged"))
    (problem,) = reopen().verify("s/t")
    assert (problem.spec, problem.task, problem.name, problem.commit) == ("s", "t", "a", v.commit)


def test_open_artifact_with_verify_raises_on_tampered_bytes(
    disk_store: Store, store_path: Path, reopen: Callable[[], Store]
) -> None:
    v = disk_store.put("s/t", {"a": b"honest"})
    explode(store_path)
    overwrite_loose(store_path, v.artifact("a").oid, zlib.compress(b"blob 6\0forged"))
    store = reopen()
    with pytest.raises(IntegrityError, match="sha256"):  # noqa: SIM117 - raised by read()
        with store.open_artifact("s/t", "a", verify=True) as f:
            f.read()


def test_open_artifact_with_verify_raises_on_a_tampered_large_blob(
    disk_store: Store, store_path: Path, reopen: Callable[[], Store]
) -> None:
    data = os.urandom((1 << 20) + 100)
    v = disk_store.put("s/t", {"big": data})
    explode(store_path)
    forged = bytearray(data)
    forged[-1] ^= 1
    overwrite_loose(
        store_path, v.artifact("big").oid, zlib.compress(b"blob %d\0" % len(data) + forged)
    )
    store = reopen()
    with pytest.raises(IntegrityError, match="sha256"):  # noqa: SIM117 - raised by read()
        with store.open_artifact("s/t", "big", verify=True) as f:
            for _ in f.iter_chunks():
                pass


def test_get_of_a_garbled_object_is_an_integrity_error(
    disk_store: Store, store_path: Path, reopen: Callable[[], Store]
) -> None:
    v = disk_store.put("s/t", {"a": b"some bytes"})
    explode(store_path)
    overwrite_loose(store_path, v.artifact("a").oid, b"this is not zlib at all")
    with pytest.raises(IntegrityError):
        reopen().get("s/t", "a")


def test_get_of_a_truncated_object_is_an_integrity_error(
    disk_store: Store, store_path: Path, reopen: Callable[[], Store]
) -> None:
    v = disk_store.put("s/t", {"a": os.urandom(5000)})
    explode(store_path)
    oid = v.artifact("a").oid
    overwrite_loose(store_path, oid, loose_path(store_path, oid).read_bytes()[:2000])
    with pytest.raises(IntegrityError):
        reopen().get("s/t", "a")


def test_get_of_a_missing_object_is_an_integrity_error(
    disk_store: Store, store_path: Path, reopen: Callable[[], Store]
) -> None:
    v = disk_store.put("s/t", {"a": b"soon gone"})
    explode(store_path)
    loose_path(store_path, v.artifact("a").oid).unlink()
    store = reopen()
    with pytest.raises(IntegrityError, match="missing"):
        store.get("s/t", "a")
    (problem,) = store.verify()
    assert problem.name == "a"


def test_a_file_of_a_folder_that_becomes_a_link_before_it_is_read_is_refused(
    disk_store: Store, tmp_path: Path
) -> None:
    """Between the folder walk and the read, another process swaps a file for a link to a
    secret: the read does not follow it (O_NOFOLLOW), and nothing is stored."""
    from gitstore.ingest import Ingest, prepare

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "log.log").write_text("an ordinary log\n")
    secret = tmp_path / "id_rsa"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    _, _, inputs = prepare("s/t", {"out": folder}, None, None, None)
    (folder / "log.log").unlink()
    (folder / "log.log").symlink_to(secret)
    assert disk_store.path is not None
    ingest = Ingest(disk_store.versions.objects, disk_store.path, fsync=False)
    with pytest.raises(InputError, match="became a symbolic link"):
        ingest.store(inputs, None)
    assert disk_store.heads() == {}
