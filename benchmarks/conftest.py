"""Shared fixtures for the figures in DESIGN section 6 / issue 3 (run with --benchmark-only).

Each figure is measured next to its peer in the same session; :func:`record` collects the numbers
and the terminal summary prints every figure as gitstore / peer ratio against its target, so one
run gives the whole table of ``benchmarks/README.md``.

Inputs (128 MiB log, 128 MiB random bytes, a 1,000-file folder, stores with 1k and 100k tasks) are
generated once and cached under ``$GITSTORE_BENCH_DATA`` (default ``/tmp/gitstore-bench-data``),
so a second run starts measuring at once. Child processes measured for peak RSS run under
``/usr/bin/time -v``.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
TOOLS = HERE / "tools"
DATA = Path(os.environ.get("GITSTORE_BENCH_DATA", "/tmp/gitstore-bench-data"))
TIME_BIN = "/usr/bin/time"
NO_TIME_REASON = "needs /usr/bin/time for peak RSS: apt-get update && apt-get install -y time"
MIB = 1 << 20
BIG = 128 * MIB

# Git must not read the user's config (identity, fsync, hooks) while it is a peer.
GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}

_results: list[dict[str, Any]] = []


def needs_time() -> pytest.MarkDecorator:
    """Skip a module that measures peak RSS when /usr/bin/time is missing."""
    return pytest.mark.skipif(not os.access(TIME_BIN, os.X_OK), reason=NO_TIME_REASON)


def git(*args: str, cwd: str | Path | None = None, stdin: bytes | None = None) -> str:
    """Run stock git isolated from the user's config; return its stdout."""
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, input=stdin, capture_output=True, check=True
    )
    return out.stdout.decode()


def set_fsync(store: str | Path, on: bool) -> None:
    """Set ``gitstore.fsync`` in a store's config (read by Store.open)."""
    git("--git-dir", str(store), "config", "gitstore.fsync", "true" if on else "false")


def quiet_disk() -> None:
    """Flush dirty pages (earlier rounds, deleted stores) so a round does not pay for them.

    The disk of the reference machine writes ~90 MB/s; without this, one round's fsync waits for
    the previous round's 128 MiB of write-back and the figures swing by 5x.
    """
    os.sync()


