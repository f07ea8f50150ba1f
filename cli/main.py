"""The ``gitstore`` command: one thin Click command per library call, and the error table.

Each command opens the store, makes one call to gitstore's public API and formats the answer for
people (sizes, aligned columns under headers, dates, colour on a terminal: :mod:`.output`) or,
with ``--json``, as one JSON document. The global options (``--store``, ``--json``, ``--color``,
``-q``, ``-v``) are accepted before or after the command. A name that is not found gets a
"did you mean" (:mod:`.hints`); every command's help ends with examples (:mod:`.help`).

Errors never show a traceback: the one mapping in :func:`_exit_code` turns every exception into
a one-line message on stderr and the exit code documented in the README (library errors carry
their own ``exit_code``).
"""

from __future__ import annotations

import contextlib
import copy
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

from . import output
from .help import SUMMARIES, examples_epilog, exit_codes_text
from .hints import did_you_mean, listing
from .output import (
    ago,
    byte_progress,
    confirm,
    echo,
    emit_json,
    io_progress,
    note,
    printable,
    say,
    size,
    style,
    table,
    value,
    when,
)
from .params import ARTIFACT, TASK_ADDRESS, key_values

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

PROGRESS_MIN_BYTES = output.PROGRESS_MIN_BYTES
# Keys of the root context's meta: the global options, wherever they were given.
JSON_KEY = "gitstore.json"

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
    # These two read no store at all.
    | {"completion", "help"}
)


