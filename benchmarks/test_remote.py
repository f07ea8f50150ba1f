"""Figures of issue 4: push and pull between stores.

* First push of 1,000 tasks (3 small artifacts each) to an empty bare repository, next to stock
  ``git push`` of the same refs from the same store in the same run, in alternating rounds: with
  the secret scan on and no verdicts recorded (every version scanned), with the verdicts the
  previous round recorded, and with ``--allow-secrets``.
* Push of one new version to a remote already holding 10k tasks: time and objects sent (the
  first push of those 10k tasks is measured once for comparison).
* Pull of a 256 MiB artifact into an empty store, in a child process under ``/usr/bin/time -v``:
  time and peak RSS.

Remotes are local paths (dulwich's in-process local client), so the figures show gitstore's own
cost, not a network's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    DATA,
    GIT_ENV,
    MIB,
    git,
    make_random,
    needs_time,
    python_tool,
    quiet_disk,
    record,
    set_fsync,
    time_v,
)

from gitstore import Store
from gitstore import remote as R

ROUNDS = 5  # the push figures swing with the disk: best of 5 alternating rounds


def _store_with_tasks(path: Path, tasks: int, artifacts: int) -> Path:
    """A store of ``tasks`` tasks, one version each of ``artifacts`` small artifacts (cached)."""
    done = path / "gitstore-bench-built"
    if done.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    with Store.open(path, create=True) as s:
        set_fsync(path, False)
    with Store.open(path) as s:
        for i in range(tasks):
            files = {
                "run.log": f"task {i} step 1\nstep 2 ok\n" * 20,
                "diff.diff": f"--- a/f{i}\n+++ b/f{i}\n@@ -1 +1 @@\n-old\n+new {i}\n",
                "result.json": b'{"task": %d, "passed": true}' % i,
            }
            s.put(f"spec{i % 10}/task{i}", dict(list(files.items())[:artifacts]))
    done.write_text(f"{tasks}\n")
    return path


@pytest.fixture(scope="module")
def store_1k() -> Path:
    return _store_with_tasks(DATA / "remote-1k-3art", 1_000, 3)


@pytest.fixture(scope="module")
def store_10k() -> Path:
    return _store_with_tasks(DATA / "remote-10k-3art", 10_000, 3)


def _empty_bare(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    git("init", "-q", "--bare", str(path))
    return path


def _clear_verdicts(store: Path) -> None:
    """Forget the secret scan's recorded verdicts: the next push scans every version."""
    shutil.rmtree(store / "gitstore" / "verdicts", ignore_errors=True)


def _first_push_of_1000_tasks(store_1k: Path, workdir: Path) -> None:
    figure = "first push, 1,000 tasks x 3 small artifacts"
    modes = (
        ("gitstore push (secret scan on, no verdicts recorded)", False, True),
        ("gitstore push (secret scan on, verdicts recorded)", False, False),
        ("gitstore push --allow-secrets", True, False),
    )
    times: dict[str, list[float]] = {label: [] for label, _, _ in modes}
    times["git"] = []
    results = {}
    _clear_verdicts(store_1k)
    # Rounds alternate between the four, so that a busy moment of the machine hits them alike.
    for r in range(ROUNDS):
        for label, allow, cold in modes:
            target = _empty_bare(workdir / f"t-{r}-{len(times[label])}.git")
            if cold:
                _clear_verdicts(store_1k)
            quiet_disk()
            with Store.open(store_1k) as s:
                t0 = time.perf_counter()
                result = R.push(s, str(target), allow_secrets=allow)
                times[label].append(time.perf_counter() - t0)
            assert len(result.updated) == 1_000 and not result.refused
            results[label] = result
            shutil.rmtree(target)
        target = _empty_bare(workdir / f"g-{r}.git")
        quiet_disk()
        t0 = time.perf_counter()
        subprocess.run(
            [
                "git",
                "--git-dir",
                str(store_1k),
                "push",
                "-q",
                str(target),
                "refs/artifacts/*:refs/artifacts/*",
            ],
            env=GIT_ENV,
            check=True,
            capture_output=True,
        )
        times["git"].append(time.perf_counter() - t0)
        shutil.rmtree(target)
    for label, _, _ in modes:
        res = results[label]
        record(
            figure,
            f"gitstore: {label}",
            min(times[label]),
            objects=res.objects,
            raw_bytes=res.bytes,
        )
    record(figure, "peer: git push refs/artifacts/*", min(times["git"]))


