"""Between machines: remotes, push, pull, clone, sync and bundles over ordinary Git transports.

A remote is an ordinary Git remote recorded in the store's own git config (``remote.NAME.url``,
fetch refspec ``+refs/artifacts/*:refs/artifacts/*``), so stock git sees it too. Transfers use
dulwich's client layer (a path, ``file://``, ``ssh://``, ``user@host:path``, ``git://``,
``http(s)://``, or a bundle file), because dulwich's porcelain maps only branches and tags.

Only ``refs/artifacts/<spec>/<task>`` refs move (all of them, or a spec/task subset); branches and
tags of a shared repository are never touched.

* **push** checks fast-forward itself (the client layer does not): a remote task whose head is not
  in our history is refused ("pull first") and the rest is pushed. Each ref update carries the old
  value the decision was made on, so a remote that moved meanwhile refuses that ref too.
* **pull** fetches objects into the store's object folder without touching refs, checks that every
  fetched head is a gitstore version of its task, then brings each task in through the store's ref
  backend: fast-forward, or a merge version (see :mod:`gitstore.merge`).

HTTP credentials come from the environment (``GITSTORE_HTTP_USERNAME`` and
``GITSTORE_HTTP_PASSWORD``, or ``GITSTORE_HTTP_TOKEN``) or from git's credential helpers, never from
a URL: a URL holding a password is refused. SSH runs the system ``ssh`` (or ``GIT_SSH_COMMAND`` /
``GIT_SSH``), with a key from the usual places, ``ssh_key=`` or ``GITSTORE_SSH_KEY``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from dulwich.bundle import create_bundle_from_repo, write_bundle
from dulwich.client import (
    GitClient,
    HTTPProxyUnauthorized,
    HTTPUnauthorized,
    SubprocessGitClient,
    get_transport_and_path,
)
from dulwich.config import ConfigFile
from dulwich.errors import (
    ApplyDeltaError,
    ChecksumMismatch,
    GitProtocolError,
    HangupException,
    NotGitRepository,
    ObjectFormatException,
)
from dulwich.file import FileLocked
from dulwich.object_store import MissingObjectFinder, ObjectStoreGraphWalker
from dulwich.objects import ObjectID
from dulwich.pack import UnpackedObject, generate_unpacked_objects
from dulwich.refs import Ref
from dulwich.repo import Repo

from gitstore import names as _names
from gitstore.credentials import git_credential
from gitstore.errors import (
    CorruptTransferError,
    GitstoreError,
    InputError,
    NotAStoreError,
    NotFoundError,
    RemoteAuthError,
    RemoteError,
    RemoteUnreachableError,
    StoreError,
    UsageError,
)
from gitstore.merge import ancestors, integrate, is_ancestor
from gitstore.model import Refusal, Remote, TaskUpdate, TransferResult, redact_url
from gitstore.scan import Scanner
from gitstore.store import REFS_PREFIX, Store
from gitstore.validate import check_incoming

__all__ = [
    "FETCH_REFSPEC",
    "Refusal",
    "Remote",
    "TaskUpdate",
    "TransferResult",
    "add_remote",
    "bundle_create",
    "bundle_import",
    "clone",
    "pull",
    "push",
    "remotes",
    "remove_remote",
    "sync",
]

FETCH_REFSPEC = "+refs/artifacts/*:refs/artifacts/*"
DEFAULT_REMOTE = "origin"
# Sync repeats pull-then-push while another writer keeps moving the remote; past this it says so.
SYNC_ROUNDS = 5

# From this many objects on, a push copies packed entries as they are instead of looking each up.
REUSE_ENTRIES_FROM = 1000

Progress = Callable[[str], None]
_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


# -- remotes in the store's config -----------------------------------------------------------


def remotes(store: Store) -> list[Remote]:
    """Every remote recorded in the store's git config, by name."""
    config = _config(store)
    out = []
    for section in config.sections():
        if len(section) == 2 and section[0] == b"remote":
            with contextlib.suppress(KeyError):
                url = config.get(section, b"url").decode()
                out.append(Remote(section[1].decode(), url))
    return sorted(out, key=lambda r: r.name)