class GitstoreGroup(click.Group):
    """The ``gitstore`` group: Click's parsing and dispatch, with gitstore's error handling.

    Every command registered (and every subcommand of a registered group) also takes the global
    options after its name, gets its examples as an epilog, and a one-line summary that fits.
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _decorate(cmd, name or cmd.name or "")
        super().add_command(cmd, name)

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


def _decorate(cmd: click.Command, path: str) -> None:
    """Give ``cmd`` (command path ``path``) the global options, its examples, a short summary."""
    names = {p.name for p in cmd.params}
    cmd.params.extend(p for p in _global_params() if p.name not in names)
    for param in cmd.params:
        if param.name == "as_json" and isinstance(param, click.Option):
            param.callback = _json_or_global
    if cmd.epilog is None:
        cmd.epilog = examples_epilog(path)
    if path in SUMMARIES:
        cmd.short_help = SUMMARIES[path]
    if isinstance(cmd, click.Group):
        for sub_name, sub in cmd.commands.items():
            _decorate(sub, f"{path} {sub_name}")


def _json_or_global(ctx: click.Context, param: click.Parameter, given: bool) -> bool:
    """``--json`` of a command, or the global one given before the command."""
    return bool(given or ctx.find_root().meta.get(JSON_KEY))


def _global_params() -> list[click.Parameter]:
    """The global options as a command takes them after its name (shown in its --help too)."""
    return [
        click.Option(
            ["--store", "store_after"],
            metavar="PATH|URL",
            expose_value=False,
            callback=_late_store,
            help="The store (as gitstore --store; may follow the command).",
        ),
        click.Option(
            ["--color", "color_after"],
            type=click.Choice(["auto", "always", "never"]),
            expose_value=False,
            callback=_late_meta(output.COLOR_KEY),
            help="Colour: auto (a terminal, unless NO_COLOR is set), always or never.",
        ),
        click.Option(
            ["-q", "--quiet", "quiet_after"],
            is_flag=True,
            expose_value=False,
            callback=_late_verbosity(-1),
            help="Only results and errors: no notes, no progress.",
        ),
        click.Option(
            ["-v", "--verbose", "verbose_after"],
            is_flag=True,
            expose_value=False,
            callback=_late_verbosity(1),
            help="More detail: full commit ids, the store's path.",
        ),
    ]


def _late_store(ctx: click.Context, param: click.Parameter, location: str | None) -> None:
    if location is None:
        return
    root = ctx.find_root()
    root.params["store_path"] = location
    root.obj = _store_location(location)
    command = ctx.command_path.split(" ")[1:2]
    if (
        _is_url(location)
        and command
        and command[0] not in SERVED_COMMANDS
        and not ctx.resilient_parsing
    ):
        _refusing(ctx.command, command[0], location).callback()  # type: ignore[misc]


def _late_meta(key: str) -> Callable[[click.Context, click.Parameter, object], None]:
    def store(ctx: click.Context, param: click.Parameter, given: object) -> None:
        if given is not None:
            ctx.find_root().meta[key] = given

    return store


def _late_verbosity(level: int) -> Callable[[click.Context, click.Parameter, bool], None]:
    def store(ctx: click.Context, param: click.Parameter, given: bool) -> None:
        if given:
            ctx.find_root().meta[output.VERBOSITY_KEY] = level

    return store


def _store_location(location: str | None) -> Path | str:
    """What ``--store`` names: a URL as given, else a path (default ``~/.gitstore``)."""
    if _is_url(location):
        assert location is not None
        return location  # kept as given: a Path would fold http:// into http:/
    path = Path(location) if location is not None else Path.home() / ".gitstore"
    return path.expanduser()


def _error(message: str) -> None:
    # One line, always: scripts read the first line of stderr, and a message may quote a user's
    # file name, a store's name (which can hold a newline or an ESC) or a lower layer's
    # multi-line text; printable() shows each control character as a visible escape.
    click.echo(
        f"{style('gitstore:', err=True, fg='red', bold=True)} {printable(message)}", err=True
    )


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


def _open(*, create: bool = False, announce: bool = True) -> Store:
    """The store chosen by ``--store`` (closed when the command ends); create it on writes.

    A store created here is said (``put`` into a path that held nothing): a typo in --store or
    $GITSTORE_DIR should not go unnoticed.
    """
    from gitstore import Store

    ctx = click.get_current_context()
    path: Path | str = ctx.find_root().obj
    existed = _is_url(path) or _holds_something(path)
    store = ctx.with_resource(Store.open(path, create=create))
    if create and not existed:
        ctx.meta[CREATED_KEY] = store.path
        if announce:
            announce_created()
    elif output.verbose():
        note(f"store: {store.path or path}", err=True)
    return store


CREATED_KEY = "gitstore.created"


def announce_created() -> None:
    """Say that this command created the store (once it has succeeded: a refused put says only
    why it was refused)."""
    created = click.get_current_context().meta.get(CREATED_KEY)
    if created:
        note(f"created a new store at {created}")


def _holds_something(path: str | os.PathLike[str]) -> bool:
    try:
        if not os.path.lexists(path):
            return False
        return not os.path.isdir(path) or bool(os.listdir(path))
    except OSError:
        return True  # unreadable: Store.open says what is wrong with it


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


@contextlib.contextmanager
def _progress(label: str, total: Callable[[], int]) -> Iterator[Tick | None]:
    """A progress callback (bytes, rate, ETA on stderr), or None when stderr is no terminal."""
    with byte_progress(label, total) as tick:
        yield tick


def _table(rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> None:
    """Rows as aligned columns without a header (kept for commands in other modules)."""
    table(rows, right=right)


def _short(commit: str | None) -> str:
    """A commit id as shown: 12 digits, or all 40 with ``-v``."""
    if not commit:
        return "-"
    return commit if output.verbose() else commit[:12]


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def _when(created_at: str) -> str:
    """``2025-01-02T03:04:05.123456Z`` shown to the second (the one date format)."""
    return when(created_at)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _print_version(version: Version, as_json: bool) -> None:
    """What put and rm answer: the version they made (or the unchanged latest one)."""
    if as_json:
        emit_json(version.to_dict(created=True))
        return
    unchanged = "" if version.created else " (unchanged, no new version)"
    total = sum(a.size for a in version.artifacts)
    say(
        f"{version.spec}/{version.task} v{version.version} {_short(version.commit)}  "
        f"{_plural(len(version.artifacts), 'artifact')}, {size(total)}{unchanged}"
    )


def _total(version: Version) -> int:
    return sum(a.size for a in version.artifacts)


ARTIFACT_HEADER = ("NAME", "SIZE", "TYPE", "SHA256", "NOTE")


def _artifact_rows(artifacts: Sequence[ArtifactInfo]) -> list[list[str]]:
    return [[a.name, size(a.size), a.content_type, a.sha256[:12], _note(a)] for a in artifacts]


def _note(a: ArtifactInfo) -> str:
    """What was done to an artifact on the way in, so that no cut goes unseen in ls and show."""
    notes = []
    if a.truncated:
        original = a.truncated.get("original_size")
        notes.append(f"truncated from {size(original) if isinstance(original, int) else '?'}")
    if a.masked_secrets:
        notes.append(f"{_plural(a.masked_secrets, 'secret')} masked")
    return ", ".join(notes)


def _print_fields(fields: Mapping[str, object]) -> None:
    width = max(len(k) for k in fields) + 1
    for key, field in fields.items():
        say(f"{key + ':':<{width}} {value(field)}")


# -- commands --------------------------------------------------------------------------------


@click.group(
    "gitstore",
    cls=GitstoreGroup,
    # A bare ``gitstore`` is a usage error with a hint, like every other one (exit 2).
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Global options may also follow the command (gitstore ls --store runs.git).\n\n"
    + exit_codes_text(compact=True),
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
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (for the commands that can)."
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour: auto is on for a terminal unless NO_COLOR is set.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only results and errors: no notes, no progress.")
@click.option(
    "-v", "--verbose", is_flag=True, help="More detail: full commit ids, the store's path."
)
@click.version_option(__version__, "--version", prog_name="gitstore")
@click.pass_context
def cli(
    ctx: click.Context,
    store_path: str | None,
    as_json: bool,
    color: str,
    quiet: bool,
    verbose: bool,
) -> None:
    """Artifacts of AI agent runs, versioned per task, in a bare Git repository.

    Addresses: SPEC/TASK is the latest version; add @vN (version N), @~N (N before the latest)
    or @<commit prefix>. An artifact URI gitstore://SPEC/TASK@COMMIT/NAME pins one version.

    \b
    Examples:
      gitstore put fix-login/t1 run.log diff.diff --run run-42
      gitstore log
      gitstore get fix-login/t1 run.log
    """
    # Resolved per run, not at import: HOME may differ between runs (and does in tests).
    ctx.obj = _store_location(store_path)
    ctx.meta.setdefault(output.COLOR_KEY, color)
    ctx.meta[JSON_KEY] = as_json
    if quiet or verbose:
        ctx.meta[output.VERBOSITY_KEY] = -1 if quiet else 1


@cli.command()
def init() -> None:
    """Create the store (a bare Git repository) if missing."""
    store = _open(create=True, announce=False)
    say(f"store at {store.path}")


@cli.command()
@click.argument("address", metavar="SPEC/TASK", type=TASK_ADDRESS)
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    metavar="PATH...",
    # Completes file names; the library, not Click, says what is wrong with a path (exit 7).
    type=click.Path(readable=False, allow_dash=True),
)
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
    """Store files, folders or stdin as one new version.

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
    store = _open(create=True, announce=False)
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
    announce_created()


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
@click.argument("target", metavar="SPEC/TASK[@REV] | URI", type=TASK_ADDRESS)
@click.argument("name", required=False, type=ARTIFACT)
@click.option(
    "-o",
    "--output",
    "dest",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    metavar="FILE",
    help="Write to FILE (whole or not at all) instead of stdout; - is stdout, even a terminal.",
)
@click.option(
    "--verify", is_flag=True, help="Recompute the sha256 while reading; exit 6 on a mismatch."
)
@click.option("--force", is_flag=True, help="Write a binary artifact to a terminal anyway.")
def get(target: str, name: str | None, dest: Path | None, verify: bool, force: bool) -> None:
    """Write the bytes of one artifact to stdout or a file.

    NAME is an artifact of SPEC/TASK[@REV]; a gitstore:// URI names one by itself. The bytes
    stream through: memory use does not grow with the artifact. A binary artifact is not sent to
    a terminal (it would garble it) unless -o - or --force says so.
    """
    store = _open()
    info = _artifact_info(store, target, name)
    to_stdout = dest is None or str(dest) == "-"
    if dest is None and not force and _stdout_is_tty() and _is_binary(store, info):
        raise UsageError(
            f"{info.name} is binary ({info.content_type}, {size(info.size)}): not written to "
            "the terminal; use -o FILE, or -o - or --force to write it here anyway"
        )
    # Read through the pinned URI so the bytes belong to the version `info` describes, even if
    # another writer moves the task meanwhile.
    with _progress("reading", lambda: info.size) as tick:
        if to_stdout:
            with store.open_artifact(info.uri, verify=verify) as source:
                _copy(source, sys.stdout.buffer, tick)
        else:
            assert dest is not None
            store.save_artifact(info.uri, dest, verify=verify, progress=tick)