def time_v(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv`` under ``/usr/bin/time -v``; return peak RSS (MB), wall seconds, stdout."""
    quiet_disk()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [TIME_BIN, "-v", *argv], capture_output=True, env=env or GIT_ENV, check=False
    )
    wall = time.perf_counter() - t0
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed ({proc.returncode}):\n{err[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    assert m, err
    return {
        "rss_mb": int(m.group(1)) * 1024 / 1e6,
        "wall": wall,
        "stdout": proc.stdout.decode(),
    }


def python_tool(name: str, *args: str) -> list[str]:
    """argv that runs ``benchmarks/tools/<name>`` with this interpreter."""
    return [sys.executable, str(TOOLS / name), *args]


def warm(path: Path) -> None:
    """Read a file (or every file of a folder) once so the page cache holds it."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(8 * MIB):
                pass


def record(figure: str, role: str, seconds: float | None = None, **extra: Any) -> None:
    """Remember one measured number for the summary table (role: gitstore, peer, ...)."""
    _results.append({"figure": figure, "role": role, "seconds": seconds, **extra})


def mean_of(benchmark: Any) -> float:
    """Mean seconds per round of a finished pytest-benchmark run."""
    return float(benchmark.stats.stats.mean)


def median_of(benchmark: Any) -> float:
    """Median seconds per round of a finished pytest-benchmark run."""
    return float(benchmark.stats.stats.median)


# -- inputs ------------------------------------------------------------------------------------

_WORD_LINES = (
    "request handler worker cache miss hit retry timeout connect upstream token model tool call",
    "agent step plan patch apply test pass fail assert compile import module function value",
    "error warning info debug trace span latency bytes queue flush commit rollback session",
    "user file",
)
_WORDS = " ".join(_WORD_LINES).split()
_LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR"]


def make_log(path: Path, size: int, seed: int = 7) -> None:
    """Realistic log text: timestamps, levels, ids, numbers and words varying line by line."""
    rnd = random.Random(seed)
    words, levels = _WORDS, _LEVELS
    written = 0
    t = 1_700_000_000.0
    with open(path, "wb") as f:
        while written < size:
            lines = []
            for _ in range(2000):
                t += rnd.random() * 0.05
                n = rnd.randint(3, 12)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
                lines.append(
                    f"{stamp}.{int(t * 1000) % 1000:03d}"
                    f" {rnd.choice(levels)} [{rnd.choice(words)}-{rnd.randint(1, 64)}]"
                    f" req={rnd.getrandbits(48):012x} {' '.join(rnd.choices(words, k=n))}"
                    f" dur={rnd.random() * 1000:.3f}ms n={rnd.randint(0, 100000)}\n"
                )
            block = "".join(lines).encode()
            block = block[: size - written]
            f.write(block)
            written += len(block)


def make_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def _cached(path: Path, build: Callable[[Path], None]) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        build(tmp)
        tmp.rename(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def bytecode_compiled() -> None:
    """Compile gitstore's sources to bytecode once, as installing its wheel does.

    An editable install run with PYTHONDONTWRITEBYTECODE set (as on the reference machine)
    compiles every module of gitstore anew in each process it starts, ~0.3 s that no installed
    copy pays: every benchmark that times a ``gitstore`` process would carry it.
    """
    import compileall

    import gitstore
    import gitstore.cli

    for folder in {Path(gitstore.__file__).parent, Path(gitstore.cli.__file__).parent}:
        compileall.compile_dir(folder, quiet=1)


@pytest.fixture(scope="session")
def big_log() -> Path:
    """128 MiB of generated log text (page cache warm)."""
    p = _cached(DATA / "log-128m.log", lambda p: make_log(p, BIG))
    warm(p)
    return p


@pytest.fixture(scope="session")
def big_random() -> Path:
    """128 MiB of random bytes (page cache warm)."""
    p = _cached(DATA / "random-128m.bin", lambda p: make_random(p, BIG))
    warm(p)
    return p


def make_folder(root: Path, files: int = 1000, total: int = 256 * MIB) -> None:
    """``files`` files, ``total`` bytes in all, in 10 subfolders: 3 in 4 are log text, the rest
    random bytes; sizes vary (a few over 1 MiB, so both the small and the streamed path run)."""
    rnd = random.Random(11)
    weights = [rnd.lognormvariate(0, 0.8) for _ in range(files)]
    scale = total / sum(weights)
    sizes = [max(1, int(w * scale)) for w in weights]
    sizes[-1] += total - sum(sizes)
    text_src = root.parent / "folder-text.src"
    make_log(text_src, 8 * MIB, seed=3)
    text = text_src.read_bytes()
    text_src.unlink()
    for i, size in enumerate(sizes):
        d = root / f"part{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        if i % 4 == 3:
            data = os.urandom(size)
        else:
            off = rnd.randrange(0, len(text) - 1)
            data = (text[off:] + text)[:size] if size < len(text) else (text * 64)[:size]
            data = f"# file {i}\n".encode() + data[: max(0, size - 12)]
            data = data[:size].ljust(size, b"\n")
        (d / f"f{i:04d}.{'bin' if i % 4 == 3 else 'log'}").write_bytes(data)


@pytest.fixture(scope="session")
def folder_1000() -> Path:
    """A folder of 1,000 files, 256 MiB in all (page cache warm)."""
    p = _cached(DATA / "folder-1000", make_folder)
    warm(p)
    return p


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch folder removed after the test (stores of 128 MiB blobs add up)."""
    d = tmp_path_factory.mktemp("bench")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# -- the summary table -------------------------------------------------------------------------


def machine_facts() -> str:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git_v = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    import dulwich

    head = subprocess.run(
        ["git", "-C", str(HERE.parent), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "gitstore"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"library at {head}{' + uncommitted changes in gitstore/' if dirty else ''}; "
        f"nproc={os.cpu_count()} cpu={cpu!r} python={platform.python_version()} "
        f"dulwich={'.'.join(map(str, dulwich.__version__))} {git_v} kernel={platform.release()}"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _results:
        return
    tr = terminalreporter
    tr.section("gitstore figures (this run)")
    tr.write_line(machine_facts())
    for r in _results:
        parts = [f"{r['figure']:<44} {r['role']:<34}"]
        for k, v in r.items():
            if k in ("figure", "role") or v is None:
                continue
            parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
        tr.write_line(" ".join(parts))
    tr.write_line("ratios (peer seconds / gitstore seconds: above 1 means gitstore is faster)")
    figures = dict.fromkeys(r["figure"] for r in _results)
    for fig in figures:
        rows = [r for r in _results if r["figure"] == fig and r.get("seconds")]
        ours = [r for r in rows if r["role"].startswith("gitstore")]
        peers = [r for r in rows if r["role"].startswith("peer")]
        for o in ours:
            for p in peers:
                ratio = p["seconds"] / o["seconds"]
                tr.write_line(f"  {fig}: {o['role']} vs {p['role']}: {ratio:.2f}x")
    out = Path(os.environ.get("GITSTORE_BENCH_RESULTS", "/tmp/gitstore-bench-results.json"))
    out.write_text(json.dumps({"machine": machine_facts(), "results": _results}, indent=1))
    tr.write_line(f"(also written to {out})")
