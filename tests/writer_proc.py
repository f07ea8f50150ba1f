"""Child processes for the robustness tests, and the parent-side helpers that drive them.

The robustness tests need REAL processes (not threads): separate interpreters that race on the
same files, that hold flocks the kernel drops only when they die, and that can be SIGKILLed at
any instruction. This module is both:

* a script, run as ``python tests/writer_proc.py MODE ...``:

  - ``put``: a writer that waits on a start barrier, then puts versions and appends one JSON line
    per acknowledged put to its own file, written and fsync'd only AFTER ``put`` returned;
  - ``hold``: takes a ref's lock with :func:`gitstore._fs.acquire_lock`, exactly as a writer does,
    and holds it (flock and all) until told to release it or to exit without releasing it;
  - ``pause``: one put that stops at a chosen point of the write protocol (fault injection) so
    the parent can SIGKILL it there, or let it resume;

* a module the tests import for spawning, barriers, acknowledgement files and store checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
BIG = 3 << 20  # 3 MiB: above gitstore's 1 MiB small-blob limit, so it is streamed
FOLDER_FILES = 70  # above gitstore's 64-object pack threshold, so the blobs go in one pack
POLL = 0.001


# -- child side -----------------------------------------------------------------------------------


def _wait_for(path: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(POLL)


def _touch(path: str, text: str = "") -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _one_put(
    rng: random.Random, wid: str, seq: int, mix: str, scratch: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """The artifacts of put number ``seq`` and the sha256 each must have in the store."""
    roll = rng.random() if mix == "mixed" else 0.0
    if roll < 0.5:
        text = f"{wid}:{seq}:{rng.getrandbits(64):016x}\n"
        return {f"w{wid}.txt": text}, {f"w{wid}.txt": _sha(text.encode())}
    if roll < 0.7:
        data = f"{wid}:{seq}\n".encode() + rng.randbytes(BIG)
        return {f"w{wid}/big.bin": data}, {f"w{wid}/big.bin": _sha(data)}
    if roll < 0.9:
        data = f"{wid}:{seq}\n".encode() + rng.randbytes(BIG)
        path = scratch / f"w{wid}-{seq}.bin"
        path.write_bytes(data)
        return {f"w{wid}/big-file.bin": path}, {f"w{wid}/big-file.bin": _sha(data)}
    folder = scratch / f"w{wid}-{seq}"
    folder.mkdir()
    expect = {}
    for i in range(FOLDER_FILES):
        data = f"{wid}:{seq}:{i}:{rng.getrandbits(64):016x}\n".encode()
        (folder / f"f{i:03d}.txt").write_bytes(data)
        expect[f"w{wid}/tree/f{i:03d}.txt"] = _sha(data)
    return {f"w{wid}/tree": folder}, expect


def mode_put(argv: Sequence[str]) -> None:
    """``put STORE ADDR WID COUNT OUT GO MIX SEED SCRATCH`` (COUNT 0: until killed)."""
    from gitstore import Store

    store, addr, wid, count, out, go, mix, seed, scratch = argv
    rng = random.Random(f"{seed}-{wid}")
    scratch_dir = Path(scratch)
    scratch_dir.mkdir(parents=True, exist_ok=True)
    s = Store.open(store)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _touch(out + ".ready")
    _wait_for(go)
    seq = 0
    while int(count) == 0 or seq < int(count):
        seq += 1
        artifacts, expect = _one_put(rng, wid, seq, mix, scratch_dir)
        v = s.put(addr, artifacts, run_id=f"w{wid}-{seq}")
        line = {
            "wid": wid,
            "seq": seq,
            "addr": addr,
            "commit": v.commit,
            "version": v.version,
            "created": v.created,
            "expect": expect,
        }
        # The acknowledgement is recorded only once put has returned, and made durable at once.
        os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    os.close(fd)
    s.close()


def mode_hold(argv: Sequence[str]) -> None:
    """``hold STORE REF READY RELEASE HOW``: hold REF's lock; HOW is ``release`` or ``exit``."""
    from gitstore._fs import acquire_lock, release_lock

    store, ref, ready, release, how = argv
    fd, lock = acquire_lock(os.path.join(store, ref))
    _touch(ready, lock)
    _wait_for(release, timeout=600)
    if how == "release":
        release_lock(fd, lock)
    # "exit": leave without unlinking; the kernel drops the flock, the file stays (a stale lock).
    os._exit(0)