def _artifact_info(store: Store, target: str, name: str | None) -> ArtifactInfo:
    """The artifact ``get`` reads; a missing NAME lists the names, a misspelt one the nearest."""
    from gitstore import parse_address

    if name is None and not target.startswith("gitstore://"):
        parse_address(target, need_task=True)  # a bad address says so before the names do
        with did_you_mean(store, target):
            names = [a.name for a in store.show(target).artifacts]
        raise UsageError(f"{target}: which artifact? it has {listing(names) or 'none'}")
    with did_you_mean(store, None if target.startswith("gitstore://") else target, name):
        return store.artifact(target, name)


def _stdout_is_tty() -> bool:
    return output.is_terminal(sys.stdout)


# Content types that are text whatever their bytes (a JSON file is text even if it holds \x00).
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/x-ndjson",
    "application/yaml",
    "application/toml",
    "application/xml",
)


def _is_binary(store: Store, info: ArtifactInfo) -> bool:
    """Would these bytes garble a terminal? Text types are not; else the first 8 KiB decide."""
    if info.content_type.startswith(_TEXT_TYPES) or info.content_type.endswith(("+json", "+xml")):
        return False
    with store.open_artifact(info.uri) as source:
        head = source.read(8192)
    return _looks_binary(head)


def _looks_binary(head: bytes) -> bool:
    """A NUL byte, or bytes that are not UTF-8 (a character cut at the end is forgiven)."""
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 4
    return False