def _push_one_version(store_10k: Path, workdir: Path) -> None:
    figure = "push 1 new version, remote holds 10k tasks"
    local = workdir / "local.git"
    remote = _empty_bare(workdir / "remote.git")
    shutil.copytree(store_10k, local)
    with Store.open(local) as s:
        quiet_disk()
        t0 = time.perf_counter()
        first = R.push(s, str(remote), allow_secrets=True)
        first_s = time.perf_counter() - t0
        assert len(first.updated) == 10_000
        record(
            "first push of those 10k tasks (for comparison)",
            "gitstore",
            first_s,
            objects=first.objects,
        )
        times, objects = [], []
        for r in range(5):
            s.put(f"spec{r}/task{r * 10 + r}", {"run.log": f"round {r}\n"})
            quiet_disk()
            t0 = time.perf_counter()
            res = R.push(s, str(remote))
            times.append(time.perf_counter() - t0)
            objects.append(res.objects)
            assert len(res.updated) == 1
        record(
            figure,
            "gitstore (secret scan on)",
            sorted(times)[len(times) // 2],
            objects_sent=max(objects),
            vs_first_push=first_s / sorted(times)[len(times) // 2],
        )
        s.put("spec1/task11", {"run.log": "peer round\n"})
    t0 = time.perf_counter()
    subprocess.run(
        [
            "git",
            "--git-dir",
            str(local),
            "push",
            "-q",
            str(remote),
            "refs/artifacts/spec1/task11:refs/artifacts/spec1/task11",
        ],
        env=GIT_ENV,
        check=True,
        capture_output=True,
    )
    record(figure, "peer: git push of that one ref", time.perf_counter() - t0)


def _pull_256_mib(workdir: Path) -> None:
    figure = "pull of a 256 MiB artifact (random bytes)"
    src_file = DATA / "random-256m.bin"
    if not src_file.exists():
        make_random(src_file, 256 * MIB)
    source = workdir / "source.git"
    with Store.open(source, create=True) as s:
        s.put("big/one", {"blob.bin": src_file})
    for r in range(2):
        dest = workdir / f"dest-{r}.git"
        shutil.rmtree(dest, ignore_errors=True)
        run = time_v(python_tool("pull_store.py", str(source), str(dest)))
        summary = json.loads(run["stdout"])
        assert summary["updated"][0]["task"] == "big/one"
        with Store.open(dest) as d:
            assert d.artifact("big/one", "blob.bin").size == 256 * MIB
    record(
        figure,
        "gitstore pull (child process)",
        run["wall"],
        peak_rss_mb_with_git_helpers=run["rss_mb"],
        gitstore_process_rss_mb=summary["self_rss_mb"],
        pack_bytes=summary["bytes"],
    )
    dest = workdir / "git-dest.git"
    _empty_bare(dest)
    peer = time_v(
        [
            "git",
            "--git-dir",
            str(dest),
            "fetch",
            "-q",
            str(source),
            "+refs/artifacts/*:refs/artifacts/*",
        ]
    )
    record(figure, "peer: git fetch (child process)", peer["wall"], peak_rss_mb=peer["rss_mb"])


# pytest-benchmark's --benchmark-only runs only tests that take its fixture; each figure above
# times its own rounds (and its peer's), so the fixture runs the whole measurement once.


def test_first_push_of_1000_tasks(benchmark: Any, store_1k: Path, workdir: Path) -> None:
    benchmark.pedantic(_first_push_of_1000_tasks, args=(store_1k, workdir), rounds=1)


def test_push_one_version_to_a_remote_with_10k_tasks(
    benchmark: Any, store_10k: Path, workdir: Path
) -> None:
    benchmark.pedantic(_push_one_version, args=(store_10k, workdir), rounds=1)


@needs_time()
def test_pull_of_a_256_mib_artifact(benchmark: Any, workdir: Path) -> None:
    benchmark.pedantic(_pull_256_mib, args=(workdir,), rounds=1)
