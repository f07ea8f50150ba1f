"""The ``gitstore`` command: one thin Click command per library call, and the error table.

Each command opens the store, makes one call to gitstore's public API and formats the answer as
compact text or, with ``--json``, as one JSON document. Errors never show a traceback: the one
mapping in :func:`_exit_code` turns every exception into a one-line message on stderr and the exit
code documented in the README (library errors carry their own ``exit_code``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, overload

import click

from gitstore import (
    GitstoreError,
    InputError,
    IntegrityError,
    UsageError,
    __version__,
)

from .output import printable, say
from .params import key_values

if TYPE_CHECKING:
    # At run time each command imports what it uses: `gitstore --help` loads neither the store
    # nor dulwich.
    from gitstore import ArtifactInfo, BlobReader, Store, Version

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_PIPE", "EXIT_USAGE", "cli", "main"]

# The codes that belong to the CLI rather than to a library error class.
EXIT_USAGE = UsageError.exit_code  # Click's own usage errors share the library's usage code.
EXIT_INTERNAL = 70  # sysexits' EX_SOFTWARE: anything unexpected is a bug in gitstore.
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C.
EXIT_PIPE = 141  # 128 + SIGPIPE, what git or cat report when their reader goes away.

# Below this size a bar would only flash; above it a transfer takes long enough to watch.
PROGRESS_MIN_BYTES = 1 << 20

Tick = Callable[[int], None]
F = TypeVar("F", bound=Callable[..., Any])


class _StdoutClosed(Exception):
    """The reader of stdout went away (``gitstore log | head``).

    Raised in place of BrokenPipeError because Click's own ``main`` turns an EPIPE into a bare
    exit 1 before our handler could see it.
    """


# The commands that work on a served store (--store http://...): each makes library calls a
# served store answers. Every other command needs the store's files and is refused for a URL.
SERVED_COMMANDS = frozenset(
    {"put", "get", "export", "ls", "log", "show", "diff", "rm", "find", "rm-run"}
)


class GitstoreGroup(click.Group):
    """The ``gitstore`` group: Click's parsing and dispatch, with gitstore's error handling."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        location = ctx.params.get("store_path")
        if command is not None and name not in SERVED_COMMANDS and _is_url(location):
            # The one place a command is refused for a served store; the copy keeps its own
            # options, so `gitstore COMMAND --help` still answers.
            command = _refusing(command, str(name), str(location))
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            rv = super().invoke(ctx)
            # Small outputs sit in the buffer until exit; flush here so a closed pipe is caught
            # below instead of surfacing as a warning while the interpreter shuts down.
            sys.stdout.flush()
            return rv
        except BrokenPipeError as e:
            raise _StdoutClosed() from e

    @overload
    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: Literal[True] = True,
        **extra: Any,
    ) -> NoReturn: ...

    @overload
    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = ...,
        **extra: Any,
    ) -> Any: ...

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line and exit with the code of the table (or return it).

        Click runs non-standalone so that every error, its own included, reaches
        :func:`_exit_code`; CliRunner goes through here too, so tests see real exit codes.
        """
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except Exception as e:
            if os.environ.get("GITSTORE_DEBUG") and not isinstance(e, _EXPECTED):
                raise
            code = _exit_code(e)
        except KeyboardInterrupt as e:
            code = _exit_code(e)
        if standalone_mode:
            sys.exit(code)
        return code


_EXPECTED = (GitstoreError, click.ClickException, click.Abort, _StdoutClosed, OSError)


def _exit_code(exc: BaseException) -> int:
    """Say what went wrong in one line on stderr and return the exit code: the only such table."""
    if isinstance(exc, GitstoreError):
        _error(str(exc))
        return exc.exit_code
    if isinstance(exc, click.UsageError):
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error(exc.format_message() + hint)
        return EXIT_USAGE
    if isinstance(exc, click.ClickException):
        _error(exc.format_message())
        return EXIT_USAGE
    if isinstance(exc, (click.Abort, KeyboardInterrupt)):
        _error("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, _StdoutClosed):
        # Point stdout at /dev/null so the flush at interpreter exit cannot complain again.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    if isinstance(exc, OSError):
        # A file of the user's that could not be read or written (get -o, export, a full disk):
        # an input/output problem, not a bug.
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}")
        return InputError.exit_code
    _error(f"internal error: {type(exc).__name__}: {exc} (set GITSTORE_DEBUG=1 for a traceback)")
    return EXIT_INTERNAL


def _error(message: str) -> None:
    # One line, always: scripts read the first line of stderr, and a message may quote a user's
    # file name, a store's name (which can hold a newline or an ESC) or a lower layer's
    # multi-line text; printable() shows each control character as a visible escape.
    say(f"gitstore: {message}", err=True)


# -- shared options and helpers ----------------------------------------------------------------


def json_option(f: F) -> F:
    """``--json``: print one JSON document on stdout instead of text."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document instead of text."
    )(f)