def _copy(source: BlobReader, dest: IO[bytes], tick: Tick | None) -> None:
    for chunk in source.iter_chunks():
        dest.write(chunk)
        if tick is not None:
            tick(len(chunk))


@cli.command()
@click.argument("address", metavar="SPEC/TASK[@REV]", type=TASK_ADDRESS)
@click.argument("dest", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="NAME",
    help="Export only this artifact (or folder); repeatable.",
)
def export(address: str, dest: Path, names: tuple[str, ...]) -> None:
    """Write the artifacts of a version (or each --name) into a folder.

    DIR is created if missing. Each file is written whole or not at all; existing files of the
    same names are replaced. A name that could leave DIR (.., .git, a leading /, a path through
    a symbolic link already in DIR) is refused, exit 3, before anything is written.
    """
    store = _open()
    with did_you_mean(store, address):
        version = store.show(address)
    with _progress("exporting", lambda: sum(a.size for a in version.artifacts)) as tick:
        written = store.export(version.address, dest, progress=tick, names=names or None)
    whole = "" if names else f" ({size(_total(version))})"
    say(f"exported {_plural(len(written), 'artifact')}{whole} to {dest}")


@cli.command(name="ls")
@click.argument("address", required=False, metavar="[SPEC[/TASK[@REV]]]", type=TASK_ADDRESS)
@json_option
def ls(address: str | None, as_json: bool) -> None:
    """List specs, the tasks of a spec, or a version's artifacts.

    --json: specs as [{"name", "tasks"}], tasks as [{"name", "spec", "task", "commit"}], a
    version as {"spec", "task", "version", "commit", ..., "artifacts": [...]}.
    """
    from gitstore import parse_address

    store = _open()
    if address is None:
        specs = store.spec_summaries()
        if as_json:
            emit_json([s.to_dict() for s in specs])
        elif not specs:
            note(f"the store at {store.path or store} is empty: gitstore put SPEC/TASK FILE...")
        else:
            table([[s.name, str(s.tasks)] for s in specs], header=("SPEC", "TASKS"), right=_R1)
        return
    addr = parse_address(address)
    with did_you_mean(store, address):
        if addr.task is None:
            if as_json:
                emit_json([t.to_dict() for t in store.task_heads(addr.spec)])
                return
            # The same tasks as task_heads, as the plain dict it is built from: a spec may hold
            # 100k tasks, and the table needs no TaskHead for each (nor -v looked up per row).
            heads = store.heads_in(addr.spec)
            cut, digits = len(addr.spec) + 1, None if output.verbose() else 12
            rows = [(key[cut:], commit[:digits]) for key, commit in heads.items()]
            table(rows, header=("TASK", "LATEST"))
            return
        version = store.show(address)
    if as_json:
        emit_json(version.to_dict())
        return
    _version_title(version)
    table(_artifact_rows(version.artifacts), header=ARTIFACT_HEADER, right=_R1)
    _print_removed(version)


