"""Transports: a dulwich client for a URL, the credentials it uses, and what goes wrong mapped to
gitstore's errors.

Transfers use dulwich's client layer (a path, ``file://``, ``ssh://``, ``user@host:path``,
``git://``, ``http(s)://``), because dulwich's porcelain maps only branches and tags. With git
installed, a local remote is served by git's own upload-pack/receive-pack and a received pack is
indexed by ``git index-pack``, which stream where dulwich holds whole objects in memory.

HTTP credentials come from the environment (``GITSTORE_HTTP_USERNAME`` and
``GITSTORE_HTTP_PASSWORD``, or ``GITSTORE_HTTP_TOKEN``) or from git's credential helpers, never from
a URL. SSH runs the system ``ssh`` (or ``GIT_SSH_COMMAND`` / ``GIT_SSH``), with a key from the usual
places, ``ssh_key=`` or ``GITSTORE_SSH_KEY``. Whatever dulwich, sockets or urllib3 raise becomes
one line and one error class (:func:`transport_errors`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from dulwich.client import (
    GitClient,
    HTTPProxyUnauthorized,
    HTTPUnauthorized,
    SubprocessGitClient,
    SubprocessWrapper,
    find_git_command,
    get_transport_and_path,
)
from dulwich.errors import (
    ApplyDeltaError,
    ChecksumMismatch,
    GitProtocolError,
    HangupException,
    NotGitRepository,
    ObjectFormatException,
)
from dulwich.file import FileLocked
from dulwich.object_store import ObjectStoreGraphWalker
from dulwich.objects import ObjectID
from dulwich.protocol import Protocol
from dulwich.repo import Repo

from gitstore.credentials import git_credential
from gitstore.errors import (
    CorruptTransferError,
    GitstoreError,
    NotAStoreError,
    RemoteAuthError,
    RemoteError,
    RemoteUnreachableError,
    UsageError,
)
from gitstore.model import redact_url
from gitstore.remote.config import check_url

__all__ = [
    "IndexPack",
    "Progress",
    "StoreRepo",
    "bytes_progress",
    "client_for",
    "fetch_objects",
    "have_git",
    "new_pack_stats",
    "one_line",
    "pack_files",
    "transport_errors",
]


Progress = Callable[[str], None]


def client_for(url: str, operation: str, ssh_key: str | None = None) -> tuple[GitClient, str]:
    """A dulwich client and path for ``url``, with credentials from the environment only."""
    check_url(url)
    parsed = urllib.parse.urlsplit(url)
    kwargs: dict[str, Any] = {}
    if parsed.scheme in ("http", "https"):
        user, password = _http_credentials(url)
        if user is not None:
            kwargs["username"] = user
            kwargs["password"] = password
    ssh = os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH")
    if ssh:
        kwargs["ssh_command"] = ssh
    key = ssh_key or os.environ.get("GITSTORE_SSH_KEY")
    if key:
        kwargs["key_filename"] = key
    local = url.startswith("file://") or ("://" not in url and not _is_scp_like(url))
    path = urllib.parse.unquote(parsed.path) if url.startswith("file://") else url
    if local:
        _check_local(path)
    if local and not os.path.isfile(path) and have_git():
        # With git installed, a local remote is served by git's own upload-pack/receive-pack (as
        # over ssh or git://): dulwich's in-process local client holds every object it sends
        # in memory and re-indexes the pack in Python (~2x slower, ~1.5x the memory).
        client = _LocalGitClient()
        client.git_command = ["git", *_GIT_MEMORY]
        return client, path
    try:
        return get_transport_and_path(url, operation=operation, **kwargs)
    except ValueError as e:
        raise UsageError(f"{url}: not a URL gitstore can use ({e})") from None


class _LocalGitClient(SubprocessGitClient):
    """dulwich's client of a local git helper, its writes gathered (see :class:`_Coalesced`)."""

    def _connect(
        self, cmd: bytes, path: bytes | str, protocol_version: int | None = None
    ) -> tuple[Protocol, Callable[[], bool], IO[bytes] | None]:
        # dulwich's SubprocessGitClient._connect, with the pipe's writes gathered.
        if not isinstance(cmd, bytes):
            raise TypeError(cmd)
        if isinstance(path, bytes):
            path = path.decode(self._remote_path_encoding)
        argv = [*(self.git_command or find_git_command()), cmd.decode("ascii"), path]
        proc = subprocess.Popen(
            argv, bufsize=0, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        helper = SubprocessWrapper(proc)
        pipe = _Coalesced(helper.write, helper.read, helper.can_read, helper.close)
        proto = Protocol(pipe.read, pipe.write, pipe.close, report_activity=self._report_activity)
        return proto, pipe.can_read, proc.stderr


class _Coalesced:
    """Writes to a helper's stdin gathered into writes of up to :data:`_COALESCE` bytes.

    dulwich writes each pkt-line to the pipe as it is made (the pipe is unbuffered): a push of
    1,000 task refs made 1,000 one-line writes, each waking the receiving git. Whatever is
    gathered goes out before every read and every poll for an answer (nothing the other side
    waits for is held back) and before the pipe is closed.
    """

    def __init__(
        self,
        write: Callable[[bytes], object],
        read: Callable[[int], bytes],
        can_read: Callable[[], bool],
        close: Callable[[], None] | None,
    ) -> None:
        self._write = write
        self._read = read
        self._can_read = can_read
        self._close = close
        self._held = bytearray()

    def write(self, data: bytes) -> None:
        if len(self._held) + len(data) > _COALESCE:
            self.flush()
        if len(data) >= _COALESCE:
            self._write(data)
        else:
            self._held += data

    def flush(self) -> None:
        if self._held:
            data = bytes(self._held)
            self._held.clear()
            self._write(data)

    def read(self, size: int) -> bytes:
        self.flush()
        return self._read(size)

    def can_read(self) -> bool:
        self.flush()
        return self._can_read()

    def close(self) -> None:
        try:
            self.flush()
        except OSError:
            pass  # the helper is gone: closing says the rest
        finally:
            if self._close is not None:
                self._close()


# Bytes gathered before a write to a local git helper (see _Coalesced).
_COALESCE = 1 << 16


def _is_scp_like(url: str) -> bool:
    head = url.split("/", 1)[0]
    return ":" in head and not os.path.exists(url)


def _check_local(path: str) -> None:
    if not os.path.exists(path):
        raise RemoteUnreachableError(f"{path}: no such path")
    if os.path.isfile(path):
        return  # a bundle file
    gitdir = os.path.join(path, ".git") if os.path.isdir(os.path.join(path, ".git")) else path
    if not os.path.isfile(os.path.join(gitdir, "HEAD")):
        raise NotAStoreError(f"{path}: not a Git repository")


def _http_credentials(url: str) -> tuple[str | None, str | None]:
    """Username and password for ``url``: the environment first, then git's credential helpers."""
    token = os.environ.get("GITSTORE_HTTP_TOKEN")
    user = os.environ.get("GITSTORE_HTTP_USERNAME")
    password = os.environ.get("GITSTORE_HTTP_PASSWORD")
    if token:
        return user or "x-access-token", token
    if user is not None:
        return user, password or ""
    return git_credential(url)


@contextlib.contextmanager
def transport_errors(url: str) -> Iterator[None]:
    """Turn what dulwich, sockets and urllib3 raise into one line and a distinct error class."""
    where = redact_url(url)
    try:
        yield
    except GitstoreError:
        raise
    except (HTTPUnauthorized, HTTPProxyUnauthorized):
        raise RemoteAuthError(
            f"{where}: authentication failed (set GITSTORE_HTTP_USERNAME and "
            "GITSTORE_HTTP_PASSWORD or GITSTORE_HTTP_TOKEN, or use git's credential helper)"
        ) from None
    except NotGitRepository:
        raise NotAStoreError(f"{where}: not a Git repository") from None
    except FileLocked:
        # A local remote's ref is being moved by one of its own writers right now.
        raise RemoteError(f"{where}: a task ref is being written there; try again") from None
    except (
        ChecksumMismatch,
        ApplyDeltaError,
        ObjectFormatException,
        zlib.error,
        _IndexPackFailed,
    ) as e:
        raise CorruptTransferError(
            f"{where}: the pack received is damaged ({one_line(e)})"
        ) from None
    except HangupException as e:
        detail = one_line(e)
        if any(w in detail.lower() for w in ("permission denied", "publickey", "authentic")):
            raise RemoteAuthError(f"{where}: authentication failed ({detail})") from None
        if any(w in detail.lower() for w in ("not a git repository", "does not appear", "no such")):
            raise NotAStoreError(f"{where}: not a Git repository ({detail})") from None
        raise RemoteUnreachableError(
            f"{where}: the remote hung up ({detail or 'unreachable, or no repository there'})"
        ) from None
    except GitProtocolError as e:
        detail = one_line(e)
        low = detail.lower()
        if "401" in low or "403" in low or "authentic" in low:
            raise RemoteAuthError(f"{where}: authentication failed ({detail})") from None
        if "corrupt" in low:
            raise CorruptTransferError(
                f"{where}: the remote sent damaged data ({detail})"
            ) from None
        if any(w in low for w in _UNREACHABLE):
            raise RemoteUnreachableError(f"{where}: cannot be reached ({detail})") from None
        # git daemon answers a missing repository with "access denied or repository not
        # exported": no credential could change that, so it is not an auth failure.
        if (
            "404" in low
            or "not found" in low
            or "not a git repository" in low
            or ("not exported" in low)
        ):
            raise NotAStoreError(f"{where}: not a Git repository ({detail})") from None
        raise RemoteError(f"{where}: {detail}") from None
    except AssertionError as e:
        # dulwich's pack reader asserts on malformed input.
        raise CorruptTransferError(
            f"{where}: the data received is damaged ({one_line(e)})"
        ) from None
    except OSError as e:
        raise RemoteUnreachableError(f"{where}: cannot be reached ({one_line(e)})") from None
    except Exception as e:
        # urllib3's connection errors do not derive from OSError.
        if type(e).__module__.startswith("urllib3"):
            raise RemoteUnreachableError(f"{where}: cannot be reached ({one_line(e)})") from None
        raise


# What dulwich's HTTP client wraps from urllib3 when no connection could be made.
_UNREACHABLE = (
    "max retries exceeded",
    "connection refused",
    "failed to establish",
    "name or service not known",
    "temporary failure in name resolution",
    "timed out",
)


def one_line(e: BaseException) -> str:
    """What ``e`` says, on one line of at most 300 characters."""
    text = str(e) or type(e).__name__
    return " ".join(text.split())[:300]


class _IndexPackFailed(Exception):
    """``git index-pack`` refused the pack received (damaged, or objects missing)."""


def have_git() -> bool:
    """Is stock git installed (on PATH)? Then it carries local transfers and indexes packs."""
    return shutil.which("git") is not None


class StoreRepo(Repo):
    """The store as dulwich sees it for a fetch: the haves come from task refs, not branches.

    dulwich's graph walker offers ``refs/heads/*`` only, so against a store it would offer
    nothing and every pull would fetch everything. The walker's heads are set once the wanted
    refs are known (the client asks for the walker before it asks what we want).

    With git installed, the received pack is indexed by ``git index-pack`` rather than by
    dulwich, which inflates and holds every object whole (a 256 MiB blob cost ~800 MB of memory
    and ~15 s); git streams it.
    """

    walker: ObjectStoreGraphWalker | None = None

    def __init__(self, root: str) -> None:
        super().__init__(root)
        if have_git():
            self.object_store.add_thin_pack = self._index_pack  # type: ignore[method-assign,assignment]

    def _index_pack(
        self,
        read_all: Callable[[int], bytes],
        read_some: Callable[[int], bytes] | None,
        progress: Callable[..., None] | None = None,
        **_: Any,
    ) -> None:
        indexer = IndexPack(self.controldir())
        try:
            while chunk := read_all(1 << 20):
                indexer.write(chunk)
        except BaseException:
            indexer.abort()
            raise
        indexer.finish()

    def get_graph_walker(self, heads: list[ObjectID] | None = None) -> ObjectStoreGraphWalker:
        self.walker = super().get_graph_walker(heads if heads is not None else [])
        return self.walker


# Memory of the git helpers a transfer runs (measured with a 256 MiB blob): index-pack holds every
# blob below core.bigFileThreshold (512 MiB) whole to hash it, and pack-objects maps up to 1 GiB
# windows of a pack it copies from (file pages that count as its memory). Smaller settings keep
# each helper near 30 MB whatever the blob, at no cost in speed: big blobs are never deltified.
_GIT_MEMORY = (
    "-c",
    "core.bigFileThreshold=16m",
    "-c",
    "core.packedGitWindowSize=16m",
    "-c",
    "core.packedGitLimit=64m",
)


class IndexPack:
    """``git index-pack --stdin --fix-thin`` fed while the pack arrives: no spooled copy.

    Started at the first byte (a fetch with nothing to fetch runs nothing). index-pack writes
    the pack under a temp name of ours in ``objects/pack`` (index-pack leaves its own temp
    files behind when it fails); once it has succeeded the pack is renamed to its final name and
    its index last, which makes it visible. If index-pack gives up early (a damaged pack), the
    rest of the pack is read and dropped, and :meth:`finish` raises with index-pack's own
    message; a failed or aborted transfer removes what was written.
    """

    def __init__(self, gitdir: str) -> None:
        self.gitdir = gitdir
        self.pack_dir = os.path.join(gitdir, "objects", "pack")
        self.base = os.path.join(self.pack_dir, f"tmp_pack_{os.getpid()}_{os.urandom(6).hex()}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.out: Any = None
        self.err: Any = None
        self.broken = False
        self.received = 0

    def write(self, data: bytes) -> int:
        """Pass ``data`` (the next bytes of the pack) on to index-pack."""
        self.received += len(data)
        if self.proc is None:
            os.makedirs(self.pack_dir, exist_ok=True)
            self.out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish/abort
            self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish/abort
            self.proc = subprocess.Popen(
                [
                    "git",
                    *_GIT_MEMORY,
                    f"--git-dir={self.gitdir}",
                    "index-pack",
                    "--stdin",
                    "--fix-thin",
                    self.base + ".pack",
                ],
                stdin=subprocess.PIPE,
                stdout=self.out,
                stderr=self.err,
            )
        assert self.proc.stdin is not None
        if not self.broken:
            try:
                self.proc.stdin.write(data)
            except BrokenPipeError:
                self.broken = True  # index-pack gave up; its message says why
        return len(data)

    def finish(self) -> None:
        """Wait for index-pack and put the pack in place; raise if index-pack refused it."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        code = proc.wait()
        self.out.seek(0)
        name = self.out.read().decode("ascii", "replace").split()
        self.err.seek(0)
        err = self.err.read().decode("utf-8", "replace")
        self._close_files()
        try:
            if code != 0:
                raise _IndexPackFailed(" ".join(err.split())[:300] or "git index-pack failed")
            if not name or len(name[-1]) != 40:
                raise _IndexPackFailed(f"git index-pack named no pack ({' '.join(name)[:80]})")
            final = os.path.join(self.pack_dir, f"pack-{name[-1]}")
            # The index last: it makes the pack visible. The same pack already there: keep it.
            if not os.path.exists(final + ".idx"):
                for ext in (".pack", ".rev", ".idx"):
                    if os.path.exists(self.base + ext):
                        os.replace(self.base + ext, final + ext)
        finally:
            self._remove()

    def abort(self) -> None:
        """Stop index-pack (the transfer failed) and remove what it wrote."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.kill()
        with contextlib.suppress(BrokenPipeError, OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        proc.wait()
        self._close_files()
        self._remove()

    def _close_files(self) -> None:
        for f in (self.out, self.err):
            with contextlib.suppress(OSError):
                f.close()

    def _remove(self) -> None:
        for ext in (".pack", ".rev", ".idx", ".keep"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.base + ext)


def fetch_objects(
    client: GitClient,
    path: str,
    repo: StoreRepo,
    determine_wants: Callable[..., list[ObjectID]],
    progress: Callable[[bytes], None] | None,
) -> None:
    """Fetch what ``determine_wants`` asks for into the store's objects; no ref moves.

    With git installed, the pack goes into ``git index-pack`` as it arrives (indexing overlaps
    the transfer; nothing is spooled); otherwise dulwich receives it.
    """
    if not have_git():
        client.fetch(path, repo, determine_wants=determine_wants, progress=progress)
        return
    indexer = IndexPack(repo.controldir())
    try:
        client.fetch_pack(
            path, determine_wants, repo.get_graph_walker(), indexer.write, progress=progress
        )
    except BaseException:
        indexer.abort()
        raise
    indexer.finish()


def bytes_progress(progress: Progress | None) -> Callable[[bytes], None] | None:
    """dulwich's progress callback (raw bytes from the remote) as lines for ``progress``."""
    if progress is None:
        return None

    def tick(data: bytes) -> None:
        text = data.decode("utf-8", "replace").replace("\r", "\n").strip()
        for line in text.splitlines():
            if line.strip():
                progress(line.strip())

    return tick


def pack_files(gitdir: str) -> set[str]:
    """The names of the ``.pack`` files of ``gitdir`` now (to tell what a fetch added)."""
    try:
        names = os.listdir(os.path.join(gitdir, "objects", "pack"))
    except FileNotFoundError:
        return set()
    return {n for n in names if n.endswith(".pack")}


def new_pack_stats(gitdir: str, before: set[str]) -> tuple[int, int]:
    """Objects and bytes in the packs a fetch added."""
    objects = size = 0
    pack_dir = os.path.join(gitdir, "objects", "pack")
    for name in pack_files(gitdir) - before:
        path = os.path.join(pack_dir, name)
        with contextlib.suppress(OSError), open(path, "rb") as f:
            header = f.read(12)
            size += os.fstat(f.fileno()).st_size
            # A pack starts with "PACK", its version, then the object count (big-endian).
            if len(header) == 12 and header[:4] == b"PACK":
                objects += int.from_bytes(header[8:12], "big")
    return objects, size
