"""Bad input: a corpus of hostile inputs, each refused with its exit code and one clear line.

The corpus goes through the real console script (``gitstore`` next to this interpreter) as a
subprocess, and the names part of it also through the library (NUL cannot travel in argv). For a
refused command the tests demand:

* the documented exit code (2 usage, 3 invalid name, 4 not found, 6 integrity, 7 input, 8 store);
* exactly one line on stderr, starting with ``gitstore: `` and naming the offending part;
* nothing on stdout, and NOTHING written: every file and folder of the store (names and sizes)
  is the same before and after; a store that did not exist still does not.

Each case runs on its own copy of one template store, so cases run in parallel and a stray write
is pinned on the case that made it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import stat
import subprocess
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import writer_proc as wp

from gitstore import IntegrityError, InvalidNameError, Store

CLI = Path(sys.executable).parent / "gitstore"
TIMEOUT = 30  # a hang guard (a fifo read forever would hit it), not a speed claim
DROP_DAC = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]

pytestmark = pytest.mark.skipif(
    not CLI.exists(), reason=f"no console script at {CLI} (run: pip install -e .)"
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile command line. ``{S}`` is the store, ``{W}`` the inputs folder, ``{C}`` the
    commit of the template's v2. ``store``: ``copy`` (of the template), ``missing`` (no such
    path), ``file`` (a plain file), ``nongit`` (a folder that is not a repository)."""

    id: str
    args: tuple[str, ...]
    code: int
    mention: str
    store: str = "copy"


def C(id: str, args: str | list[str], code: int, mention: str, store: str = "copy") -> Case:
    argv = args.split() if isinstance(args, str) else args
    return Case(id, tuple(argv), code, mention, store)


LONG = "t" * 129
NAME_1025 = "n" * 1025