_R1 = frozenset({1})


def _version_title(version: Version) -> None:
    echo(
        style(printable(f"{version.spec}/{version.task} v{version.version}"), bold=True)
        + f"  commit {_short(version.commit)}  {printable(when(version.created_at))} "
        f"({ago(version.created_at)})"
    )


@cli.command()
@click.argument("address", metavar="[SPEC/TASK[@REV]]", required=False, type=TASK_ADDRESS)
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Show at most this many.")
@json_option
@click.option(
    "--jsonl",
    is_flag=True,
    help="One JSON line per version, with its artifacts; ADDRESS may be a SPEC or left out "
    "(the whole store).",
)
def log(address: str | None, limit: int | None, as_json: bool, jsonl: bool) -> None:
    """List versions newest first, of a task or the whole store.

    Without an address: the newest versions of every task (20 unless -n). --jsonl writes every
    version of a spec or of the store, one JSON line each.
    """
    if jsonl:
        from gitstore import write_jsonl

        write_jsonl(_open(), sys.stdout, address, limit=limit)
        return
    store = _open()
    if address is None:
        from gitstore import find

        recent = find(store, limit=limit or 20, artifacts=False)
        if as_json:
            emit_json([v.to_dict(artifacts=False) for v in recent])
        elif not recent:
            note("no versions yet: gitstore put SPEC/TASK FILE...")
        else:
            rows = [
                [
                    f"{v.spec}/{v.task}@v{v.version}",
                    _short(v.commit),
                    when(v.created_at),
                    ago(v.created_at),
                    v.run_id or "-",
                    _first_line(v.message),
                ]
                for v in recent
            ]
            table(rows, header=("VERSION", "COMMIT", "CREATED", "AGE", "RUN", "MESSAGE"))
        return
    with did_you_mean(store, address):
        versions = store.log(address, limit=limit)
    if as_json:
        emit_json([v.to_dict(artifacts=False) for v in versions])
        return
    rows = [
        [
            f"v{v.version}",
            _short(v.commit),
            when(v.created_at),
            ago(v.created_at),
            v.run_id or "-",
            str(len(v.artifacts)),
            size(sum(a.size for a in v.artifacts)),
            # Aliases first, as git shows its decorations: "(best, shipped) message".
            (f"({', '.join(v.aliases)}) " if v.aliases else "") + _first_line(v.message),
        ]
        for v in versions
    ]
    header: tuple[str, ...] = (
        "VERSION",
        "COMMIT",
        "CREATED",
        "AGE",
        "RUN",
        "ARTIFACTS",
        "SIZE",
        "MESSAGE",
    )
    right = frozenset({5, 6})
    if any(len(v.parents) > 1 for v in versions):
        # Merges: draw the history's shape (lanes, forks, joins) so duplicate numbers make sense.
        from .lifecycle_alias import graph

        lanes = graph([(v.commit, v.parents) for v in versions])
        rows = [[p, *(rows[i] if i is not None else [""] * len(header))] for p, i in lanes]
        header, right = ("", *header), frozenset({6, 7})
    table(rows, header=header, right=right)


