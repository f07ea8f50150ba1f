"""Request bodies into the store: streamed, counted and hashed as they arrive, in bounded memory.

The event loop only moves bytes. :func:`run_with_body` starts two things side by side:

* a *pump* (a coroutine) that reads ``request.stream()``, counts the bytes against the upload
  limit (413 the moment the count passes it), gathers them into 1 MiB pieces and sends them down
  an anyio memory stream that holds at most :data:`QUEUE` pieces;
* the *work* (a blocking function, in a worker thread from ``anyio.to_thread``) that reads those
  pieces through :class:`BodyReader`, a plain blocking file object, and does everything that
  touches the disk: parsing multipart, spooling parts, ``Store.put``.

So the store is never called on the event loop, memory per upload is bounded by the queue
(~4 MiB, plus uvicorn's 64 KiB read buffer: uvicorn stops reading the socket when the app does
not take the body), and a slow disk slows the client down instead of filling memory. An anyio
memory stream was chosen over an OS pipe (no file descriptors, no partial writes) and over a
``queue.Queue`` (whose blocking ``put`` would need a thread of its own on the async side);
handing over 1 MiB pieces keeps the thread hops to ~1,000 per GiB.

The reader never reports a clean end of body unless the pump saw one: a client that goes away
mid-body, a body over the limit, or a caller's digest that does not match the bytes all raise
from ``read`` at the point where the library is still reading its input, so the put stops before
any ref moves (objects already written are unreferenced; the library removes its temp files).

Multipart (:func:`read_multipart`) is parsed with python-multipart's streaming
``MultipartParser`` in the worker thread. Each file part is spooled to an unnamed temp file
(``O_TMPFILE``) in the store's folder while it is hashed and counted, so a crash leaves nothing
behind and nothing is ever visible to gc or stock git; ``await request.form()`` was not used
because it spools every byte twice and counts only non-file fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import IO, Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser
from starlette.requests import ClientDisconnect, Request

from gitstore import GitstoreError
from gitstore.server.errors import (
    BadUploadError,
    BodyTimeoutError,
    DigestMismatchError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

__all__ = [
    "CHUNK",
    "MAX_FIELDS",
    "MAX_FIELD_BYTES",
    "MAX_PARTS",
    "QUEUE",
    "BodyReader",
    "Form",
    "Part",
    "declared_length",
    "read_multipart",
    "run_with_body",
]

CHUNK = 1 << 20
QUEUE = 4
MAX_PARTS = 1000  # file parts in one multipart upload: artifacts of one version
MAX_FIELDS = 1000  # other fields (tags are repeated fields)
MAX_FIELD_BYTES = 1 << 20  # one field's value (metadata JSON is the big one)

T = TypeVar("T")


@dataclasses.dataclass
class _Feed:
    """What the pump tells the reader besides the bytes: how the body ended."""

    error: BaseException | None = None
    complete: bool = False
    received: int = 0


class BodyReader(io.RawIOBase):
    """A blocking, read-only file over a request body, for the worker thread.

    With ``expect_sha256`` the bytes are hashed as they are read and the read that would report
    the end raises :class:`DigestMismatchError` instead when they do not match.
    """

    def __init__(
        self,
        receive: MemoryObjectReceiveStream[bytes],
        feed: _Feed,
        expect_sha256: str | None = None,
    ) -> None:
        super().__init__()
        self._receive = receive
        self._feed = feed
        self._buf = b""
        self._pos = 0
        self._ended = False
        self._expect = expect_sha256
        self._sha = hashlib.sha256() if expect_sha256 else None
        self.size = 0

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:
        if self._ended:
            return b""
        try:
            chunk = anyio.from_thread.run(self._receive.receive)
        except anyio.EndOfStream:
            return self._end()
        self.size += len(chunk)
        if self._sha is not None:
            self._sha.update(chunk)
        return chunk

    def _end(self) -> bytes:
        if self._feed.error is not None:
            raise self._feed.error
        if not self._feed.complete:
            raise BadUploadError("the request body ended before it was complete")
        if self._sha is not None and self._sha.hexdigest() != self._expect:
            raise DigestMismatchError(
                f"the body's sha256 is {self._sha.hexdigest()}, not {self._expect} as sent"
            )
        self._ended = True
        return b""

    def read(self, size: int | None = -1) -> bytes:
        if self._pos >= len(self._buf):
            self._buf, self._pos = self._next(), 0
        if size is None or size < 0:
            parts = [self._buf[self._pos :]]
            self._buf, self._pos = b"", 0
            while chunk := self._next():
                parts.append(chunk)
            return b"".join(parts)
        out = self._buf[self._pos : self._pos + size]
        self._pos += len(out)
        return out

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        memoryview(b).cast("B")[: len(data)] = data
        return len(data)


def declared_length(request: Request, limit: int) -> int | None:
    """The request's Content-Length (None if chunked); 413 at once if it is over ``limit``."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadUploadError(f"Content-Length {raw!r} is not a number")
    n = int(raw)
    if n > limit:
        raise PayloadTooLargeError(f"the body is {n} bytes; this server takes at most {limit}")
    return n