CORPUS = [
    # -- hostile spec/task names (exit 3) ---------------------------------------------------
    C("addr-dotdot-spec", "put ../x {W}/file.txt", 3, "'..'"),
    C("addr-traversal", "put a/../b {W}/file.txt", 3, "a/../b"),
    C("addr-absolute", "put /etc {W}/file.txt", 3, "spec is empty"),
    C("addr-dot-git-spec", "put .git/task {W}/file.txt", 3, "'.git'"),
    C("addr-newline", ["put", "sp\nec/task", "{W}/file.txt"], 3, "'sp\\nec'"),
    C("addr-escape", ["put", "spec/\x1b[31mred", "{W}/file.txt"], 3, "\\x1b"),
    C("addr-del", ["put", "spec/task\x7f", "{W}/file.txt"], 3, "\\x7f"),
    C("addr-lock", "put spec/task.lock {W}/file.txt", 3, "'.lock'"),
    C("addr-empty", ["put", "", "{W}/file.txt"], 3, "empty"),
    C("addr-no-task", "put spec {W}/file.txt", 3, "names no task"),
    C("addr-double-slash", "put spec//task {W}/file.txt", 3, "spec//task"),
    C("addr-129-chars", f"put spec/{LONG} {{W}}/file.txt", 3, "129 characters"),
    C("addr-leading-dash", "put -- -spec/task {W}/file.txt", 3, "'-spec'"),
    C("addr-leading-dot", "put .spec/task {W}/file.txt", 3, "'.spec'"),
    C("addr-space", ["put", "my spec/task", "{W}/file.txt"], 3, "'my spec'"),
    C("addr-unicode", "put spéc/task {W}/file.txt", 3, "'spéc'"),
    C("addr-tilde", "put spec/task~1 {W}/file.txt", 3, "'task~1'"),
    C("addr-rev-on-put", "put spec/task@v1 {W}/file.txt", 3, "revision"),
    # -- hostile artifact names through --as (exit 3) ---------------------------------------
    C("as-traversal", "put spec/task {W}/file.txt --as ../x", 3, "'../x'"),
    C("as-absolute", "put spec/task {W}/file.txt --as /abs", 3, "'/abs'"),
    C("as-empty-component", "put spec/task {W}/file.txt --as a//b", 3, "'a//b'"),
    C("as-dot-component", "put spec/task {W}/file.txt --as ./a", 3, "'./a'"),
    C("as-dot-git", "put spec/task {W}/file.txt --as .git/config", 3, "'.git/config'"),
    C("as-dot-git-upper", "put spec/task {W}/file.txt --as x/.GIT/y", 3, "'x/.GIT/y'"),
    C("as-reserved", "put spec/task {W}/file.txt --as .gitstore/manifest.json", 3, "reserved"),
    C("as-control", ["put", "spec/task", "{W}/file.txt", "--as", "a\x01b"], 3, "'a\\x01b'"),
    C("as-backslash", ["put", "spec/task", "{W}/file.txt", "--as", "a\\b"], 3, "backslash"),
    C("as-1025-bytes", f"put spec/task {{W}}/file.txt --as {NAME_1025}", 3, "1025 bytes"),
    C("as-empty", ["put", "spec/task", "{W}/file.txt", "--as", ""], 3, "empty"),
    C("as-trailing-slash", "put spec/task {W}/file.txt --as a/", 3, "'a/'"),
    C("as-folder-traversal", "put spec/task {W}/folder --as ../up", 3, "'../up'"),
    # dir/b.txt is a FILE in the latest version, so nothing can go under it.
    C("as-file-over-folder", "put spec/task {W}/file.txt --as dir/b.txt/c", 3, "'dir/b.txt'"),
    C("as-file-over-folder-big", "put spec/task {W}/big.bin --as dir/b.txt/c", 3, "'dir/b.txt'"),
    # -- hostile names inside a folder (exit 3) ---------------------------------------------
    C("folder-holding-dot-git", "put spec/task {W}/with-git", 3, ".git"),
    C("folder-holding-control-name", "put spec/task {W}/with-ctrl", 3, "\\x01"),
    # -- unusable inputs (exit 7, or 2 for arguments that do not fit) -----------------------
    C("missing-file", "put spec/task {W}/nope.txt", 7, "nope.txt"),
    C("missing-after-good", "put spec/task {W}/file.txt {W}/nope.txt", 7, "nope.txt"),
    C("fifo", "put spec/task {W}/fifo", 7, "fifo"),
    C("char-device", "put spec/task /dev/null", 7, "/dev/null"),
    C("fifo-in-folder", "put spec/task {W}/with-fifo", 7, "with-fifo/pipe"),
    C("symlink-to-folder-inside", "put spec/task {W}/with-dirlink", 7, "with-dirlink/link"),
    C("dangling-symlink-inside", "put spec/task {W}/with-dangling", 7, "with-dangling/gone"),
    C("empty-folder", "put spec/task {W}/empty", 7, "no files"),
    C("stdin-without-as", "put spec/task -", 2, "--as"),
    C("as-with-two-paths", "put spec/task {W}/file.txt {W}/folder --as x", 2, "--as"),
    C("same-name-twice", "put spec/task {W}/file.txt {W}/folder/file.txt", 2, "'file.txt'"),
    # -- stores that are not there or not stores --------------------------------------------
    C("missing-store-ls", "ls", 4, "{S}", store="missing"),
    C("missing-store-get", "get spec/task a.txt", 4, "{S}", store="missing"),
    C("missing-store-verify", "verify", 4, "{S}", store="missing"),
    C("store-is-a-file-ls", "ls", 8, "{S}", store="file"),
    C("store-is-a-file-put", "put spec/task {W}/file.txt", 8, "{S}", store="file"),
    C("store-not-git-ls", "ls", 8, "{S}", store="nongit"),
    # A refused put must not leave a new, empty store behind either.
    C("missing-store-bad-as", "put spec/task {W}/file.txt --as ../x", 3, "'../x'", "missing"),
    C("missing-store-missing-file", "put spec/task {W}/nope.txt", 7, "nope.txt", "missing"),
    C("missing-store-bad-addr", "put ../x {W}/file.txt", 3, "'..'", store="missing"),
    # -- revisions and addresses that do not resolve ----------------------------------------
    C("rev-v99", "get spec/task@v99 a.txt", 4, "v99"),
    C("rev-back-50", "get spec/task@~50 a.txt", 4, "~50"),
    C("rev-unknown-commit", "get spec/task@deadbeef a.txt", 4, "deadbeef"),
    C("rev-head-word", "get spec/task@HEAD a.txt", 3, "'HEAD'"),
    C("rev-unknown-alias", "get spec/task@vX a.txt", 4, "'vX'"),
    C("rev-v0", "get spec/task@v0 a.txt", 3, "'v0'"),
    C("rev-empty", "show spec/task@", 3, "revision ''"),
    C("rev-short-hex", "show spec/task@abc", 3, "'abc'"),
    C("missing-task-log", "log spec/nope", 4, "spec/nope"),
    C("missing-artifact", "get spec/task nope.txt", 4, "'nope.txt'"),
    C("get-bad-name", "get spec/task ../a.txt", 3, "'../a.txt'"),
    C("ls-bad-spec", "ls ../x", 3, "'..'"),
    C("verify-missing-task", "verify spec/nope", 4, "spec/nope"),
    # -- URIs --------------------------------------------------------------------------------
    C("uri-missing-name", "get gitstore://spec/task@{C}/nope.txt", 4, "'nope.txt'"),
    C("uri-unknown-commit", "get gitstore://spec/task@deadbeef/a.txt", 4, "deadbeef"),
    C("uri-empty-rev", "get gitstore://spec/task@/a.txt", 3, "gitstore://spec/task@/a.txt"),
    C("uri-no-name", "get gitstore://spec/task@{C}", 3, "gitstore://spec/task@"),
    C("uri-traversal-spec", "get gitstore://../task@{C}/a.txt", 3, "'..'"),
    C("uri-escaped-traversal", "get gitstore://spec/task@{C}/..%2Fa.txt", 3, "'../a.txt'"),
    C("uri-bad-escape", "get gitstore://spec/task@{C}/%ff", 3, "%ff"),
    C("uri-other-scheme", "get http://spec/task@{C}/a.txt", 3, "revision"),
    C("uri-and-name", "get gitstore://spec/task@{C}/a.txt a.txt", 2, "URI"),
    # -- removals that must not happen -------------------------------------------------------
    C("rm-missing-name", "rm spec/task nope.txt", 4, "'nope.txt'"),
    C("rm-bad-name", "rm spec/task ../a.txt", 3, "'../a.txt'"),
    C("rm-missing-task", "rm spec/nope --task", 4, "spec/nope"),
]