@cli.command()
@click.argument("address", metavar="SPEC/TASK[@REV]", type=TASK_ADDRESS)
@click.argument("name", required=False, type=ARTIFACT)
@json_option
def show(address: str, name: str | None, as_json: bool) -> None:
    """Show a version's metadata and artifacts, or an artifact's.

    With NAME, the fields of that artifact (size, type, digests, tags, URI ...).
    """
    store = _open()
    with did_you_mean(store, address, name):
        version = store.show(address)
        info = version.artifact(name) if name is not None else None
    if info is not None:
        if as_json:
            emit_json(info.to_dict())
        else:
            fields = info.to_dict()
            fields["size"] = f"{size(info.size)} ({info.size} bytes)"
            fields["created_at"] = when(info.created_at)
            fields["tags"] = " ".join(f"{k}={v}" for k, v in info.tags.items()) or "-"
            _print_fields(fields)
        return
    if as_json:
        emit_json(version.to_dict())
        return
    _print_fields(
        {
            "version": f"{version.spec}/{version.task} v{version.version}",
            "commit": version.commit,
            "parents": " ".join(version.parents) or "-",
            "created_at": f"{when(version.created_at)} ({ago(version.created_at)})",
            "run_id": version.run_id or "-",
            "message": _first_line(version.message) or "-",
            "metadata": " ".join(f"{k}={v}" for k, v in version.metadata.items()) or "-",
            **({"aliases": " ".join(version.aliases)} if version.aliases else {}),
            # A merge made by pull names what both sides changed (the newer side kept it).
            **({"conflicts": " ".join(version.conflicts)} if version.conflicts else {}),
            "artifacts": f"{len(version.artifacts)} ({size(_total(version))})",
        }
    )
    table(_artifact_rows(version.artifacts), header=ARTIFACT_HEADER, right=_R1, indent="  ")
    _print_removed(version)


def _print_removed(version: Version) -> None:
    """Artifacts retention or purge took from the version: "log.log expired on ... (rule)"."""
    for r in version.removed:
        say(f"  {r}")


@cli.command()
@click.argument("old", metavar="SPEC/TASK[@REV]", type=TASK_ADDRESS)
@click.argument("new", required=False, metavar="[SPEC/TASK[@REV2]]", type=TASK_ADDRESS)
@click.option(
    "-p", "--patch", is_flag=True, help="Also show the line diff of each changed text artifact."
)
@json_option
def diff(old: str, new: str | None, patch: bool, as_json: bool) -> None:
    """What changed between two versions, name by name.

    A added, D removed, M changed (saying what: size, content, type, tags, executable bit).
    With one address the other side is the task's latest version; with no @REV either, the
    latest version is compared with the one before it. Exits 0 whether or not anything changed.
    """
    store = _open()
    with did_you_mean(store, old), did_you_mean(store, new):
        d = store.diff(old, new)
    if as_json:
        emit_json(d.to_dict())
        return
    say(f"{d.old.spec}/{d.old.task}@v{d.old.version} -> {d.new.spec}/{d.new.task}@v{d.new.version}")
    before = {a.name: a for a in d.old.artifacts}
    after = {a.name: a for a in d.new.artifacts}
    marks = [("A", n, size(after[n].size)) for n in d.added]
    marks += [("D", n, size(before[n].size)) for n in d.removed]
    marks += [("M", n, "; ".join(_changes(before[n], after[n]))) for n in d.changed]
    colours = {"A": "green", "D": "red", "M": "yellow"}
    for mark, n, what in sorted(marks, key=lambda m: m[1]):
        echo(f"{style(mark, fg=colours[mark])} {printable(n)}  {printable(what)}".rstrip())
    if patch:
        for n in d.changed:
            _patch(store, before[n], after[n])


