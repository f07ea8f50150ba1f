"""What ``--help`` shows beyond Click's own: examples for every command, and the exit codes.

Examples are kept here, one table for every command (its own module's or another's), and
attached as the command's epilog when the group registers it (:func:`examples_epilog`), so a
command added in a new module only needs a line here to get them. The exit codes are listed at
the end of ``gitstore --help`` and in full by ``gitstore help exit-codes``; a test keeps them
equal to the README's table.
"""

from __future__ import annotations

__all__ = ["EXAMPLES", "EXIT_CODES", "SUMMARIES", "examples_epilog", "exit_codes_text"]

# Command path (as typed after `gitstore`) -> two or three example command lines.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "init": ("gitstore init", "gitstore --store runs.git init"),
    "put": (
        "gitstore put fix-login/t1 run.log diff.diff --run run-42 -m 'first try'",
        "gitstore put fix-login/t1 out/ --as . --tag stage=final",
        "echo done | gitstore put fix-login/t1 - --as status.txt",
    ),
    "get": (
        "gitstore get fix-login/t1 run.log",
        "gitstore get fix-login/t1@v2 model.bin -o model.bin",
        "gitstore get gitstore://fix-login/t1@3f2a9c1d0b7e/run.log",
    ),
    "export": ("gitstore export fix-login/t1 out/", "gitstore export fix-login/t1@~1 previous/"),
    "ls": ("gitstore ls", "gitstore ls fix-login", "gitstore ls fix-login/t1@v2"),
    "log": ("gitstore log", "gitstore log fix-login/t1", "gitstore log fix-login --jsonl"),
    "show": ("gitstore show fix-login/t1", "gitstore show fix-login/t1@v1 run.log --json"),
    "diff": (
        "gitstore diff fix-login/t1",
        "gitstore diff fix-login/t1@v1 fix-login/t1@v3",
        "gitstore diff fix-login/t1@v1 --patch",
    ),
    "rm": ("gitstore rm fix-login/t1 scratch.txt", "gitstore rm fix-login/t1 --task --yes"),
    "verify": ("gitstore verify", "gitstore verify fix-login/t1"),
    "gc": ("gitstore gc --dry-run", "gitstore gc --prune-after 0"),
    "scan": ("gitstore scan", "gitstore scan fix-login --json"),
    "find": (
        "gitstore find --run run-42",
        "gitstore find --tag stage=final --type 'text/*'",
        "gitstore find --task 'fix-*/t?' --since 2026-11-01 -n 10",
    ),
    "rm-run": ("gitstore rm-run run-42", "gitstore rm-run run-42 --yes"),
    "remote": ("gitstore remote add origin ssh://host/srv/runs.git", "gitstore remote ls"),
    "remote add": (
        "gitstore remote add origin ssh://host/srv/runs.git",
        "gitstore remote add backup /mnt/backup/runs.git",
    ),
    "remote ls": ("gitstore remote ls", "gitstore remote ls --json"),
    "remote rm": ("gitstore remote rm backup",),
    "clone": ("gitstore clone ssh://host/srv/runs.git runs.git", "gitstore clone /mnt/runs.git"),
    "push": (
        "gitstore push",
        "gitstore push backup fix-login",
        "gitstore push origin fix-login/t1",
    ),
    "pull": ("gitstore pull", "gitstore pull origin fix-login", "gitstore pull backup --json"),
    "sync": ("gitstore sync", "gitstore sync backup"),
    "bundle": ("gitstore bundle create runs.bundle", "gitstore bundle import runs.bundle"),
    "bundle create": (
        "gitstore bundle create runs.bundle",
        "gitstore bundle create fix.bundle fix-login/t1",
    ),
    "bundle import": ("gitstore bundle import runs.bundle",),
    "serve": (
        "gitstore serve",
        "gitstore serve --host 0.0.0.0 --port 8080",
    ),
    "token": ("gitstore token add ci --scope write", "gitstore token ls"),
    "token add": (
        "gitstore token add ci --scope write",
        "gitstore token add reader --spec 'fix-*'",
    ),
    "token ls": ("gitstore token ls", "gitstore token ls --json"),
    "token rm": ("gitstore token rm ci",),
    "completion": (
        "gitstore completion bash > ~/.local/share/bash-completion/completions/gitstore",
        "gitstore completion zsh > ~/.zfunc/_gitstore",
        "gitstore completion fish > ~/.config/fish/completions/gitstore.fish",
    ),
    "help": ("gitstore help exit-codes", "gitstore help put"),
    "du": ("gitstore du", "gitstore du fix-login", "gitstore du fix-login/t1 --json"),
    "purge": (
        "gitstore purge fix-login/t1 run.log",
        "gitstore purge --sha256 9f86d081884c7d65 --reason 'token leaked' --yes",
        "gitstore purge --blob 0f7bc766052a5a0ee28a393d51d2370f96d8ceb8 --replace-with 'removed'",
    ),
    "retain": (
        "gitstore retain --keep-last 5 --keep-daily 7",
        "gitstore retain fix-login --type text/x-log --keep-within 7d",
        "gitstore retain --yes",
    ),
    "alias": ("gitstore alias fix-login/t1@v3 best", "gitstore alias ls fix-login"),
    "alias rm": ("gitstore alias rm fix-login/t1 best",),
    "alias ls": ("gitstore alias ls", "gitstore alias ls fix-login/t1 --json"),
}