def add_remote(store: Store, name: str, url: str) -> Remote:
    """Record remote ``name`` at ``url`` (with the task refspec) in the store's git config."""
    _check_remote_name(name)
    _check_url(url)
    config = _config(store)
    section = (b"remote", name.encode())
    if config.has_section(section):
        raise UsageError(f"remote {name!r} already exists (remove it first)")
    config.set(section, b"url", url.encode())
    config.set(section, b"fetch", FETCH_REFSPEC.encode())
    _write_config(store, config)
    return Remote(name, url)


def remove_remote(store: Store, name: str) -> Remote:
    """Forget remote ``name``; raises NotFoundError if there is none."""
    config = _config(store)
    section = (b"remote", name.encode())
    try:
        url = config.get(section, b"url").decode()
        del config[section]
    except KeyError:
        raise NotFoundError(f"no remote {name!r}") from None
    _write_config(store, config)
    return Remote(name, url)


def _config(store: Store) -> ConfigFile:
    path = os.path.join(_gitdir(store), "config")
    try:
        return ConfigFile.from_path(path)
    except FileNotFoundError:
        return ConfigFile()
    except (OSError, ValueError) as e:
        raise StoreError(f"{path}: cannot be read ({e})") from None


def _write_config(store: Store, config: ConfigFile) -> None:
    # ConfigFile writes through a lock file renamed into place, as git does.
    config.path = os.path.join(_gitdir(store), "config")
    config.write_to_path()


def _gitdir(store: Store) -> str:
    if store.path is None:
        # In memory, or served over HTTP (gitstore.client): no folder here to transfer from.
        raise UsageError(
            "this store has no folder on this machine (it is in memory, or served over HTTP): "
            "remotes, transfers and bundles need a store on disk"
        )
    return store.path


def _check_remote_name(name: str) -> None:
    if not _REMOTE_NAME.match(name) or name.endswith(".lock") or ".." in name:
        raise UsageError(f"remote name {name!r}: use letters, digits, '.', '_' and '-'")


def _check_url(url: str) -> None:
    if not url or "\n" in url or "\0" in url:
        raise UsageError(f"{url!r} is not a URL or path")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("http", "https") and parsed.password:
        raise UsageError(
            "refusing a URL that holds a password: put it in GITSTORE_HTTP_PASSWORD or "
            "GITSTORE_HTTP_TOKEN, or in git's credential helper"
        )


def _resolve(store: Store, remote: str | None) -> tuple[str, str]:
    """``(name, url)`` of a remote name, or of a URL/path given directly."""
    name = remote or DEFAULT_REMOTE
    for r in remotes(store):
        if r.name == name:
            return r.name, r.url
    if remote is None:
        raise UsageError("no remote given and no remote 'origin' (see 'gitstore remote add')")
    if _REMOTE_NAME.match(remote) and not os.path.exists(remote):
        raise NotFoundError(f"no remote {remote!r} (see 'gitstore remote ls')")
    _check_url(remote)
    return remote, remote


# -- transports ------------------------------------------------------------------------------


def _client(url: str, operation: str, ssh_key: str | None = None) -> tuple[GitClient, str]:
    """A dulwich client and path for ``url``, with credentials from the environment only."""
    _check_url(url)
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
    if local and not os.path.isfile(path) and _have_git():
        # With git installed, a local remote is served by git's own upload-pack/receive-pack (as
        # over ssh or git://): dulwich's in-process local client holds every object it sends
        # in memory and re-indexes the pack in Python (~2x slower, ~1.5x the memory).
        return SubprocessGitClient(), path
    try:
        return get_transport_and_path(url, operation=operation, **kwargs)
    except ValueError as e:
        raise UsageError(f"{url}: not a URL gitstore can use ({e})") from None


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
def _transport_errors(url: str) -> Iterator[None]:
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
            f"{where}: the pack received is damaged ({_one_line(e)})"
        ) from None
    except HangupException as e:
        detail = _one_line(e)
        if any(w in detail.lower() for w in ("permission denied", "publickey", "authentic")):
            raise RemoteAuthError(f"{where}: authentication failed ({detail})") from None
        if any(w in detail.lower() for w in ("not a git repository", "does not appear", "no such")):
            raise NotAStoreError(f"{where}: not a Git repository ({detail})") from None
        raise RemoteUnreachableError(
            f"{where}: the remote hung up ({detail or 'unreachable, or no repository there'})"
        ) from None
    except GitProtocolError as e:
        detail = _one_line(e)
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
            f"{where}: the data received is damaged ({_one_line(e)})"
        ) from None
    except OSError as e:
        raise RemoteUnreachableError(f"{where}: cannot be reached ({_one_line(e)})") from None
    except Exception as e:
        # urllib3's connection errors do not derive from OSError.
        if type(e).__module__.startswith("urllib3"):
            raise RemoteUnreachableError(f"{where}: cannot be reached ({_one_line(e)})") from None
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