def message_options(f: F) -> F:
    """``--run`` and ``-m``: what a new version records about who made it and why."""
    f = click.option("-m", "--message", metavar="TEXT", help="Message of the new version.")(f)
    return click.option(
        "--run", "run_id", metavar="RUN_ID", help="Id of the agent run that made the version."
    )(f)


def _open(*, create: bool = False) -> Store:
    """The store chosen by ``--store`` (closed when the command ends); create it on writes."""
    from gitstore import Store

    ctx = click.get_current_context()
    path: Path | str = ctx.obj
    return ctx.with_resource(Store.open(path, create=create))


def _is_url(location: object) -> bool:
    """True for a served store's location (``http://...``): what Store.open hands the client."""
    return isinstance(location, str) and "://" in location


def _refusing(command: click.Command, what: str, url: str) -> click.Command:
    """A copy of ``command`` that refuses to run, saying it needs a store on this machine."""

    def refuse(**_: object) -> NoReturn:
        served = ", ".join(sorted(SERVED_COMMANDS))
        raise UsageError(
            f"{what} needs a store on this machine; {url} is a served store "
            f"(these work on one: {served})"
        )

    refusing = copy.copy(command)
    refusing.callback = refuse
    return refusing


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def _progress(label: str, total: Callable[[], int]) -> Iterator[Tick | None]:
    """A progress callback drawing a bar on stderr, or None when stderr is not a terminal.

    ``total`` is only called when a bar may be drawn, so piped runs pay nothing for it.
    """
    if not _stderr_is_tty():
        yield None
        return
    size = total()
    if size < PROGRESS_MIN_BYTES:
        yield None
        return
    with click.progressbar(length=size, label=label, file=sys.stderr) as bar:
        yield bar.update


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _table(rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> None:
    """Print rows as columns separated by two spaces (columns in ``right`` right-aligned).

    Cells are escaped before they are measured, so a name holding control characters neither
    forges a row nor breaks the alignment.
    """
    if not rows:
        return
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        click.echo("  ".join(cells).rstrip())  # cells escaped above


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def _when(created_at: str) -> str:
    """``2025-01-02T03:04:05.123456Z`` shown to the second."""
    return created_at[:19].replace("T", " ") + "Z" if len(created_at) >= 19 else created_at


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _print_version(version: Version, as_json: bool) -> None:
    """What put and rm answer: the version they made (or the unchanged latest one)."""
    if as_json:
        _emit_json(version.to_dict(created=True))
        return
    note = "" if version.created else " (unchanged, no new version)"
    say(
        f"{version.spec}/{version.task} v{version.version} {version.commit[:12]}  "
        f"{_plural(len(version.artifacts), 'artifact')}{note}"
    )


def _artifact_rows(artifacts: Sequence[ArtifactInfo]) -> list[list[str]]:
    return [[a.name, str(a.size), a.content_type, a.sha256[:12], _note(a)] for a in artifacts]


def _note(a: ArtifactInfo) -> str:
    """What was done to an artifact on the way in, so that no cut goes unseen in ls and show."""
    notes = []
    if a.truncated:
        notes.append(f"truncated from {a.truncated.get('original_size', '?')} bytes")
    if a.masked_secrets:
        notes.append(f"{_plural(a.masked_secrets, 'secret')} masked")
    return ", ".join(notes)


def _print_fields(fields: Mapping[str, object]) -> None:
    width = max(len(k) for k in fields) + 1
    for key, value in fields.items():
        say(f"{key + ':':<{width}} {'-' if value is None else value}")


# -- commands --------------------------------------------------------------------------------


@click.group(
    "gitstore",
    cls=GitstoreGroup,
    # A bare ``gitstore`` is a usage error with a hint, like every other one (exit 2).
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--store",
    "store_path",
    envvar="GITSTORE_DIR",
    show_envvar=True,
    metavar="PATH|URL",
    help="The store, a bare Git repository. Default: $GITSTORE_DIR, else ~/.gitstore. "
    "put and init create it; other commands need it to exist. An http(s):// URL is a store "
    "served by gitstore serve (token: $GITSTORE_TOKEN or git's credential helper); put, get, "
    "export, ls, log, show, diff, rm, find and rm-run work on it.",
)
@click.version_option(__version__, "--version", prog_name="gitstore")
@click.pass_context
def cli(ctx: click.Context, store_path: str | None) -> None:
    """Artifacts of AI agent runs, versioned per task, in a bare Git repository.

    Addresses: SPEC/TASK is the latest version; add @vN (version N), @~N (N before the latest)
    or @<commit prefix>. An artifact URI gitstore://SPEC/TASK@COMMIT/NAME pins one version.
    """
    # Resolved per run, not at import: HOME may differ between runs (and does in tests).
    if _is_url(store_path):
        ctx.obj = store_path  # kept as given: a Path would fold http:// into http:/
        return
    path = Path(store_path) if store_path is not None else Path.home() / ".gitstore"
    ctx.obj = path.expanduser()


@cli.command()
def init() -> None:
    """Create the store (a bare Git repository) if it does not exist yet."""
    store = _open(create=True)
    say(f"store at {store.path}")


@cli.command()
@click.argument("address", metavar="SPEC/TASK")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "--as",
    "name",
    metavar="NAME",
    help="Artifact name for the one PATH (required for - ); for a folder, the prefix of its "
    "files ('.' puts them at the top).",
)
@click.option("--type", "content_type", metavar="MIME", help="Content type of every artifact.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    callback=key_values,
    metavar="KEY=VALUE",
    help="Tag every artifact (repeatable).",
)
@click.option(
    "--meta",
    "metadata",
    multiple=True,
    callback=key_values,
    metavar="KEY=VALUE",
    help="Free key/value metadata on the version (repeatable).",
)
@message_options
@click.option("--force", is_flag=True, help="Make a new version even if nothing changed.")
@click.option(
    "--replace", is_flag=True, help="Start from an empty set instead of the previous version."
)
@click.option(
    "--mask-secrets",
    is_flag=True,
    help="Replace secrets (secret-named environment values, token shapes) with ***MASKED***.",
)
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Inside a folder PATH, follow symbolic links to files, wherever they point (by default "
    "any link inside a folder is refused; links to folders always are).",
)
@json_option
def put(
    address: str,
    paths: tuple[str, ...],
    name: str | None,
    content_type: str | None,
    tags: dict[str, str],
    metadata: dict[str, str],
    run_id: str | None,
    message: str | None,
    force: bool,
    replace: bool,
    mask_secrets: bool,
    follow_symlinks: bool,
    as_json: bool,
) -> None:
    """Store files, folders or stdin (-) as ONE new version of SPEC/TASK.

    A file is stored under its base name, a folder's files under the folder's base name
    (NAME/...), stdin under --as NAME. The previous version's other artifacts are kept unless
    --replace. Bytes are stored exactly as read. A PATH that is a symbolic link is followed; a
    link inside a folder is refused unless --follow-symlinks.
    """
    from gitstore import Store

    inputs = _put_inputs(paths, name)
    # Refuse bad input before the store is created: a refused first put leaves no empty store.
    Store.check_put(
        address,
        inputs,
        content_type=content_type,
        tags=tags or None,
        metadata=metadata or None,
        follow_symlinks=follow_symlinks,
    )
    store = _open(create=True)
    with _progress("storing", lambda: _input_size(inputs)) as tick:
        version = store.put(
            address,
            inputs,
            run_id=run_id,
            message=message,
            metadata=metadata or None,
            content_type=content_type,
            tags=tags or None,
            replace=replace,
            force=force,
            progress=tick,
            mask_secrets=mask_secrets,
            follow_symlinks=follow_symlinks,
        )
    _print_version(version, as_json)