def _make_inputs(w: Path) -> None:
    (w / "file.txt").write_text("payload\n")
    (w / "big.bin").write_bytes(bytes(range(256)) * (6 << 10))  # 1.5 MiB: stored loose
    (w / "folder").mkdir()
    (w / "folder" / "file.txt").write_text("inner\n")
    (w / "with-git" / ".git").mkdir(parents=True)
    (w / "with-git" / "ok.txt").write_text("ok\n")
    (w / "with-git" / ".git" / "config").write_text("[core]\n")
    (w / "with-ctrl").mkdir()
    (w / "with-ctrl" / "ok.txt").write_text("ok\n")
    (w / "with-ctrl" / "a\x01b").write_text("ctrl\n")
    (w / "with-backslash").mkdir()
    (w / "with-backslash" / "a\\b").write_text("bs\n")
    os.mkfifo(w / "fifo")
    (w / "with-fifo").mkdir()
    (w / "with-fifo" / "ok.txt").write_text("ok\n")
    os.mkfifo(w / "with-fifo" / "pipe")
    (w / "with-dirlink" / "real").mkdir(parents=True)
    (w / "with-dirlink" / "real" / "x.txt").write_text("x\n")
    (w / "with-dirlink" / "link").symlink_to("real")
    (w / "with-dangling").mkdir()
    (w / "with-dangling" / "ok.txt").write_text("ok\n")
    (w / "with-dangling" / "gone").symlink_to("does-not-exist")
    (w / "empty").mkdir()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """(template store, inputs folder, commit of v2): spec/task v1 {a.txt, dir/b.txt}, v2."""
    root = tmp_path_factory.mktemp("corpus")
    store_path = root / "template.git"
    with Store.open(store_path, create=True) as s:
        s.put("spec/task", {"a.txt": "one\n", "dir/b.txt": "two\n"})
        v2 = s.put("spec/task", {"a.txt": "uno\n"})
    inputs = root / "inputs"
    inputs.mkdir()
    _make_inputs(inputs)
    yield store_path, inputs, v2.commit


