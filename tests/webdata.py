"""A store that looks like agents used it, for the web page's tests, screenshots and benchmarks.

Built through the library's public calls (``record_task`` as a runner would, ``put``, a clone and
a pull for a merge), plus hostile names and content. Everything is deterministic except commit
ids and times.
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path

from gitstore import Artifact, CapturePolicy, Store, add_remote, clone, pull, record_task

SPEC = "fix-login"
BIG_LOG = 3 << 20
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
LEAKED = "ghp_" + "Zx9" * 12  # the shape of a GitHub token: masked when recorded
HOSTILE_LOG = "<script>alert('log')</script>\n" * 200 + "<b>bold?</b> &amp; <i>done</i>\n"
SCRIPT_MESSAGE = "<script>alert('message')</script> fixed the <b>login</b>"

_PY_OLD = '''import hashlib


def check_password(user, password):
    """Compare the stored hash with the given password."""
    stored = user.password_hash
    return hashlib.sha256(password.encode()).hexdigest() == stored


def login(request):
    user = find_user(request.form["name"])
    if user is None:
        return error("no such user")
    if not check_password(user, request.form["password"]):
        return error("wrong password")
    return session_for(user)
'''

_PY_NEW = '''import hashlib
import hmac


def check_password(user, password):
    """Compare the stored hash with the given password, in constant time."""
    stored = user.password_hash
    given = hashlib.sha256(password.encode()).hexdigest()
    return hmac.compare_digest(given, stored)


def login(request):
    user = find_user(request.form.get("name", ""))
    if user is None or not check_password(user, request.form.get("password", "")):
        # One message for both: do not tell an attacker which user names exist.
        return error("wrong user name or password")
    return session_for(user)
'''


def unified(old: str, new: str, path: str) -> str:
    """A git-style diff of one file."""
    import difflib

    body = difflib.unified_diff(
        old.splitlines(), new.splitlines(), f"a/{path}", f"b/{path}", lineterm=""
    )
    return f"diff --git a/{path} b/{path}\nindex 3b18e51..a9c2f04 100644\n" + "\n".join(body) + "\n"


def big_diff(lines: int = 5000, seed: int = 5) -> str:
    """A diff of at least ``lines`` hunk lines over many Python, JS, Go and Markdown files."""
    rnd = random.Random(seed)
    out: list[str] = []
    n = 0
    i = 0
    while n < lines:
        ext = ("py", "js", "md", "go")[i % 4]
        path = f"src/module_{i:03d}/file_{i:03d}.{ext}"
        out.append(f"diff --git a/{path} b/{path}")
        out.append("index 1111111..2222222 100644")
        out.append(f"--- a/{path}")
        out.append(f"+++ b/{path}")
        start = 10
        for _ in range(4):
            ctx_before = [
                f"    value_{rnd.randint(0, 99)} = compute({rnd.randint(0, 9)})" for _ in range(3)
            ]
            removed = [
                f'    old_{k} = "text {rnd.random():.4f}"  # was here'
                for k in range(rnd.randint(1, 6))
            ]
            added = [
                f"    new_{k} = transform(old_{k}, factor={rnd.randint(1, 9)})"
                for k in range(rnd.randint(1, 8))
            ]
            ctx_after = [f"    return result_{rnd.randint(0, 9)}" for _ in range(3)]
            old_len = len(ctx_before) + len(removed) + len(ctx_after)
            new_len = len(ctx_before) + len(added) + len(ctx_after)
            out.append(f"@@ -{start},{old_len} +{start},{new_len} @@ def function_{i}():")
            out += [" " + x for x in ctx_before]
            out += ["-" + x for x in removed]
            out += ["+" + x for x in added]
            out += [" " + x for x in ctx_after]
            n += old_len + len(added)
            start += 40
        i += 1
    return "\n".join(out) + "\n"


def ansi_log(lines: int = 400) -> str:
    """A runner's log with colours, a progress bar and control characters."""
    out = []
    for i in range(1, lines + 1):
        if i % 50 == 0:
            out.append(
                f"\x1b[1;31mERROR\x1b[0m step {i}: tool call failed: "
                "\x1b[33mtimeout after 30s\x1b[0m"
            )
        elif i % 7 == 0:
            out.append(f"\x1b[32mPASS\x1b[0m tests/test_login.py::test_case_{i}")
        elif i % 13 == 0:
            out.append(f"downloading  10%\rdownloading  55%\rdownloading 100% ({i} MB)")
        else:
            stamp = f"2026-11-30T10:{i // 60 % 60:02d}:{i % 60:02d}Z"
            out.append(f"\x1b[2m{stamp}\x1b[0m agent step {i}: read file src/app_{i}.py")
    out.append("bell \x07 and NUL \x00 stay visible; tabs\tstay tabs")
    return "\n".join(out) + "\n"