def _put_inputs(paths: Sequence[str], name: str | None) -> dict[str, Path | IO[bytes]]:
    """Artifact name -> source for each PATH (Path objects: a plain str would be stored as text)."""
    if name is not None and len(paths) > 1:
        raise UsageError(f"--as names one input, but {len(paths)} PATHs were given")
    inputs: dict[str, Path | IO[bytes]] = {}
    for raw in paths:
        source: Path | IO[bytes]
        if raw == "-":
            if name is None:
                raise UsageError("reading stdin (-) needs --as NAME")
            key, source = name, sys.stdin.buffer
        else:
            source = Path(raw)
            # abspath, not resolve: a symlink `latest -> run-42` is stored as `latest`.
            key = name if name is not None else os.path.basename(os.path.abspath(raw))
        if key in inputs:
            raise UsageError(f"two PATHs would both be stored as {key!r}")
        inputs[key] = source
    return inputs


def _input_size(inputs: Mapping[str, Path | IO[bytes]]) -> int:
    """Bytes the put will read from files and folders (stdin's size is unknown: not counted)."""
    total = 0
    for source in inputs.values():
        if not isinstance(source, Path):
            continue
        # A path that cannot be read is the library's to report, with its proper error.
        with contextlib.suppress(OSError):
            if source.is_dir():
                total += sum(f.stat().st_size for f in source.rglob("*") if f.is_file())
            else:
                total += source.stat().st_size
    return total


