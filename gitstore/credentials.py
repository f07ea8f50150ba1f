"""Credentials for an HTTP(S) URL from git's credential helpers, asked without ever prompting.

Both ends that speak HTTP use it: :mod:`gitstore.remote` (push and pull over Git smart HTTP) and
:mod:`gitstore.client` (a served store's REST API), so a token stored once with
``git credential approve`` serves both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.parse

__all__ = ["git_credential"]


def git_credential(url: str) -> tuple[str | None, str | None]:
    """``(username, password)`` that ``git credential fill`` holds for ``url``, else ``(None,
    None)``: when git is missing, no helper knows the URL, or a helper would have to ask.

    Never prompts: a terminal prompt, askpass programs and interactive helpers are switched off,
    and git gets 10 seconds.
    """
    if shutil.which("git") is None:
        return None, None
    parsed = urllib.parse.urlsplit(url)
    query = f"protocol={parsed.scheme}\nhost={parsed.netloc}\npath={parsed.path.lstrip('/')}\n\n"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    try:
        done = subprocess.run(
            ["git", "-c", "credential.interactive=never", "credential", "fill"],
            input=query,
            capture_output=True,
            text=True,
            env=env,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    if done.returncode != 0:
        return None, None
    fields = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if "username" in fields and "password" in fields:
        return fields["username"], fields["password"]
    return None, None