def png(width: int = 64, height: int = 40) -> bytes:
    """A small gradient PNG, written by hand (no image library needed)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 4, y * 6, 160)) for x in range(width)) for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


_WANTED = "'wrong user name or password'"
PYTEST_REPORT = {
    "created": 1764500000.0,
    "duration": 3.2,
    "summary": {"passed": 41, "failed": 2, "skipped": 1, "total": 44, "collected": 44},
    "tests": [
        {
            "nodeid": f"tests/test_login.py::test_ok_{i}",
            "outcome": "passed",
            "call": {"duration": 0.01 * i},
        }
        for i in range(1, 42)
    ]
    + [
        {
            "nodeid": "tests/test_login.py::test_skipped",
            "outcome": "skipped",
            "setup": {"duration": 0.0},
        },
        {
            "nodeid": "tests/test_login.py::test_wrong_password_message",
            "outcome": "failed",
            "call": {
                "duration": 0.12,
                "outcome": "failed",
                "crash": {"message": "AssertionError: assert 'wrong password' == " + _WANTED},
                "longrepr": (
                    "def test_wrong_password_message():\n"
                    ">       assert login(req).message == " + _WANTED + "\n"
                    "E       AssertionError: assert 'wrong password' == " + _WANTED
                ),
            },
        },
        {
            "nodeid": "tests/test_login.py::test_timing_attack",
            "outcome": "failed",
            "call": {
                "duration": 1.5,
                "outcome": "failed",
                "longrepr": "AssertionError: comparison is not constant-time",
            },
        },
    ],
}

JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4" failures="1" errors="0" skipped="1" time="0.5">
<testcase classname="tests.test_api" name="test_list" time="0.010"/>
<testcase classname="tests.test_api" name="test_get" time="0.020"/>
<testcase classname="tests.test_api" name="test_put" time="0.030">
  <failure message="assert 500 == 201">Traceback: status was 500</failure></testcase>
<testcase classname="tests.test_api" name="test_later" time="0.000">
  <skipped message="not yet"/></testcase>
</testsuite></testsuites>
"""


def big_log_text(size: int, seed: int = 3) -> bytes:
    """Log text of ``size`` bytes, numbered lines with a few colours."""
    rnd = random.Random(seed)
    words = ["agent", "tool", "call", "read", "write", "file", "test", "pass", "fail", "retry"]
    parts = []
    total = 0
    i = 0
    while total < size:
        i += 1
        level = "\x1b[31mERROR\x1b[0m" if i % 997 == 0 else "INFO"
        line = f"{i:08d} {level} {' '.join(rnd.choices(words, k=8))}\n".encode()
        parts.append(line)
        total += len(line)
    return b"".join(parts)[:size]


