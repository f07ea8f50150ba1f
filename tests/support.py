"""Helpers for tests: stock git as the second opinion on what gitstore writes."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(gitdir: Path | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run stock git against ``gitdir`` and return the finished process (text output)."""
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", *args],
        capture_output=True,
        text=True,
        check=check,
    )


def fsck(gitdir: Path | str) -> None:
    """Assert that ``git fsck --strict`` finds nothing wrong with the store."""
    result = git(gitdir, "fsck", "--strict", "--no-dangling", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line and not line.startswith(("notice:", "Checking"))
    ]
    assert not bad, bad