# One-line summaries for commands whose docstring's first sentence is too long for the list of
# ``gitstore --help`` (Click would cut it with "...").
SUMMARIES: dict[str, str] = {
    "serve": "Serve the store over HTTP (REST API, agent jobs, web page).",
    "token": "Tokens that gitstore serve asks for.",
    "token add": "Make token NAME and print it (shown only once).",
    "token ls": "List tokens (never the secrets).",
    "token rm": "Remove token NAME: requests with it are refused.",
    "export": "Write a version's artifacts into a folder.",
    "du": "Bytes on disk and logical bytes, per spec and task.",
    "purge": "Replace leaked bytes by a tombstone, everywhere.",
    "retain": "Drop old versions and artifacts by keep rules.",
    "alias": "Name versions: SPEC/TASK@NAME.",
    "alias rm": "Remove alias NAME of SPEC/TASK.",
}

# Exit code -> what it means (README "Exit codes" has the same rows, with the error classes).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "error: any other gitstore error",
    2: "usage: arguments that do not fit together",
    3: "invalid name: a name, address or URI that is refused",
    4: "not found: store, spec, task, version, artifact, remote, or a scope matching nothing",
    5: "conflict: a write lost every compare-and-swap",
    6: "integrity: stored bytes do not match their identity",
    7: "input: a file that cannot be read or written",
    8: "bad store: the path is not a usable store",
    9: "remote: a transfer with another store failed",
    10: "push refused: tasks to pull first, or holding secrets",
    11: "unreachable: the remote cannot be reached",
    12: "auth: the remote refused our credentials",
    13: "not a store: the remote is not a gitstore",
    14: "corrupt transfer: the pack or bundle received is damaged",
    15: "rejected: a version received breaks the store's rules",
    16: "quota: a put would pass gitstore.maxSize or gitstore.maxArtifactSize",
    17: "ambiguous: a revision names several versions (@vN after a merge)",
    20: "secrets: scan found secret-shaped strings",
    70: "internal: a bug in gitstore",
    130: "interrupted: Ctrl-C",
    141: "pipe: the reader of stdout went away",
}


def examples_epilog(path: str) -> str | None:
    """The ``Examples:`` block for command ``path``, laid out as typed (Click keeps it: \\b)."""
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def exit_codes_text(compact: bool = False) -> str:
    """The exit codes, one per line (``compact``: several per line, for ``gitstore --help``)."""
    if compact:
        return (
            "Exit codes: "
            + ", ".join(f"{code} {text.split(':')[0]}" for code, text in EXIT_CODES.items())
            + " (gitstore help exit-codes)."
        )
    return "\n".join(f"{code:>3}  {text}" for code, text in EXIT_CODES.items())