def run_cli(args: list[str], prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run the console script; output decoded leniently (a failed get may print raw bytes)."""
    return subprocess.run(
        [*prefix, str(CLI), *args],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def check_refusal(
    case: Case, template: tuple[Path, Path, str], work: Path, prefix: Sequence[str] = ()
) -> str | None:
    """Run one case on its own store; return what was wrong with the refusal (None: all good)."""
    template_store, inputs, commit = template
    store = work / case.id / "store.git"
    store.parent.mkdir(parents=True)
    if case.store == "copy":
        shutil.copytree(template_store, store, symlinks=True)
    elif case.store == "file":
        store.write_text("not a store\n")
    elif case.store == "nongit":
        store.mkdir()
        (store / "notes.txt").write_text("just a folder\n")
    before = wp.listing(store) if store.is_dir() else None
    existed = store.exists()

    def fill(text: str) -> str:
        return text.replace("{S}", str(store)).replace("{W}", str(inputs)).replace("{C}", commit)

    argv = ["--store", str(store), *[fill(a) for a in case.args]]
    try:
        r = run_cli(argv, prefix)
    except subprocess.TimeoutExpired:
        return f"{case.id}: no answer within {TIMEOUT} s (hung)"
    problems = []
    lines = r.stderr.splitlines()
    if r.returncode != case.code:
        problems.append(f"exit {r.returncode}, expected {case.code}")
    if len(lines) != 1 or not lines[0].startswith("gitstore: "):
        problems.append(f"stderr is not one 'gitstore: ' line: {r.stderr!r}")
    elif fill(case.mention) not in lines[0]:
        problems.append(f"stderr does not name {fill(case.mention)!r}: {lines[0]!r}")
    if r.stdout:
        problems.append(f"stdout is not empty: {r.stdout[:200]!r}")
    if not existed and store.exists():
        problems.append("a store was created by a refused command")
    elif before is not None and wp.listing(store) != before:
        after = wp.listing(store)
        changed = sorted(set(before.items()) ^ set(after.items()))
        problems.append(f"the store changed: {changed[:6]}")
    return f"{case.id}: " + "; ".join(problems) if problems else None


def test_the_corpus_is_big_enough_and_has_no_duplicates() -> None:
    assert len(CORPUS) >= 40
    assert len({c.id for c in CORPUS}) == len(CORPUS)
    assert len({(c.args, c.store) for c in CORPUS}) == len(CORPUS)


@pytest.mark.slow
def test_every_hostile_input_is_refused_cleanly_through_the_cli(
    template: tuple[Path, Path, str], tmp_path: Path
) -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: check_refusal(c, template, tmp_path), CORPUS))
    failures = [r for r in results if r is not None]
    assert not failures, f"{len(failures)} of {len(CORPUS)} cases:\n" + "\n".join(failures)


# -- unreadable inputs ----------------------------------------------------------------------------


def _denial_prefix(probe: Path) -> list[str]:
    """How to run the CLI so that a mode-000 file is unreadable to it (or skip, saying why)."""
    probe.write_text("secret\n")
    probe.chmod(0)
    try:
        with open(probe, "rb"):
            pass
    except PermissionError:
        return []
    # Readable although mode 000: we run as root (CAP_DAC_OVERRIDE). Drop that capability and
    # CAP_DAC_READ_SEARCH for the CLI process; then the kernel denies it like any other user.
    if shutil.which("setpriv") is None:
        pytest.skip(
            "running as root, where mode 000 does not deny reading (CAP_DAC_OVERRIDE), and "
            "setpriv (util-linux), needed to drop that capability for the CLI, is not installed"
        )
    r = subprocess.run([*DROP_DAC, "cat", str(probe)], capture_output=True, text=True)
    if r.returncode == 0:
        pytest.skip(
            "running as root and even with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped "
            "(setpriv) a mode-000 file stays readable here, so no input can be made unreadable"
        )
    return DROP_DAC


UNREADABLE = [
    C("unreadable-file", "put spec/task {W}/secret.txt", 7, "secret.txt"),
    C("unreadable-file-in-folder", "put spec/task {W}/with-secret", 7, "with-secret/secret.txt"),
    C("unreadable-subfolder", "put spec/task {W}/with-locked-dir", 7, "with-locked-dir/locked"),
    C("unreadable-after-good", "put spec/task {W}/file.txt {W}/secret.txt", 7, "secret.txt"),
]


def test_unreadable_inputs_are_refused_cleanly(
    template: tuple[Path, Path, str], tmp_path: Path
) -> None:
    prefix = _denial_prefix(tmp_path / "probe")
    commit = template[2]
    own = tmp_path / "inputs"
    own.mkdir()
    (own / "file.txt").write_text("payload\n")
    (own / "secret.txt").write_text("secret\n")
    (own / "with-secret").mkdir()
    (own / "with-secret" / "ok.txt").write_text("ok\n")
    (own / "with-secret" / "secret.txt").write_text("secret\n")
    (own / "with-locked-dir" / "locked").mkdir(parents=True)
    (own / "with-locked-dir" / "ok.txt").write_text("ok\n")
    (own / "with-locked-dir" / "locked" / "x.txt").write_text("x\n")
    for p in (
        own / "secret.txt",
        own / "with-secret" / "secret.txt",
        own / "with-locked-dir/locked",
    ):
        p.chmod(0)
    try:
        failures = [
            r
            for c in UNREADABLE
            if (r := check_refusal(c, (template[0], own, commit), tmp_path, prefix)) is not None
        ]
    finally:
        (own / "with-locked-dir" / "locked").chmod(0o755)
    assert not failures, "\n".join(failures)


# -- the library, for what argv cannot carry ------------------------------------------------------


LIBRARY_ADDRESSES = [
    "spec/ta\x00sk",
    "sp\x00ec/task",
    "\x00/task",
    "../x",
    "a/../b",
    "/etc",
    ".git/x",
    "spec/\n",
    "spec/task.lock",
    "",
    f"spec/{LONG}",
    "-spec/task",
    ".spec/task",
    "my spec/task",
    "spéc/task",
    "spec/..",
    "spec/.git",
    "spec/ta\tsk",
    "spec.lock/task",
    "spec/",
    "spec/task/x",
    "spec/ta:sk",
    "spec/task~1",
]
LIBRARY_NAMES = [
    "a\x00b",
    "\x00",
    "../x",
    "/abs",
    "a//b",
    "./a",
    ".git/config",
    "x/.GIT/y",
    ".gitstore/manifest.json",
    "a\x1fb",
    "a\\b",
    NAME_1025,
    "",
    "a/",
    "\udcff",  # a lone surrogate: not encodable as UTF-8
    "a/../../x",
    ".gitstore",
    "a\nb",
    "x/.git./y",
    "x/.git /y",
]


@pytest.mark.parametrize("address", LIBRARY_ADDRESSES, ids=repr)
def test_the_library_refuses_hostile_addresses_before_writing(
    disk_store: Store, store_path: Path, address: str
) -> None:
    before = wp.listing(store_path)
    with pytest.raises(InvalidNameError) as caught:
        disk_store.put(address, {"a.txt": b"x"})
    assert caught.value.exit_code == 3
    assert "\n" not in str(caught.value)
    assert wp.listing(store_path) == before


@pytest.mark.parametrize("name", LIBRARY_NAMES, ids=repr)
def test_the_library_refuses_hostile_artifact_names_before_writing(
    disk_store: Store, store_path: Path, tmp_path: Path, name: str
) -> None:
    disk_store.put("spec/task", {"ok.txt": b"ok"})
    before = wp.listing(store_path)
    src = tmp_path / "src.bin"
    src.write_bytes(b"y" * 10)
    for value in (b"bytes", "text", src):
        with pytest.raises(InvalidNameError) as caught:
            # A good artifact first: a refused name must stop the whole put, not just itself.
            disk_store.put("spec/task", {"good.txt": b"good", name: value})
        assert caught.value.exit_code == 3
        assert "\n" not in str(caught.value)
        assert wp.listing(store_path) == before
    assert [v.version for v in disk_store.log("spec/task")] == [1]


# -- corrupted objects ----------------------------------------------------------------------------


def _corruptible(tmp_path: Path) -> tuple[Path, str, Path, bytes]:
    """A store whose artifact big.bin is a loose object; returns (store, oid, object file, data)."""
    store_path = tmp_path / "store.git"
    data = bytes(range(256)) * (8 << 10)  # 2 MiB: above the small-blob limit, so stored loose
    with Store.open(store_path, create=True) as s:
        s.put("spec/task", {"big.bin": data, "small.txt": "small\n"})
        oid = s.artifact("spec/task", "big.bin").oid
    obj = store_path / "objects" / oid[:2] / oid[2:]
    assert obj.is_file()
    return store_path, oid, obj, data


def _overwrite(obj: Path, content: bytes) -> None:
    obj.chmod(stat.S_IRUSR | stat.S_IWUSR)  # objects are 0444
    obj.write_bytes(content)
    obj.chmod(0o444)


def _expect_integrity_error(store_path: Path, *args: str) -> None:
    r = run_cli(["--store", str(store_path), *args])
    assert r.returncode == IntegrityError.exit_code, (args, r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert lines and lines[-1].startswith("gitstore: "), r.stderr
    assert all(line.startswith("gitstore: ") for line in lines), r.stderr


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-bytes"])
def test_a_corrupted_loose_object_is_an_integrity_error(tmp_path: Path, damage: str) -> None:
    store_path, oid, obj, data = _corruptible(tmp_path)
    raw = obj.read_bytes()
    if damage == "garbage":
        _overwrite(obj, b"\x00garbage" * 100)
    elif damage == "truncated":
        _overwrite(obj, raw[: len(raw) // 2])
    else:
        # Valid zlib, right header and size, other bytes: only the digests can tell.
        body = bytearray(data)
        body[12345] ^= 0xFF
        _overwrite(obj, zlib.compress(b"blob %d\0" % len(body) + bytes(body)))
    if damage != "other-bytes":
        _expect_integrity_error(store_path, "get", "spec/task", "big.bin")
    _expect_integrity_error(store_path, "get", "--verify", "spec/task", "big.bin")
    r = run_cli(["--store", str(store_path), "verify"])
    assert r.returncode == IntegrityError.exit_code, r.stderr
    assert oid[:12] in r.stdout or "big.bin" in r.stdout, r.stdout
    # The damage is local: the other artifact still reads.
    ok = run_cli(["--store", str(store_path), "get", "spec/task", "small.txt"])
    assert (ok.returncode, ok.stdout) == (0, "small\n"), ok.stderr


def test_a_corrupted_pack_is_an_integrity_error(tmp_path: Path) -> None:
    """Small artifacts live in packs; flipping bytes inside one must not pass verify."""
    store_path = tmp_path / "store.git"
    text = "0123456789abcdef" * 64
    with Store.open(store_path, create=True) as s:
        s.put("spec/task", {"small.txt": text})
    packs = sorted((store_path / "objects" / "pack").glob("*.pack"))
    assert packs, "expected the small objects in a pack"
    pack = packs[0]
    raw = bytearray(pack.read_bytes())
    for i in range(40, len(raw) - 40, 7):  # the entries, not the header or trailer
        raw[i] ^= 0x55
    _overwrite(pack, bytes(raw))
    r = run_cli(["--store", str(store_path), "verify"])
    assert r.returncode == IntegrityError.exit_code, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitstore: "), r.stderr