async def _pump(
    stream: AsyncIterator[bytes],
    send: MemoryObjectSendStream[bytes],
    feed: _Feed,
    limit: int,
    idle: float,
) -> None:
    """Move the body into ``send`` in pieces of about :data:`CHUNK` bytes, counting them."""
    async with send:
        try:
            pending: list[bytes] = []
            size = 0
            while True:
                try:
                    with anyio.fail_after(idle):
                        chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise BodyTimeoutError(
                        f"no byte of the body came for {idle:g} s; the upload is dropped"
                    ) from None
                feed.received += len(chunk)
                if feed.received > limit:
                    raise PayloadTooLargeError(
                        f"the body is over {limit} bytes, the most this server takes"
                    )
                pending.append(chunk)
                size += len(chunk)
                if size >= CHUNK:
                    await send.send(b"".join(pending))
                    pending.clear()
                    size = 0
            if pending:
                await send.send(b"".join(pending))
            feed.complete = True
        except ClientDisconnect:
            feed.error = BadUploadError("the client went away before the body ended")
        except GitstoreError as e:
            feed.error = e
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The work stopped reading (it ended or failed); the rest of the body is not needed.
            pass


async def run_with_body(
    request: Request,
    work: Callable[[BodyReader], T],
    *,
    limit: int,
    expect_sha256: str | None = None,
    idle: float = 300.0,
    limiter: anyio.CapacityLimiter | None = None,
) -> T:
    """Run ``work(reader)`` in a worker thread, its reader fed from the request body.

    Returns what ``work`` returns and raises what it raises (including what the reader raised in
    it: a body over ``limit``, a client gone or silent for ``idle`` seconds, a digest that does
    not match). ``limiter`` bounds the threads uploads hold, so that slow uploads never take
    every thread from the reads.
    """
    declared_length(request, limit)
    send, receive = anyio.create_memory_object_stream[bytes](QUEUE)
    feed = _Feed()
    reader = BodyReader(receive, feed, expect_sha256)
    results: list[T] = []
    failure: BaseException | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_pump, request.stream(), send, feed, limit, idle)
        try:
            results.append(await anyio.to_thread.run_sync(work, reader, limiter=limiter))
        except Exception as e:
            failure = e
        finally:
            receive.close()
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return results[0]


# -- multipart ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Part:
    """A file part, spooled: its form field, the file name sent, its type, bytes and digest."""

    field: str
    filename: str
    content_type: str | None
    file: IO[bytes]
    size: int = 0
    sha256: str = ""


@dataclasses.dataclass
class Form:
    """A multipart body read whole: file parts (spooled) and the other fields' values."""

    parts: list[Part] = dataclasses.field(default_factory=list)
    fields: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def value(self, name: str) -> str | None:
        """The value of field ``name`` (the last one, if it was sent several times)."""
        values = self.fields.get(name)
        return values[-1] if values else None

    def close(self) -> None:
        """Close (and so remove: they have no name) every spooled part."""
        for part in self.parts:
            part.file.close()


_PARAM = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _disposition(value: str) -> tuple[str, str | None]:
    """Field name and file name of a part's ``Content-Disposition: form-data; ...``."""
    kind, _, rest = value.partition(";")
    if kind.strip().lower() != "form-data":
        raise BadUploadError(f"a part's Content-Disposition is {kind.strip()!r}, not form-data")
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key.lower()] = raw
    if "name" not in params:
        raise BadUploadError("a part's Content-Disposition has no name")
    filename = params.get("filename")
    extended = params.get("filename*")
    if extended is not None:
        # RFC 5987 (charset'language'percent-encoded), which some clients send for non-ASCII.
        charset, _, encoded = extended.partition("'")
        _, _, encoded = encoded.partition("'")
        if charset.lower() != "utf-8":
            raise BadUploadError(f"filename* is in {charset!r}; only UTF-8 is accepted")
        try:
            filename = urllib.parse.unquote(encoded, errors="strict")
        except UnicodeDecodeError:
            raise BadUploadError("filename* is not percent-encoded UTF-8") from None
    return params["name"], filename