def _pause_here(ready: str, release: str) -> None:
    _touch(ready)
    if release == "-":
        while True:  # until SIGKILLed
            time.sleep(60)
    _wait_for(release, timeout=600)


def mode_pause(argv: Sequence[str]) -> None:
    """``pause STORE ADDR POINT READY RELEASE ARTIFACTS_JSON``: one put, stopped once at POINT.

    POINT: ``barrier`` (no fault: a start barrier, then the put), ``blob-write`` (a big blob
    half written to its tmp_obj_* file), ``before-cas`` (every object written, the ref not moved),
    ``in-lock`` (the ref's lock file created and flocked), ``pack-index`` (a pack renamed into
    place, its .idx not yet). RELEASE ``-`` means stay paused until killed. ARTIFACTS_JSON maps
    names to ``{"path": P}`` or ``{"text": T}``.
    On success prints the version as JSON.
    """
    from support import open_store

    from gitstore.backend import blobpack as gblobpack
    from gitstore.backend import objects as gobjects
    from gitstore.backend import refs as grefs

    store, addr, point, ready, release, spec = argv
    artifacts: dict[str, Any] = {
        name: Path(v["path"]) if "path" in v else v["text"] for name, v in json.loads(spec).items()
    }
    fired = False
    refs = grefs.DiskRefs

    def once() -> bool:
        nonlocal fired
        if fired:
            return False
        fired = True
        return True

    if point == "blob-write":
        real_write_all = gobjects.write_all
        written: dict[int, int] = {}

        def write_all(fd: int, data: bytes) -> None:
            real_write_all(fd, data)
            written[fd] = written.get(fd, 0) + len(data)
            if written[fd] >= (1 << 20) and once():
                _pause_here(ready, release)

        # Big blobs that compress are written loose, those that do not as a pack of their own.
        gobjects.write_all = write_all  # type: ignore[assignment]
        gblobpack.write_all = write_all  # type: ignore[assignment]
    elif point == "before-cas":

        class PausingRefs(grefs.DiskRefs):
            """Refs that stop once before the first swap: every object written, no ref moved."""

            def cas(self, name: str, old: str | None, new: str) -> bool:
                if once():
                    _pause_here(ready, release)
                return super().cas(name, old, new)

        refs = PausingRefs
    elif point == "in-lock":
        real_acquire = grefs.acquire_lock

        def acquire(path: str) -> tuple[int, str]:
            got = real_acquire(path)
            if path.endswith(addr) and once():
                _pause_here(ready, release)
            return got

        grefs.acquire_lock = acquire
    elif point == "barrier":
        # No fault: wait on the start barrier (READY, then RELEASE), then one ordinary put.
        once()
        _pause_here(ready, release)
    elif point == "pack-index":
        real_replace = os.replace

        def replace(src: Any, dst: Any, **kw: Any) -> None:
            # The .pack is in place, its .idx (which makes it visible) not yet.
            if os.fspath(dst).endswith(".idx") and once():
                _pause_here(ready, release)
            real_replace(src, dst, **kw)

        setattr(os, "replace", replace)  # noqa: B010 - in this child process only
    else:
        raise SystemExit(f"unknown pause point {point!r}")
    with open_store(store, refs=refs) as s:
        v = s.put(addr, artifacts)
    if not fired:
        raise SystemExit(f"the put never reached {point!r}")
    print(json.dumps({"commit": v.commit, "version": v.version}))


def mode_batch(argv: Sequence[str]) -> None:
    """``batch STORE SPEC WID TASKS SIZE OUT GO SEED``: ``put_many`` batches of SIZE small puts
    over TASKS tasks, until killed; one JSON line per put of a batch once put_many returned."""
    from gitstore import Store

    store, spec, wid, tasks, size, out, go, seed = argv
    rng = random.Random(f"{seed}-{wid}")
    s = Store.open(store)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _touch(out + ".ready")
    _wait_for(go)
    seq = 0
    while True:
        items, expects = [], []
        for _ in range(int(size)):
            seq += 1
            addr = f"{spec}/t{rng.randrange(int(tasks))}"
            text = f"{wid}:{seq}:{rng.getrandbits(64):016x}\n"
            items.append((addr, {f"w{wid}.txt": text}))
            expects.append((addr, {f"w{wid}.txt": _sha(text.encode())}))
        versions = s.put_many(items, run_id=f"w{wid}")
        lines = [
            json.dumps(
                {"addr": addr, "commit": v.commit, "version": v.version, "expect": expect},
                sort_keys=True,
            )
            + "\n"
            for (addr, expect), v in zip(expects, versions, strict=True)
        ]
        os.write(fd, "".join(lines).encode())
        os.fsync(fd)