def _changes(a: ArtifactInfo, b: ArtifactInfo) -> list[str]:
    """What differs between two artifacts of one name, in words."""
    out = []
    if a.sha256 != b.sha256:
        out.append(f"content {size(a.size)} -> {size(b.size)}")
    if a.content_type != b.content_type:
        out.append(f"type {a.content_type} -> {b.content_type}")
    if dict(a.tags) != dict(b.tags):
        gone = [f"-{k}={v}" for k, v in a.tags.items() if b.tags.get(k) != v]
        came = [f"+{k}={v}" for k, v in b.tags.items() if a.tags.get(k) != v]
        out.append("tags " + " ".join(gone + came))
    if a.executable != b.executable:
        out.append(f"mode {'755' if a.executable else '644'} -> {'755' if b.executable else '644'}")
    return out


PATCH_MAX_BYTES = 8 << 20  # a line diff of more than this is for a diff tool, not a terminal


def _patch(store: Store, a: ArtifactInfo, b: ArtifactInfo) -> None:
    """The unified line diff of one changed artifact, when both sides are text."""
    import difflib

    if a.sha256 == b.sha256:
        return
    if max(a.size, b.size) > PATCH_MAX_BYTES:
        say(f"(no line diff of {a.name}: larger than {size(PATCH_MAX_BYTES)})")
        return
    texts = []
    for info in (a, b):
        data = store.get(info.uri)
        if _looks_binary(data[:8192]):
            say(f"Binary artifact {a.name} differs")
            return
        texts.append(data.decode("utf-8", "replace").splitlines(keepends=True))
    colours = {"+": "green", "-": "red", "@": "cyan"}
    for line in difflib.unified_diff(texts[0], texts[1], f"a/{a.name}", f"b/{b.name}"):
        text = printable(line.rstrip("\n"))
        colour = None if text.startswith(("+++", "---")) else colours.get(text[:1])
        echo(style(text, fg=colour) if colour else text)


@cli.command()
@click.argument("address", metavar="SPEC/TASK", type=TASK_ADDRESS)
@click.argument("names", nargs=-1, metavar="[NAME...]", type=ARTIFACT)
@click.option(
    "--task",
    "whole_task",
    is_flag=True,
    help="Delete the task's ref instead (pinned URIs keep resolving until gc).",
)
@click.option("--yes", is_flag=True, help="With --task: delete without asking.")
@message_options
@json_option
def rm(
    address: str,
    names: tuple[str, ...],
    whole_task: bool,
    yes: bool,
    run_id: str | None,
    message: str | None,
    as_json: bool,
) -> None:
    """Make a new version without NAMEs, or delete the whole task.

    A folder NAME removes its files. --task deletes the task: on a terminal it asks first;
    elsewhere it needs --yes, and without it only says what it would delete.
    """
    if whole_task == bool(names):
        raise UsageError("give either artifact NAMEs or --task")
    store = _open()
    if not whole_task:
        with did_you_mean(store, address):
            version = store.rm(address, names, run_id=run_id, message=message)
        _print_version(version, as_json)
        return
    from gitstore import TaskDeletion

    with did_you_mean(store, address):
        (head,) = store.heads_in(address).values()
    if not confirm(f"delete task {address} (its ref points at {_short(head)})?", yes):
        if as_json:
            emit_json({**TaskDeletion(address, head).to_dict(), "deleted": False})
        else:
            say(f"would delete {address} (its ref points at {_short(head)})")
            note("nothing deleted: add --yes to delete (no terminal to ask)")
        return
    commit = store.rm_task(address, expect=head)
    if as_json:
        emit_json(TaskDeletion(address, commit).to_dict())
    else:
        say(f"deleted {address} (its ref pointed at {_short(commit)})")