def read_multipart(
    reader: BodyReader,
    content_type: str | None,
    spool_dir: str | None,
    check_name: Callable[[str], object] | None = None,
) -> Form:
    """Parse a ``multipart/form-data`` body from ``reader``; spool each file part as it comes.

    ``check_name`` is called with each file part's name as soon as its headers are read, so a
    refused name stops the upload before its bytes are spooled. The caller owns the returned
    form and must :meth:`Form.close` it; on an error every spooled part is closed here.

    Raises:
      UnsupportedMediaTypeError: not multipart/form-data, or no boundary.
      BadUploadError: a body that does not parse, ends early, or holds a field that is not UTF-8.
      PayloadTooLargeError: more than :data:`MAX_PARTS` files, :data:`MAX_FIELDS` fields, or a
        field over :data:`MAX_FIELD_BYTES`.
    """
    boundary = _boundary(content_type)
    form = Form()
    headers: list[tuple[str, str]] = []
    name_buf = bytearray()
    value_buf = bytearray()
    field_buf = bytearray()
    current: list[Part | str | None] = [None]  # the part being read: a Part, a field name
    hashers: list[Any] = []  # the sha256 of the file part being read
    ended = [False]
    fields_seen = [0]

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        name_buf.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value_buf.extend(data[start:end])

    def on_header_end() -> None:
        try:
            headers.append((name_buf.decode("ascii").lower(), value_buf.decode("utf-8")))
        except UnicodeDecodeError:
            raise BadUploadError("a part's header is not UTF-8") from None
        name_buf.clear()
        value_buf.clear()

    def on_headers_finished() -> None:
        found = dict(headers)
        if "content-disposition" not in found:
            raise BadUploadError("a part has no Content-Disposition header")
        field, filename = _disposition(found["content-disposition"])
        if filename is None:
            fields_seen[0] += 1
            if fields_seen[0] > MAX_FIELDS:
                raise PayloadTooLargeError(f"more than {MAX_FIELDS} form fields in one upload")
            field_buf.clear()
            current[0] = field
            return
        if len(form.parts) >= MAX_PARTS:
            raise PayloadTooLargeError(f"more than {MAX_PARTS} files in one upload")
        if check_name is not None:
            check_name(filename)
        ctype = found.get("content-type")
        part = Part(field, filename, ctype.strip() if ctype else None, _spool(spool_dir))
        form.parts.append(part)
        hashers.append(hashlib.sha256())
        current[0] = part

    def on_part_data(data: bytes, start: int, end: int) -> None:
        target = current[0]
        if isinstance(target, Part):
            piece = data[start:end]
            target.file.write(piece)
            target.size += len(piece)
            hashers[-1].update(piece)
        elif target is not None:
            field_buf.extend(data[start:end])
            if len(field_buf) > MAX_FIELD_BYTES:
                raise PayloadTooLargeError(f"form field {target!r} is over {MAX_FIELD_BYTES} bytes")

    def on_part_end() -> None:
        target = current[0]
        if isinstance(target, Part):
            target.sha256 = hashers[-1].hexdigest()
            target.file.seek(0)
        elif target is not None:
            try:
                form.fields.setdefault(target, []).append(field_buf.decode("utf-8"))
            except UnicodeDecodeError:
                raise BadUploadError(f"form field {target!r} is not UTF-8") from None
        current[0] = None

    def on_end() -> None:
        ended[0] = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
        max_header_count=16,
    )
    try:
        while not ended[0] and (chunk := reader.read(CHUNK)):
            parser.write(chunk)
        if not ended[0]:
            raise BadUploadError("the multipart body ends before its closing boundary")
    except FormParserError as e:
        form.close()
        raise BadUploadError(f"the multipart body does not parse: {e}") from None
    except BaseException:
        form.close()
        raise
    return form


def _boundary(content_type: str | None) -> bytes:
    kind, _, rest = (content_type or "").partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise UnsupportedMediaTypeError(
            f"the body must be multipart/form-data, not {kind.strip() or 'untyped'}"
        )
    for key, raw in _PARAM.findall(";" + rest):
        if key.lower() == "boundary":
            value = str(raw).strip().strip('"')
            if 1 <= len(value) <= 70 and value.isascii():
                return value.encode("ascii")
    raise UnsupportedMediaTypeError("multipart/form-data without a valid boundary")


def _spool(folder: str | None) -> IO[bytes]:
    # An unnamed temp file (O_TMPFILE where the file system has it): closing it, or a crash,
    # removes it; nothing else ever sees it.
    return tempfile.TemporaryFile(dir=folder)