def mode_batch_pause(argv: Sequence[str]) -> None:
    """``batch-pause STORE SPEC TASKS READY``: one ``put_many`` of two versions for each of
    TASKS tasks, stopped for good (until SIGKILLed) once half of the refs were renamed into
    place: some tasks moved, the others not yet."""
    from gitstore import Store

    store, spec, tasks, ready = argv
    real_rename = os.rename
    renamed = 0

    def rename(src: Any, dst: Any, **kw: Any) -> None:
        nonlocal renamed
        real_rename(src, dst, **kw)
        if os.fspath(src).endswith(".lock") and "refs/artifacts" in os.fspath(dst):
            renamed += 1
            if renamed == int(tasks) // 2:
                _pause_here(ready, "-")

    setattr(os, "rename", rename)  # noqa: B010 - in this child process only
    items = [
        (f"{spec}/t{i}", {"step.txt": f"batch step {n} of t{i}\n"})
        for n in (1, 2)
        for i in range(int(tasks))
    ]
    with Store.open(store) as s:
        s.put_many(items)
    raise SystemExit("the batch was not stopped half-way")


def mode_read(argv: Sequence[str]) -> None:
    """``read STORE ADDR READY GO STOP``: read the task over and over until STOP exists.

    Every round lists the task's history and reads every artifact of its latest version with
    sha256 checking; any exception fails the process. Prints the number of rounds.
    """
    from gitstore import Store, TaskNotFoundError

    store, addr, ready, go, stop = argv
    s = Store.open(store)
    _touch(ready)
    _wait_for(go)
    rounds = 0
    while not os.path.exists(stop):
        try:
            head = s.show(addr)
        except TaskNotFoundError:
            time.sleep(POLL)
            continue
        chain = [v.version for v in s.iter_versions(f"{addr}@{head.commit}")]
        assert chain == list(range(head.version, 0, -1)), chain
        for art in head.artifacts:
            s.get(art.uri, verify=True)
        rounds += 1
    s.close()
    print(rounds)


def main(argv: Sequence[str]) -> None:
    modes: dict[str, Callable[[Sequence[str]], None]] = {
        "read": mode_read,
        "put": mode_put,
        "hold": mode_hold,
        "pause": mode_pause,
        "batch": mode_batch,
        "batch-pause": mode_batch_pause,
    }
    modes[argv[0]](argv[1:])


# -- parent side ----------------------------------------------------------------------------------


def spawn(*args: str | os.PathLike[str]) -> subprocess.Popen[str]:
    """Start ``python writer_proc.py ARGS`` in its own session (so a kill hits only it)."""
    return subprocess.Popen(
        [sys.executable, str(HERE), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_file(
    path: str | os.PathLike[str], procs: Iterable[subprocess.Popen[str]] = ()
) -> None:
    """Wait (at most 60 s) for ``path`` to exist; fail at once if a child died first."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        for p in procs:
            if p.poll() is not None:
                out, err = p.communicate()
                raise AssertionError(f"child exited {p.returncode} early: {err or out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {path}")
        time.sleep(0.005)


def finish(p: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    """Wait for a child (killing it after ``timeout`` s); return (returncode, stdout, stderr)."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"child did not finish within {timeout} s: {err}") from None
    return p.returncode, out, err


def kill(p: subprocess.Popen[str]) -> None:
    """SIGKILL one child (by its pid) and reap it."""
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.communicate()


def read_acks(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Acknowledged puts from one writer's file (a torn last line, if any, was never acked)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    acks = []
    for line in text.splitlines(keepends=True):
        if line.endswith("\n"):
            acks.append(json.loads(line))
    return acks


def listing(root: str | os.PathLike[str]) -> dict[str, int]:
    """Every file and folder under ``root`` with its size (folders: -1): what is written."""
    out: dict[str, int] = {}
    base = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), base) + "/"] = -1
        for f in filenames:
            full = os.path.join(dirpath, f)
            out[os.path.relpath(full, base)] = os.lstat(full).st_size
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