@cli.command()
@click.argument("scope", required=False, metavar="[SPEC[/TASK]]", type=TASK_ADDRESS)
@json_option
def verify(scope: str | None, as_json: bool) -> None:
    """Recompute every artifact's digests; exit 6 if any is wrong.

    Prints each problem on a line (SPEC/TASK@COMMIT NAME: what is wrong).
    """
    store = _open()
    with did_you_mean(store, scope):
        problems = store.verify(scope)
    if as_json:
        emit_json([p.to_dict() for p in problems])
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
    """Give back the space of what no ref reaches.

    Packs are rewritten without the objects no ref reaches once they are older than
    --prune-after days (live entries copied as they are); temp files and stale locks left by
    crashed writers go too. Safe while other processes write to the store.
    """
    store = _open()
    with io_progress("gc"):
        report = store.gc(prune_after=prune_after * 86400, dry_run=dry_run)
    if as_json:
        emit_json(report.to_dict())
        return
    fields: dict[str, object] = dict(report.to_dict())
    for key in ("pruned_bytes", "bytes_freed"):
        if isinstance(fields.get(key), int):
            fields[key] = size(int(str(fields[key])))
    _print_fields(fields)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print a shell completion script for bash, zsh or fish.

    It completes commands, options, remotes, specs, tasks and artifact names (read from the
    store when TAB is pressed). Load it from your shell's startup file, for example
    eval "$(gitstore completion bash)" in ~/.bashrc.
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # the Choice above admits only shells Click knows
    root = click.get_current_context().find_root()
    script = cls(cli, {}, root.info_name or "gitstore", "_GITSTORE_COMPLETE").source()
    click.echo(script)


@cli.command(name="help")
@click.argument("topic", required=False, metavar="[exit-codes|COMMAND...]", nargs=-1)
def help_command(topic: tuple[str, ...]) -> None:
    """Show help: of gitstore, of a command, or the exit codes.

    gitstore help exit-codes lists every exit code and what it means.
    """
    ctx = click.get_current_context()
    root = ctx.find_root()
    if topic == ("exit-codes",):
        say("Exit codes of gitstore:")
        for line in exit_codes_text().splitlines():
            say(line)
        return
    command: click.Command = cli
    sub_ctx = click.Context(cli, info_name=root.info_name or "gitstore")
    for word in topic:
        found = command.get_command(sub_ctx, word) if isinstance(command, click.Group) else None
        if found is None:
            from .hints import close

            choices = (
                list(command.list_commands(sub_ctx)) if isinstance(command, click.Group) else []
            )
            near = close(word, [*choices, "exit-codes"])
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise UsageError(f"no help topic {' '.join(topic)!r}{hint}")
        command = found
        sub_ctx = click.Context(command, info_name=word, parent=sub_ctx)
    click.echo(command.get_help(sub_ctx))


def _register() -> None:
    # Commands for agent runners live in their own module; imported here, after the group
    # exists, so ``gitstore --help`` lists them with the rest.
    from .lifecycle_purge import COMMANDS as PURGE_COMMANDS
    from .lifecycle_retain import COMMANDS as RETAIN_COMMANDS
    from .lifecycle_space import COMMANDS as SPACE_COMMANDS
    from .runner import COMMANDS
    from .serve import COMMANDS as SERVE_COMMANDS

    for command in [
        *COMMANDS,
        *SERVE_COMMANDS,
        *SPACE_COMMANDS,
        *PURGE_COMMANDS,
        *RETAIN_COMMANDS,
    ]:
        cli.add_command(command)


_register()


# The commands between machines live in cli/remote.py, which uses the helpers above.
from .remote import register as _register_remote  # noqa: E402 - needs the helpers above

_register_remote(cli)
from .lifecycle_alias import register as _register_alias  # noqa: E402 - after the group exists

_register_alias(cli)


def main() -> None:
    """Console-script entry point: ``gitstore``."""
    cli.main(prog_name="gitstore")


if __name__ == "__main__":
    main()