def build(root: Path) -> dict[str, object]:
    """Make the demo store at ``root / "store.git"``; return what tests need to know of it."""
    path = root / "store.git"
    facts: dict[str, object] = {"store": path}
    with Store.open(path, create=True) as store:
        base = record_task(
            store,
            "plan/p1",
            files={"plan.md": "# Plan\n\n1. Read the login code\n2. Fix the comparison\n"},
            run_id="run-41",
            agent="planner",
            model="model-large",
        )
        assert base.version is not None
        plan_uri = base.version.artifact("plan.md").uri
        facts["plan_uri"] = plan_uri
        first = record_task(
            store,
            f"{SPEC}/t1",
            diff=unified(_PY_OLD, _PY_OLD.replace("stored", "stored_hash"), "app/login.py"),
            log=ansi_log(),
            tests=PYTEST_REPORT,
            run_id="run-42",
            agent="coder",
            model="model-small",
            prompt_hash="sha256:" + "ab" * 32,
            source_repo="https://example.invalid/app.git",
            source_commit="3f1c9e2a7b",
            parent_uris=[plan_uri],
            message="First attempt: rename the stored hash",
            tool_versions={"python": "3.11", "pytest": "8.3"},
        )
        second = record_task(
            store,
            f"{SPEC}/t1",
            diff=unified(_PY_OLD, _PY_NEW, "app/login.py"),
            log=ansi_log(120),
            tests={"passed": 44, "failed": 0, "skipped": 1},
            run_id="run-43",
            agent="coder",
            model="model-small",
            parent_uris=[plan_uri],
            message="Second attempt: constant-time comparison, one message",
            replace=True,
        )
        assert first.version is not None and second.version is not None
        facts["t1_v1"] = first.version.commit
        facts["t1_v2"] = second.version.commit
        record_task(
            store,
            f"{SPEC}/t2",
            log=ansi_log(80),
            failure={
                "type": "TimeoutError",
                "message": "tool call timed out after 600 s",
                "traceback": (
                    "Traceback (most recent call last):\n"
                    '  File "agent.py", line 9, in run\n'
                    "TimeoutError: tool call timed out after 600 s\n"
                ),
            },
            run_id="run-42",
            agent="coder",
            model="model-small",
            message="Gave up waiting for the build",
        )
        record_task(
            store,
            f"{SPEC}/t4",
            files={"reports/junit.xml": Artifact(JUNIT, content_type="application/xml")},
            run_id="run-42",
            message="API tests",
        )
        record_task(
            store,
            f"{SPEC}/t6",
            # Capped on the way in (head and tail kept), and a token-shaped secret masked.
            log=big_log_text(256 << 10) + f"pushing with {LEAKED}\n".encode(),
            capture_policy=CapturePolicy(max_bytes=64 << 10),
            run_id="run-44",
            message="A long run, its log capped",
        )
        store.put(
            f"{SPEC}/t5",
            {
                "screenshot.png": png(),
                "model.bin": Artifact(
                    bytes(range(256)) * 64, content_type="application/octet-stream"
                ),
                "notes/summary.json": json.dumps(
                    {
                        "score": 0.82,
                        "steps": [{"tool": "read", "ok": True}, {"tool": "edit", "ok": False}],
                        "parent": plan_uri,
                    }
                ),
            },
            run_id="run-44",
            tags={"kind": "eval"},
            message="Evaluation artifacts",
        )
        store.put(
            "hostile/h1",
            {
                HOSTILE_NAME: "an artifact whose name is markup\n",
                "script.log": HOSTILE_LOG,
                "meta.json": json.dumps({"<script>": "<img src=x onerror=alert(2)>"}),
            },
            run_id="<b>run</b>",
            message=SCRIPT_MESSAGE,
            metadata={
                "agent": "<script>alert('agent')</script>",
                "note": "<iframe src=javascript:alert(3)>",
            },
        )
        store.put(
            "diffs/big", {"change.diff": big_diff()}, run_id="run-45", message="A large refactor"
        )
        # Big enough for a head, a gap and a tail fetched after (logview reads a log of up to
        # TAIL_KEEP + WINDOW, 2.25 MiB, whole at once).
        store.put("logs/big", {"build.log": big_log_text(BIG_LOG)}, run_id="run-45")
        facts["big_log_size"] = BIG_LOG
    # A merge: the same task moved on two stores, then one pulls the other.
    other = root / "other.git"
    with Store.open(path) as store:
        store.put(f"{SPEC}/t3", {"result.txt": "base\n"}, run_id="run-40", message="base")
    other_store, _ = clone(str(path), other)
    with other_store:
        other_store.put(
            f"{SPEC}/t3",
            {"result.txt": "theirs\n", "extra.txt": "x\n"},
            run_id="run-46",
            message="their side",
        )
    with Store.open(path) as store:
        store.put(f"{SPEC}/t3", {"result.txt": "ours\n"}, run_id="run-47", message="our side")
        add_remote(store, "other", str(other))
        pull(store, "other")
        facts["t3_head"] = store.show(f"{SPEC}/t3").commit
    return facts