def _one_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())[:300]


class _IndexPackFailed(Exception):
    """``git index-pack`` refused the pack received (damaged, or objects missing)."""


def _have_git() -> bool:
    return shutil.which("git") is not None


class _StoreRepo(Repo):
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
        if _have_git():
            self.object_store.add_thin_pack = self._index_pack  # type: ignore[method-assign,assignment]

    def _index_pack(
        self,
        read_all: Callable[[int], bytes],
        read_some: Callable[[int], bytes] | None,
        progress: Callable[..., None] | None = None,
        **_: Any,
    ) -> None:
        proc = subprocess.Popen(
            ["git", f"--git-dir={self.controldir()}", "index-pack", "--stdin", "--fix-thin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stderr is not None
        try:
            while chunk := read_all(1 << 20):
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass  # index-pack gave up; its message says why
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            err = proc.stderr.read().decode("utf-8", "replace")
            proc.stderr.close()
            code = proc.wait()
        if code != 0:
            raise _IndexPackFailed(" ".join(err.split())[:300] or "git index-pack failed")

    def get_graph_walker(self, heads: list[ObjectID] | None = None) -> ObjectStoreGraphWalker:
        self.walker = super().get_graph_walker(heads if heads is not None else [])
        return self.walker


# -- scope -----------------------------------------------------------------------------------


class _Scope:
    """Which tasks a transfer covers: all, or some specs and tasks."""

    def __init__(self, items: Sequence[str]) -> None:
        self.specs: set[str] = set()
        self.tasks: set[str] = set()
        for item in items:
            addr = _names.parse_address(item, allow_rev=False)
            if addr.task is None:
                self.specs.add(addr.spec)
            else:
                self.tasks.add(f"{addr.spec}/{addr.task}")
        self.all = not items

    def covers(self, key: str) -> bool:
        return self.all or key in self.tasks or key.split("/", 1)[0] in self.specs


def _task_of(ref: bytes) -> str | None:
    """``SPEC/TASK`` of a task ref, or None for any other ref."""
    if not ref.startswith(REFS_PREFIX.encode()) or ref.endswith(b"^{}"):
        return None
    parts = ref[len(REFS_PREFIX) :].decode("utf-8", "replace").split("/")
    if len(parts) != 2:
        return None
    try:
        for p in parts:
            _names.check_component(p)
    except GitstoreError:
        return None
    return "/".join(parts)


def _ref(key: str) -> Ref:
    return Ref((REFS_PREFIX + key).encode())


# -- pull ------------------------------------------------------------------------------------


def pull(
    store: Store,
    remote: str | None = None,
    scope: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    ssh_key: str | None = None,
) -> TransferResult:
    """Bring the remote's task refs (all, or ``scope``: ``SPEC`` or ``SPEC/TASK`` items) in.

    Objects land in the store's object folder first; no ref moves until every fetched head has
    been checked to be a gitstore version of its task. Then each task fast-forwards, or gains a
    merge version when both sides have versions the other lacks.

    Raises:
      RemoteUnreachableError, RemoteAuthError, NotAStoreError, CorruptTransferError: the transfer
        failed; local refs are untouched.
    """
    name, url = _resolve(store, remote)
    return _pull_url(store, name, url, _Scope(scope), progress, ssh_key)


def _pull_url(
    store: Store,
    name: str,
    url: str,
    scope: _Scope,
    progress: Progress | None,
    ssh_key: str | None = None,
) -> TransferResult:
    gitdir = _gitdir(store)
    result = TransferResult(name, url)
    client, path = _client(url, "pull", ssh_key)
    remote_heads: dict[str, str] = {}
    repo = _StoreRepo(gitdir)
    try:

        def determine_wants(
            refs: Mapping[Ref, ObjectID], depth: int | None = None
        ) -> list[ObjectID]:
            wants: list[ObjectID] = []
            haves: list[ObjectID] = []
            for ref, sha in refs.items():
                key = _task_of(ref)
                if key is None or sha is None or not scope.covers(key):
                    continue
                remote_heads[key] = sha.decode()
                if not store._objects.has(sha.decode()):
                    wants.append(sha)
                    local = store._refs.get(REFS_PREFIX + key)
                    if local is not None:
                        haves.append(ObjectID(local.encode()))
            if repo.walker is not None:
                repo.walker.heads = set(haves)
            return sorted(set(wants))

        before = _packs(gitdir)
        try:
            with _transport_errors(url):
                client.fetch(
                    path, repo, determine_wants=determine_wants, progress=_bytes_progress(progress)
                )
        except RemoteError as e:
            if isinstance(e, (RemoteAuthError, NotAStoreError)):
                raise
            wanted = sorted(k for k, v in remote_heads.items() if not store._objects.has(v))
            if not wanted:
                raise
            # The remote answered with its refs, so it was reached; what failed is sending their
            # objects (a ref pointing at an object it lacks, damage it refuses to pack, or a cut
            # connection): the transfer is incomplete, whoever is to blame.
            where = redact_url(url)
            detail = str(e).removeprefix(f"{where}: ")
            shown = ", ".join(f"refs/artifacts/{k}" for k in wanted[:3])
            more = f" and {len(wanted) - 3} more" if len(wanted) > 3 else ""
            raise CorruptTransferError(
                f"{where}: the remote did not send the objects of {shown}{more} ({detail}); "
                "no ref moved"
            ) from None
    finally:
        repo.close()
    result.objects, result.bytes = _new_pack_stats(gitdir, before)
    _integrate_all(store, remote_heads, result, progress)
    return result


def _integrate_all(
    store: Store, heads: Mapping[str, str], result: TransferResult, progress: Progress | None
) -> None:
    """Bring every fetched head in, once each has been checked to be a version of its task."""
    # Checked before any ref moves, so a remote with one bad ref changes nothing here.
    for key, sha in sorted(heads.items()):
        spec, task = key.split("/")
        check_incoming(
            store._objects,
            spec,
            task,
            sha,
            local_head=store._refs.get(REFS_PREFIX + key),
            known_number=store._number,
        )
    for key, sha in sorted(heads.items()):
        spec, task = key.split("/")
        update = integrate(store, spec, task, sha, timeout=store._cas_timeout)
        if update.action == "merged":
            result.merged.append(update)
        elif update.action in ("created", "fast-forward"):
            result.updated.append(update)
        else:
            result.up_to_date += 1
        if progress is not None and update.action == "merged" and update.conflicts:
            progress(f"merged {key}: {len(update.conflicts)} conflicting name(s)")


def _bytes_progress(progress: Progress | None) -> Callable[[bytes], None] | None:
    if progress is None:
        return None

    def tick(data: bytes) -> None:
        text = data.decode("utf-8", "replace").replace("\r", "\n").strip()
        for line in text.splitlines():
            if line.strip():
                progress(line.strip())

    return tick


def _packs(gitdir: str) -> set[str]:
    try:
        names = os.listdir(os.path.join(gitdir, "objects", "pack"))
    except FileNotFoundError:
        return set()
    return {n for n in names if n.endswith(".pack")}


def _new_pack_stats(gitdir: str, before: set[str]) -> tuple[int, int]:
    """Objects and bytes in the packs a fetch added."""
    objects = size = 0
    pack_dir = os.path.join(gitdir, "objects", "pack")
    for name in _packs(gitdir) - before:
        path = os.path.join(pack_dir, name)
        with contextlib.suppress(OSError), open(path, "rb") as f:
            header = f.read(12)
            size += os.fstat(f.fileno()).st_size
            # A pack starts with "PACK", its version, then the object count (big-endian).
            if len(header) == 12 and header[:4] == b"PACK":
                objects += int.from_bytes(header[8:12], "big")
    return objects, size


# -- push ------------------------------------------------------------------------------------


def push(
    store: Store,
    remote: str | None = None,
    scope: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    allow_secrets: bool = False,
    ssh_key: str | None = None,
) -> TransferResult:
    """Send task refs (all, or ``scope``) to the remote, never rewinding one.

    A remote task whose head is not in our history is left alone and listed in ``refused``
    ("pull first"); every other task is pushed. Only task refs are sent.

    Unless ``allow_secrets``, the versions about to be sent (those the remote lacks) are scanned
    whole by :func:`gitstore.scan.scan_version` (every blob in their trees, their messages,
    metadata, run ids, tags and commits) for secret-shaped strings (the token shapes of
    :class:`gitstore.secrets.Masker`), and a task holding any is refused too, naming where,
    never the secret.

    Raises:
      RemoteUnreachableError, RemoteAuthError, NotAStoreError: the transfer failed.
    """
    name, url = _resolve(store, remote)
    return _push_url(store, name, url, _Scope(scope), progress, allow_secrets, ssh_key)


def _push_url(
    store: Store,
    name: str,
    url: str,
    scope: _Scope,
    progress: Progress | None,
    allow_secrets: bool = False,
    ssh_key: str | None = None,
) -> TransferResult:
    gitdir = _gitdir(store)
    result = TransferResult(name, url)
    local = {k: v for k, v in store.heads().items() if scope.covers(k)}
    client, path = _client(url, "push", ssh_key)
    planned: dict[Ref, tuple[str | None, str]] = {}
    relevant_haves: set[ObjectID] = set()

    def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        planned.clear()
        result.refused.clear()
        result.up_to_date = 0
        out: dict[Ref, ObjectID] = {}
        for key, mine in local.items():
            ref = _ref(key)
            theirs = refs.get(ref)
            theirs_s = theirs.decode() if theirs is not None else None
            if theirs_s == mine:
                result.up_to_date += 1
            elif theirs_s is None or is_ancestor(store, theirs_s, mine):
                out[ref] = ObjectID(mine.encode())
                planned[ref] = (theirs_s, mine)
                if theirs is not None:
                    relevant_haves.add(theirs)
            else:
                result.refused.append(
                    Refusal(key, "the remote has versions of this task that we lack; pull first")
                )
        if not allow_secrets:
            scanner = Scanner(store)
            for ref, (old, new) in list(planned.items()):
                key = ref[len(REFS_PREFIX) :].decode()
                found = _secrets_to_send(store, key, new, old, scanner)
                if found:
                    del planned[ref], out[ref]
                    result.refused.append(
                        Refusal(
                            key,
                            f"{len(found)} secret-shaped string(s) in the versions to send "
                            f"(first: {found[0]}); mask them, or push with --allow-secrets",
                            "secrets",
                        )
                    )
        return out

    repo = Repo(gitdir)
    try:

        def generate_pack_data(
            have: Iterable[ObjectID],
            want: Iterable[ObjectID],
            *,
            ofs_delta: bool = False,
            progress: Callable[..., None] | None = None,
        ) -> tuple[int, Iterator[UnpackedObject]]:
            # The remote offers every ref it has as a "have"; walking 10k of them costs far more
            # than it saves, so only the old heads of the tasks being updated are used.
            finder = MissingObjectFinder(
                repo.object_store,
                haves=set(have) & relevant_haves,
                wants=set(want),
                shallow=set(),
                progress=progress,
            )
            remote_has = finder.get_remote_has()
            ids = list(finder)
            count = result.objects = len(ids)
            # Reusing packed entries as they are (no inflate, no re-deflate) means reading every
            # entry of every pack to find them: worth it for a big push, not for a few objects
            # in a store of 10k tasks (2.7 s for 5 objects), which are looked up one by one.
            records = generate_unpacked_objects(
                repo.object_store,
                ids,
                reuse_deltas=count >= REUSE_ENTRIES_FROM,
                ofs_delta=ofs_delta,
                other_haves=remote_has,
                progress=progress,
            )

            def counted() -> Iterator[UnpackedObject]:
                for rec in records:
                    result.bytes += int(rec.decomp_len or 0)
                    yield rec

            return count, counted()

        with _transport_errors(url):
            sent = client.send_pack(
                path,  # type: ignore[arg-type]  # every client takes the str it gave us
                update_refs,
                generate_pack_data=generate_pack_data,
                progress=_bytes_progress(progress),
            )
    finally:
        repo.close()
    status = sent.ref_status or {}
    for ref, (old, new) in sorted(planned.items()):
        key = ref[len(REFS_PREFIX) :].decode()
        error = status.get(ref)
        if error:
            reason = f"the remote refused it ({_one_line(Exception(error))}); pull first"
            result.refused.append(Refusal(key, reason, "rejected"))
        else:
            result.updated.append(
                TaskUpdate(key, "created" if old is None else "fast-forward", old, new)
            )
    result.refused.sort(key=lambda r: r.task)
    return result


def _secrets_to_send(
    store: Store, key: str, mine: str, theirs: str | None, scanner: Scanner | None = None
) -> list[str]:
    """Where secret-shaped strings sit in the versions of ``key`` the remote lacks.

    Each version is read whole by :func:`gitstore.scan.scan_version` (every blob in its tree,
    its message, metadata, run id, tags, commit), newest first, each thing reported once.
    ``scanner`` (shared by the tasks of one push) reads each blob once.
    """
    scanner = scanner or Scanner(store)
    sent = ancestors(store, [mine])
    seen: set[str] = set()
    if theirs and store._objects.has(theirs):
        sent -= ancestors(store, [theirs])
        # What the remote's head holds was sent before: reading it again would refuse a clean
        # new version for what the remote was allowed to receive earlier.
        seen = scanner.held(theirs)

    # Newest first, so that what several versions hold is reported at the newest.
    order = sorted(sent, key=lambda c: (store._number(c), c), reverse=True)
    return [str(f) for commit in order for f in scanner.version(commit, seen)]


# -- clone and sync --------------------------------------------------------------------------


def clone(
    url: str,
    path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    ssh_key: str | None = None,
) -> tuple[Store, TransferResult]:
    """Make a new store at ``path`` holding every task of ``url``, with ``url`` as ``origin``.

    ``path`` must not exist or be an empty folder. On failure nothing is left behind.
    """
    root = os.path.abspath(os.fspath(path))
    existed = os.path.exists(root)
    if existed and (not os.path.isdir(root) or os.listdir(root)):
        raise UsageError(f"{root} exists and is not an empty folder")
    _check_url(url)
    store = Store.open(root, create=True)
    try:
        add_remote(store, DEFAULT_REMOTE, url)
        result = _pull_url(store, DEFAULT_REMOTE, url, _Scope(()), progress, ssh_key)
    except BaseException:
        store.close()
        if existed:
            for entry in os.listdir(root):
                full = os.path.join(root, entry)
                if os.path.isdir(full):
                    shutil.rmtree(full, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(full)
        else:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return store, result


def sync(
    store: Store,
    remote: str | None = None,
    scope: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    allow_secrets: bool = False,
    ssh_key: str | None = None,
) -> TransferResult:
    """Pull, then push, until both sides hold the same task refs (or :data:`SYNC_ROUNDS` pass).

    A push refused because the remote moved after our pull makes another round; what is still
    refused after the last round is in ``refused``.
    """
    name, url = _resolve(store, remote)
    sel = _Scope(scope)
    total = TransferResult(name, url)
    for _ in range(SYNC_ROUNDS):
        total.absorb(_pull_url(store, name, url, sel, progress, ssh_key))
        pushed = _push_url(store, name, url, sel, progress, allow_secrets, ssh_key)
        total.absorb(pushed)
        # Only a remote that moved meanwhile is worth another round; secrets stay secrets.
        if not any(r.kind != "secrets" for r in pushed.refused):
            break
    return total


# -- bundles ---------------------------------------------------------------------------------


def bundle_create(
    store: Store, file: str | os.PathLike[str], scope: Sequence[str] = ()
) -> TransferResult:
    """Write the task refs (all, or ``scope``) and every object they reach as a Git bundle.

    The bundle is a v2 bundle that ``git bundle verify`` and ``git fetch`` read. It is written to
    a temp file beside ``file`` and renamed into place.
    """
    gitdir = _gitdir(store)
    sel = _Scope(scope)
    heads = {k: v for k, v in store.heads().items() if sel.covers(k)}
    if not heads:
        raise NotFoundError("no task to bundle" + (f" in {' '.join(scope)}" if scope else ""))
    target = os.path.abspath(os.fspath(file))
    tmp = f"{target}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    result = TransferResult("bundle", target)
    repo = Repo(gitdir)
    try:
        bundle = create_bundle_from_repo(repo, refs=[_ref(k) for k in heads], version=2)
        try:
            with open(tmp, "wb") as f:
                write_bundle(f, bundle)
            os.replace(tmp, target)
        except OSError as e:
            raise InputError(f"{target}: cannot be written ({e.strerror or e})") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        result.objects = len(bundle.pack_data) if bundle.pack_data is not None else 0
        bundle.close()
    finally:
        repo.close()
    result.bytes = os.path.getsize(target)
    for key, sha in heads.items():
        result.updated.append(TaskUpdate(key, "created", None, sha))
    return result


def bundle_import(
    store: Store, file: str | os.PathLike[str], *, progress: Progress | None = None
) -> TransferResult:
    """Bring in the task refs of a Git bundle (made by gitstore or ``git bundle create``).

    Works like :func:`pull` from the bundle: fast-forward or merge, never a forced ref. The pack
    is streamed from the file into the store's pack folder and indexed there (deltas included),
    rather than through dulwich's bundle client, which reads the whole pack into memory and
    cannot resolve the deltas stock git writes.
    """
    gitdir = _gitdir(store)
    path = os.path.abspath(os.fspath(file))
    result = TransferResult("bundle", path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the pack is read
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    with f:
        refs, prerequisites = _bundle_header(f, path)
        missing = [p for p in prerequisites if not store._objects.has(p)]
        if missing:
            raise RemoteError(
                f"{path}: the bundle builds on {len(missing)} commit(s) this store lacks "
                f"(first: {missing[0]}); import the bundle it continues first"
            )
        heads = {k: v for k, v in ((_task_of(r.encode()), v) for r, v in refs.items()) if k}
        before = _packs(gitdir)
        repo = Repo(gitdir)
        try:
            with _transport_errors(path):
                repo.object_store.add_thin_pack(f.read, None)
        finally:
            repo.close()
    result.objects, result.bytes = _new_pack_stats(gitdir, before)
    _integrate_all(store, heads, result, progress)
    return result


def _bundle_header(f: IO[bytes], path: str) -> tuple[dict[str, str], list[str]]:
    """The refs and prerequisites of a v2/v3 bundle; ``f`` is left at the start of the pack."""
    first = f.readline(64)
    if first not in (b"# v2 git bundle\n", b"# v3 git bundle\n"):
        raise CorruptTransferError(f"{path}: not a Git bundle")
    refs: dict[str, str] = {}
    prerequisites: list[str] = []
    while True:
        line = f.readline(4096)
        if not line.endswith(b"\n"):
            raise CorruptTransferError(f"{path}: the bundle header is damaged")
        if line == b"\n":
            break
        text = line[:-1].decode("utf-8", "replace")
        if text.startswith("@"):
            if text.startswith("@object-format=") and text != "@object-format=sha1":
                raise CorruptTransferError(f"{path}: only SHA-1 bundles can be imported")
            continue
        if text.startswith("-"):
            prerequisites.append(text[1:41])
            continue
        sha, _, ref = text.partition(" ")
        if len(sha) != 40 or not ref:
            raise CorruptTransferError(f"{path}: the bundle header is damaged")
        refs[ref] = sha
    return refs, prerequisites