@cli.command()
@click.argument("target", metavar="SPEC/TASK[@REV] | URI")
@click.argument("name", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    metavar="FILE",
    help="Write to FILE (whole or not at all) instead of stdout.",
)
@click.option(
    "--verify", is_flag=True, help="Recompute the sha256 while reading; exit 6 on a mismatch."
)
def get(target: str, name: str | None, output: Path | None, verify: bool) -> None:
    """Write the bytes of artifact NAME of SPEC/TASK[@REV], or of a gitstore:// URI.

    The bytes stream through: memory use does not grow with the artifact.
    """
    store = _open()
    info = store.artifact(target, name)
    # Read through the pinned URI so the bytes belong to the version `info` describes, even if
    # another writer moves the task meanwhile.
    with _progress("reading", lambda: info.size) as tick:
        if output is None or str(output) == "-":
            with store.open_artifact(info.uri, verify=verify) as source:
                _copy(source, sys.stdout.buffer, tick)
        else:
            store.save_artifact(info.uri, output, verify=verify, progress=tick)


def _copy(source: BlobReader, dest: IO[bytes], tick: Tick | None) -> None:
    for chunk in source.iter_chunks():
        dest.write(chunk)
        if tick is not None:
            tick(len(chunk))


@cli.command()
@click.argument("address", metavar="SPEC/TASK[@REV]")
@click.argument("dest", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
def export(address: str, dest: Path) -> None:
    """Write every artifact of SPEC/TASK[@REV] into folder DIR (created if missing).

    Each file is written whole or not at all; existing files of the same names are replaced. A
    name that could leave DIR (.., .git, a leading /, a path through a symbolic link already in
    DIR) is refused, exit 3, before anything is written.
    """
    store = _open()
    with _progress("exporting", lambda: sum(a.size for a in store.show(address).artifacts)) as tick:
        written = store.export(address, dest, progress=tick)
    say(f"exported {_plural(len(written), 'artifact')} to {dest}")


@cli.command(name="ls")
@click.argument("address", required=False, metavar="[SPEC[/TASK[@REV]]]")
@json_option
def ls(address: str | None, as_json: bool) -> None:
    """List specs; the tasks of SPEC; or the artifacts of a version of SPEC/TASK.

    --json: specs as [{"name", "tasks"}], tasks as [{"name", "spec", "task", "commit"}], a
    version as {"spec", "task", "version", "commit", ..., "artifacts": [...]}.
    """
    from gitstore import parse_address

    store = _open()
    if address is None:
        specs = store.spec_summaries()
        if as_json:
            _emit_json([s.to_dict() for s in specs])
        else:
            _table([[s.name, _plural(s.tasks, "task")] for s in specs])
        return
    addr = parse_address(address)
    if addr.task is None:
        tasks = store.task_heads(addr.spec)
        if as_json:
            _emit_json([t.to_dict() for t in tasks])
        else:
            _table([[t.task, t.commit[:12]] for t in tasks])
        return
    version = store.show(address)
    if as_json:
        _emit_json(version.to_dict())
        return
    say(f"{version.spec}/{version.task} v{version.version} {version.commit[:12]}")
    _table(_artifact_rows(version.artifacts), right=frozenset({1}))
    _print_removed(version)


@cli.command()
@click.argument("address", metavar="SPEC/TASK[@REV]", required=False)
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Show at most this many.")
@json_option
@click.option(
    "--jsonl",
    is_flag=True,
    help="One JSON line per version, with its artifacts; ADDRESS may be a SPEC or left out "
    "(the whole store).",
)
def log(address: str | None, limit: int | None, as_json: bool, jsonl: bool) -> None:
    """List the versions of SPEC/TASK, newest first (--jsonl: of a spec or the store too)."""
    if jsonl:
        from gitstore import iter_history

        for n, record in enumerate(iter_history(_open(), address)):
            if limit is not None and n >= limit:
                break
            click.echo(json.dumps(record, sort_keys=True, separators=(",", ":")))
        return
    if address is None:
        raise UsageError("log needs SPEC/TASK (or --jsonl for a spec or the whole store)")
    versions = _open().log(address, limit=limit)
    if as_json:
        _emit_json([v.to_dict(artifacts=False) for v in versions])
        return
    _table(
        [
            [
                f"v{v.version}",
                v.commit[:12],
                _when(v.created_at),
                v.run_id or "-",
                _plural(len(v.artifacts), "artifact"),
                _first_line(v.message),
            ]
            for v in versions
        ]
    )


@cli.command()
@click.argument("address", metavar="SPEC/TASK[@REV]")
@click.argument("name", required=False)
@json_option
def show(address: str, name: str | None, as_json: bool) -> None:
    """Show a version's metadata and artifacts, or one artifact's metadata with NAME."""
    version = _open().show(address)
    if name is not None:
        info = version.artifact(name)
        if as_json:
            _emit_json(info.to_dict())
        else:
            fields = info.to_dict()
            fields["tags"] = " ".join(f"{k}={v}" for k, v in info.tags.items()) or "-"
            _print_fields(fields)
        return
    if as_json:
        _emit_json(version.to_dict())
        return
    _print_fields(
        {
            "version": f"{version.spec}/{version.task} v{version.version}",
            "commit": version.commit,
            "parents": " ".join(version.parents) or "-",
            "created_at": version.created_at,
            "run_id": version.run_id or "-",
            "message": _first_line(version.message) or "-",
            "metadata": " ".join(f"{k}={v}" for k, v in version.metadata.items()) or "-",
            # A merge made by pull names what both sides changed (the newer side kept it).
            **({"conflicts": " ".join(version.conflicts)} if version.conflicts else {}),
            "artifacts": len(version.artifacts),
        }
    )
    _table([["", *row] for row in _artifact_rows(version.artifacts)], right=frozenset({2}))
    _print_removed(version)


def _print_removed(version: Version) -> None:
    """Artifacts retention or purge took from the version: "log.log expired on ... (rule)"."""
    for r in version.removed:
        say(f"  {r}")


@cli.command()
@click.argument("old", metavar="SPEC/TASK[@REV]")
@click.argument("new", required=False, metavar="[SPEC/TASK[@REV2]]")
@json_option
def diff(old: str, new: str | None, as_json: bool) -> None:
    """Names added (A), removed (D) and changed (M) from one version to another.

    With one address the other side is the task's latest version; with no @REV either, the
    latest version is compared with the one before it. Exits 0 whether or not anything changed.
    """
    d = _open().diff(old, new)
    if as_json:
        _emit_json(d.to_dict())
        return
    say(f"{d.old.spec}/{d.old.task}@v{d.old.version} -> {d.new.spec}/{d.new.task}@v{d.new.version}")
    marks = [("A", n) for n in d.added] + [("D", n) for n in d.removed]
    marks += [("M", n) for n in d.changed]
    for mark, n in sorted(marks, key=lambda m: m[1]):
        say(f"{mark} {n}")


@cli.command()
@click.argument("address", metavar="SPEC/TASK")
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option(
    "--task",
    "whole_task",
    is_flag=True,
    help="Delete the task's ref instead (pinned URIs keep resolving until gc).",
)
@message_options
@json_option
def rm(
    address: str,
    names: tuple[str, ...],
    whole_task: bool,
    run_id: str | None,
    message: str | None,
    as_json: bool,
) -> None:
    """Make a new version of SPEC/TASK without NAMEs (a folder NAME removes its files)."""
    if whole_task == bool(names):
        raise UsageError("give either artifact NAMEs or --task")
    store = _open()
    if not whole_task:
        _print_version(store.rm(address, names, run_id=run_id, message=message), as_json)
        return
    commit = store.rm_task(address)
    if as_json:
        from gitstore import TaskDeletion

        _emit_json(TaskDeletion(address, commit).to_dict())
    else:
        say(f"deleted {address} (its ref pointed at {commit[:12]})")


@cli.command()
@click.argument("scope", required=False, metavar="[SPEC[/TASK]]")
@json_option
def verify(scope: str | None, as_json: bool) -> None:
    """Recompute every artifact's digests; print each problem on a line and exit 6 if any."""
    problems = _open().verify(scope)
    if as_json:
        _emit_json([p.to_dict() for p in problems])
    else:
        for p in problems:
            say(str(p))
    if problems:
        raise IntegrityError(f"verify found {_plural(len(problems), 'problem')}")
    if not as_json:
        say("ok: no problems found")


@cli.command()
@click.option(
    "--dry-run", is_flag=True, help="Count what would be removed or merged; change nothing."
)
@click.option(
    "--prune-after",
    type=click.FloatRange(min=0),
    default=14.0,
    show_default=True,
    metavar="DAYS",
    help="Prune unreachable objects older than this many days.",
)
@json_option
def gc(dry_run: bool, prune_after: float, as_json: bool) -> None:
    """Clean up after crashed writers: temp files, stale locks, small packs, unreachable objects.

    Safe while other processes write to the store.
    """
    report = _open().gc(prune_after=prune_after * 86400, dry_run=dry_run)
    if as_json:
        _emit_json(report.to_dict())
    else:
        _print_fields(report.to_dict())


def _register() -> None:
    # Commands for agent runners live in their own module; imported here, after the group
    # exists, so ``gitstore --help`` lists them with the rest.
    from .lifecycle_purge import COMMANDS as PURGE_COMMANDS
    from .lifecycle_retain import COMMANDS as RETAIN_COMMANDS
    from .runner import COMMANDS
    from .serve import COMMANDS as SERVE_COMMANDS

    for command in [*COMMANDS, *SERVE_COMMANDS, *PURGE_COMMANDS, *RETAIN_COMMANDS]:
        cli.add_command(command)


_register()


# The commands between machines live in cli/remote.py, which uses the helpers above.
from .remote import register as _register_remote  # noqa: E402 - needs the helpers above

_register_remote(cli)


def main() -> None:
    """Console-script entry point: ``gitstore``."""
    cli.main(prog_name="gitstore")


if __name__ == "__main__":
    main()
