"""Artifact bytes over HTTP: ETag and 304, single byte ranges (206/416), digests, file names.

Starlette's ``FileResponse`` answers ranges only for files on disk; a blob is a zlib stream in
the object store, so this module answers them itself. The blob is read with
``Store.open_artifact`` in a worker thread, 1 MiB per hop to the event loop; a range that starts
inside the blob is reached by reading forward and dropping the bytes before it (a zlib stream
cannot be entered in the middle), never by reading the whole blob into memory.

Headers: ``ETag`` is the blob id, quoted (the same bytes have the same id in every version and
store); ``X-Gitstore-Sha256`` (hex), ``Repr-Digest`` (RFC 9530) and ``Digest`` (RFC 3230) carry
the sha256 of the whole artifact, also on a 206; ``Content-Disposition`` is ``attachment`` with
the base name, ASCII in ``filename`` and exact in ``filename*`` (RFC 6266). A URL that pins a
commit can be cached for good; any other is revalidated with the ETag.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gitstore import ArtifactInfo, BlobReader

__all__ = ["artifact_response", "content_disposition", "parse_range"]

PIECE = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The one byte range ``(start, stop)`` a Range header asks for.

    None: answer the whole artifact (no header, several ranges, or a header that does not
    parse: RFC 9110 lets a server ignore those). False: not satisfiable (416).
    """
    if header is None:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:
        # bytes=-N: the last N bytes.
        n = int(last)
        if n == 0 or size == 0:
            return False
        return max(0, size - n), size
    start = int(first)
    if start >= size:
        return False
    stop = size if not last else min(size, int(last) + 1)
    if stop <= start:
        return None  # last < first: syntactically invalid, so ignored
    return start, stop


def content_disposition(name: str) -> str:
    """``attachment`` with the artifact's base name, plain ASCII and exact UTF-8 (RFC 6266)."""
    base = name.rsplit("/", 1)[-1]
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in base)
    quoted = urllib.parse.quote(base, safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"


def _etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def artifact_response(
    request: Request,
    info: ArtifactInfo,
    opener: Callable[[], BlobReader],
    *,
    pinned: bool,
) -> Response:
    """The response for GET or HEAD of artifact ``info``; ``opener`` opens its bytes."""
    etag = f'"{info.oid}"'
    digest = base64.b64encode(bytes.fromhex(info.sha256)).decode()
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "X-Gitstore-Sha256": info.sha256,
        "Repr-Digest": f"sha-256=:{digest}:",
        "Digest": f"sha-256={digest}",
        "Content-Disposition": content_disposition(info.name),
        # Artifacts are whatever agents wrote: never let a browser run them as this origin's page.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=31536000, immutable" if pinned else "no-cache",
    }
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    size = info.size
    start, stop, status = 0, size, 200
    if_range = request.headers.get("if-range")
    if if_range is None or if_range.strip() == etag:
        wanted = parse_range(request.headers.get("range"), size)
        if wanted is False:
            headers["Content-Range"] = f"bytes */{size}"
            return Response(status_code=416, headers=headers)
        if isinstance(wanted, tuple):
            start, stop = wanted
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    headers["Content-Length"] = str(stop - start)
    # Given as a header, not media_type: Starlette would append "; charset=utf-8" to text/*.
    headers["Content-Type"] = info.content_type
    return _BlobResponse(opener, start, stop, status_code=status, headers=headers)


class _BlobResponse(StreamingResponse):
    """Streams ``[start, stop)`` of a blob; HEAD sends the headers only."""

    def __init__(
        self,
        opener: Callable[[], BlobReader],
        start: int,
        stop: int,
        *,
        status_code: int,
        headers: dict[str, str],
    ) -> None:
        self._opener = opener
        self._start = start
        self._stop = stop
        super().__init__(self._chunks(), status_code=status_code, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD" or self._start == self._stop:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await super().__call__(scope, receive, send)

    async def _chunks(self) -> AsyncIterator[bytes]:
        reader = await anyio.to_thread.run_sync(self._opener)
        try:
            if self._start:
                await anyio.to_thread.run_sync(_skip, reader, self._start)
            left = self._stop - self._start
            while left > 0:
                piece = await anyio.to_thread.run_sync(reader.read, min(PIECE, left))
                if not piece:
                    break  # the reader raises IntegrityError itself when a blob is short
                left -= len(piece)
                yield piece
        finally:
            # Cheap and non-blocking (closes a file handle), so safe even while being cancelled.
            reader.close()


def _skip(reader: BlobReader, n: int) -> None:
    while n > 0:
        piece = reader.read(min(PIECE, n))
        if not piece:
            return
        n -= len(piece)
