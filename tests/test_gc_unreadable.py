"""Unreadable objects: gc stops without deleting anything, and reads fail with one clear line.

gc decides what no ref reaches by reading what the refs reach. An object it cannot read (its
pack lost its index, the ref names a commit that is not there, the pack is truncated, the file
cannot be opened, the bytes are damaged) might reach anything, so gc must stop before pruning and
name it, as ``git gc`` stops on a bad object. Each test damages a store one way, with stock git or
plain file operations, runs gc with no grace period and checks that NOTHING was pruned: neither
the blob only the unreadable object reaches, nor a stray blob a healthy gc prunes (the first test
shows that it does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from support import compressible, fsck, git

from gitstore import IntegrityError, Store

CLI = Path(sys.executable).parent / "gitstore"
DROP_DAC = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]
BIG = compressible(2 << 20)  # above the small-blob limit: stored as a loose object


@dataclasses.dataclass(frozen=True)
class Layout:
    """A store with one version of s/t: its commit and trees in one pack, its big blob loose."""

    path: Path
    commit: str
    tree: str
    big: str  # loose; only the version's tree reaches it
    stray: str  # loose; nothing reaches it, so a healthy gc prunes it

    def loose(self, oid: str) -> Path:
        return self.path / "objects" / oid[:2] / oid[2:]

    @property
    def pack(self) -> Path:
        (pack,) = (self.path / "objects" / "pack").glob("*.pack")
        return pack

    def untouched(self) -> bool:
        return self.loose(self.big).is_file() and self.loose(self.stray).is_file()


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    path = tmp_path / "store.git"
    with Store.open(path, create=True) as s:
        v = s.put("s/t", {"big.bin": BIG, "small.txt": b"small\n"})
    stray_file = tmp_path / "stray"
    stray_file.write_bytes(b"a blob nothing reaches\n")
    stray = git(path, "hash-object", "-w", str(stray_file)).stdout.strip()
    tree = git(path, "rev-parse", f"{v.commit}^{{tree}}").stdout.strip()
    d = Layout(path, v.commit, tree, v.artifact("big.bin").oid, stray)
    assert d.untouched() and d.pack.is_file()
    return d


def explode(d: Layout) -> None:
    """Unpack the pack with stock git, so the commit and trees become loose files too."""
    data = d.pack.read_bytes()
    for side in d.pack.parent.glob(d.pack.stem + ".*"):
        side.unlink()
    subprocess.run(["git", f"--git-dir={d.path}", "unpack-objects", "-q"], input=data, check=True)
    assert d.loose(d.commit).is_file()


def overwrite(path: Path, raw: bytes) -> None:
    path.chmod(0o644)  # objects are written read-only, as git does
    path.write_bytes(raw)


def gc_refuses(d: Layout, *named: str, dry_run: bool = False) -> str:
    """gc raises IntegrityError naming each of ``named``, and both loose blobs are still there."""
    with Store.open(d.path) as s, pytest.raises(IntegrityError) as caught:
        s.gc(prune_after=0, dry_run=dry_run)
    message = str(caught.value)
    assert "nothing pruned" in message, message
    for part in named:
        assert part in message, (part, message)
    assert d.untouched()
    return message


def missing_id(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


# -- the routes to an object gc cannot read --------------------------------------------------------


def test_a_healthy_store_gc_prunes_the_stray_and_keeps_the_version(layout: Layout) -> None:
    with Store.open(layout.path) as s:
        report = s.gc(prune_after=0)
        assert s.get("s/t", "big.bin") == BIG
    assert report.pruned_objects == 1
    assert not layout.loose(layout.stray).exists()
    assert layout.loose(layout.big).is_file()


def test_a_pack_without_its_index_stops_gc_until_git_index_pack_restores_it(
    layout: Layout,
) -> None:
    pack = layout.pack
    pack.with_suffix(".idx").unlink()
    gc_refuses(layout, layout.commit, "refs/artifacts/s/t", pack.name, "no .idx")
    git(layout.path, "index-pack", str(pack))
    with Store.open(layout.path) as s:
        assert s.verify() == []
        assert s.gc(prune_after=0).pruned_objects == 1
        assert s.get("s/t", "big.bin") == BIG
    fsck(layout.path)


def test_a_ref_to_a_missing_commit_stops_gc(layout: Layout) -> None:
    gone = missing_id("a commit that was never written")
    (layout.path / "refs" / "artifacts" / "s" / "t").write_text(gone + "\n")
    gc_refuses(layout, gone, "missing", "refs/artifacts/s/t")


def test_a_truncated_pack_stops_gc(layout: Layout) -> None:
    pack = layout.pack
    os.truncate(pack, pack.stat().st_size - 100)
    gc_refuses(layout, layout.commit, pack.name, "does not match its index")


def test_an_object_file_that_cannot_be_opened_stops_gc(layout: Layout) -> None:
    # A folder where the commit's file should be: open() fails even for root, who reads through
    # mode 000 (test_cli_gc_stops_on_a_pack_it_may_not_read covers permissions).
    explode(layout)
    commit_file = layout.loose(layout.commit)
    commit_file.unlink()
    commit_file.mkdir()
    gc_refuses(layout, layout.commit, "Is a directory")


def test_a_zlib_damaged_loose_tree_stops_gc(layout: Layout) -> None:
    explode(layout)
    tree_file = layout.loose(layout.tree)
    raw = bytearray(tree_file.read_bytes())
    raw[len(raw) // 2 :] = b"\xff" * (len(raw) - len(raw) // 2)
    overwrite(tree_file, bytes(raw))
    gc_refuses(layout, layout.tree, "refs/artifacts/s/t")


def test_a_loose_tree_holding_another_trees_bytes_stops_gc(layout: Layout) -> None:
    # Valid zlib, a valid (empty) tree: only its id tells. Taken at its word it reaches nothing.
    explode(layout)
    overwrite(layout.loose(layout.tree), zlib.compress(b"tree 0\0"))
    gc_refuses(layout, layout.tree, "hash to")


def test_a_ref_that_holds_no_object_id_stops_gc(layout: Layout) -> None:
    (layout.path / "refs" / "artifacts" / "s" / "t").write_text("not an id\n")
    gc_refuses(layout, "refs/artifacts/s/t", "not an object id")


def test_a_dry_run_stops_with_the_same_error(layout: Layout) -> None:
    layout.pack.with_suffix(".idx").unlink()
    gc_refuses(layout, layout.commit, "refs/artifacts/s/t", dry_run=True)


def test_gc_on_damage_still_cleans_temp_files_but_merges_no_pack(layout: Layout) -> None:
    with Store.open(layout.path) as s:
        for i in range(4):
            s.put("s/more", {"n": str(i)})
    tmp = layout.path / "objects" / "tmp_obj_1_abandoned"
    tmp.write_bytes(b"half a blob")
    old = 0.0
    os.utime(tmp, (old, old))
    gone = missing_id("no such commit")
    (layout.path / "refs" / "artifacts" / "s" / "t").write_text(gone + "\n")
    packs = sorted(p.name for p in (layout.path / "objects" / "pack").iterdir())
    gc_refuses(layout, gone)
    assert not tmp.exists()
    assert sorted(p.name for p in (layout.path / "objects" / "pack").iterdir()) == packs
    (layout.path / "refs" / "artifacts" / "s" / "t").write_text(layout.commit + "\n")
    with Store.open(layout.path) as s:
        assert s.gc(prune_after=0).merges >= 1  # what the damage held back


# -- which refs count, and what they reach ---------------------------------------------------------


def _commit_of_stray(d: Layout) -> str:
    """A commit (made with stock git) whose tree holds the stray blob."""
    tree = subprocess.run(
        ["git", f"--git-dir={d.path}", "mktree"],
        input=f"100644 blob {d.stray}\tstray.txt\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return git(d.path, "commit-tree", tree, "-m", "outside the artifacts").stdout.strip()


def test_an_annotated_tag_keeps_what_it_reaches(layout: Layout) -> None:
    commit = _commit_of_stray(layout)
    git(layout.path, "tag", "-a", "kept", commit, "-m", "keep it")
    with Store.open(layout.path) as s:
        assert s.gc(prune_after=0).pruned_objects == 0
    assert layout.untouched()


def test_a_detached_head_keeps_what_it_reaches(layout: Layout) -> None:
    commit = _commit_of_stray(layout)
    (layout.path / "HEAD").write_text(commit + "\n")
    with Store.open(layout.path) as s:
        assert s.gc(prune_after=0).pruned_objects == 0
    assert layout.untouched()


def test_a_tag_of_a_missing_object_stops_gc(layout: Layout) -> None:
    gone = missing_id("tagged, never written")
    tag = subprocess.run(
        ["git", f"--git-dir={layout.path}", "hash-object", "-t", "tag", "-w", "--stdin"],
        input=f"object {gone}\ntype commit\ntag lost\ntagger t <t@example.invalid> 0 +0000\n\nx\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (layout.path / "refs" / "tags").mkdir(exist_ok=True)
    (layout.path / "refs" / "tags" / "lost").write_text(tag + "\n")
    gc_refuses(layout, gone, "refs/tags/lost")


def test_a_submodule_entry_is_not_followed(layout: Layout) -> None:
    # A gitlink names a commit of another repository: not being here is no damage.
    other = missing_id("a commit of another repository")
    tree = subprocess.run(
        ["git", f"--git-dir={layout.path}", "mktree"],
        input=f"160000 commit {other}\tsub\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    commit = git(layout.path, "commit-tree", tree, "-m", "with a submodule").stdout.strip()
    git(layout.path, "update-ref", "refs/heads/with-sub", commit)
    with Store.open(layout.path) as s:
        assert s.gc(prune_after=0).pruned_objects == 1
    assert not layout.loose(layout.stray).exists()


# -- through the CLI -------------------------------------------------------------------------------


def run_cli(
    store: Path, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, str(CLI), "--store", str(store), *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,  # a hang guard, not a speed claim
        stdin=subprocess.DEVNULL,
    )


def one_error_line(r: subprocess.CompletedProcess[str], code: int, *named: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitstore: "), r.stderr
    for part in named:
        assert part in lines[0], (part, lines[0])


def test_cli_gc_on_a_pack_without_its_index_exits_6_and_verify_is_clean_after_index_pack(
    layout: Layout,
) -> None:
    pack = layout.pack
    pack.with_suffix(".idx").unlink()
    r = run_cli(layout.path, "gc", "--prune-after", "0")
    one_error_line(r, IntegrityError.exit_code, layout.commit, "refs/artifacts/s/t")
    assert r.stdout == ""
    assert layout.untouched()
    git(layout.path, "index-pack", str(pack))
    ok = run_cli(layout.path, "verify")
    assert (ok.returncode, ok.stdout) == (0, "ok: no problems found\n"), ok.stderr
    pruned = run_cli(layout.path, "gc", "--prune-after", "0", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert '"pruned_objects": 1' in pruned.stdout
    assert layout.loose(layout.big).is_file()


def _denial_prefix(probe: Path) -> tuple[str, ...]:
    """How to run the CLI so that a mode-000 file is unreadable to it (or skip, saying why)."""
    probe.write_text("secret\n")
    probe.chmod(0)
    try:
        with open(probe, "rb"):
            pass
    except PermissionError:
        return ()
    # Readable although mode 000: we run as root (CAP_DAC_OVERRIDE). Drop that capability and
    # CAP_DAC_READ_SEARCH for the CLI process; then the kernel denies it like any other user.
    if shutil.which("setpriv") is None:
        pytest.skip("root reads through mode 000, and setpriv (to drop that) is not installed")
    if subprocess.run([*DROP_DAC, "cat", str(probe)], capture_output=True).returncode == 0:
        pytest.skip("even without CAP_DAC_OVERRIDE (setpriv) a mode-000 file stays readable")
    return tuple(DROP_DAC)


def test_cli_gc_stops_on_a_pack_it_may_not_read(layout: Layout, tmp_path: Path) -> None:
    prefix = _denial_prefix(tmp_path / "probe")
    pack = layout.pack
    pack.chmod(0)
    r = run_cli(layout.path, "gc", "--prune-after", "0", prefix=prefix)
    one_error_line(r, IntegrityError.exit_code, layout.commit, pack.name, "Permission denied")
    assert layout.untouched()


# -- reads of a damaged pack -----------------------------------------------------------------------


@pytest.fixture
def truncated(layout: Layout) -> Layout:
    """The store repacked by stock git into one pack (the big blob too), then truncated."""
    git(layout.path, "repack", "-a", "-d", "-q")
    assert not layout.loose(layout.big).exists()
    os.truncate(layout.pack, layout.pack.stat().st_size - 40)
    return layout


@pytest.mark.parametrize(
    "args",
    [("ls", "s/t"), ("show", "s/t"), ("get", "s/t", "small.txt"), ("get", "s/t", "big.bin")],
    ids=["ls", "show", "get-small", "get-big"],
)
def test_reading_a_truncated_pack_is_one_clear_line(
    truncated: Layout, args: tuple[str, ...]
) -> None:
    r = run_cli(truncated.path, *args)
    one_error_line(
        r, IntegrityError.exit_code, truncated.commit, truncated.pack.name, "does not match"
    )


def test_verify_reports_a_truncated_pack(truncated: Layout) -> None:
    r = run_cli(truncated.path, "verify")
    one_error_line(r, IntegrityError.exit_code)
    assert truncated.commit[:12] in r.stdout and truncated.pack.name in r.stdout, r.stdout


def test_a_damaged_pack_is_passed_over_for_a_loose_copy(layout: Layout, tmp_path: Path) -> None:
    # Loose copies of the packed objects (stock git unpacks only what the store lacks, so the
    # pack steps aside meanwhile); packs are looked in first, so the damaged one is met first.
    pack = layout.pack
    aside = tmp_path / "aside"
    aside.mkdir()
    for side in pack.parent.glob(pack.stem + ".*"):
        side.rename(aside / side.name)
    data = (aside / pack.name).read_bytes()
    subprocess.run(
        ["git", f"--git-dir={layout.path}", "unpack-objects", "-q"], input=data, check=True
    )
    for side in aside.iterdir():
        side.rename(pack.parent / side.name)
    os.truncate(pack, pack.stat().st_size - 40)
    with Store.open(layout.path) as s:
        assert s.get("s/t", "small.txt") == b"small\n"
        assert s.verify() == []
