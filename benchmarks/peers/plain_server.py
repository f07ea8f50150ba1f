"""Peer for the server figures: the same web stack (Starlette on uvicorn) storing plain files.

``PUT /raw/{name}`` writes the body straight to ``ROOT/raw/<name>`` as it arrives (then fsync,
as gitstore's default durability does); ``GET /raw/{name}`` sends it back (Starlette's
FileResponse); ``POST /versions/{spec}/{task}`` parses a multipart body with python-multipart's
streaming parser, as gitstore does, and stores the parts with the plain-files peer
(``plainfiles.put``: files plus metadata.json, no fsync, no locking). Everything runs on the
event loop: the simplest app the stack allows.

Run: ``plain_server.py ROOT PORT`` (prints ``listening on PORT`` once it is up).
"""

from __future__ import annotations

import os
import sys

import plainfiles
import uvicorn
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

ROOT = sys.argv[1]


async def put_raw(request: Request) -> Response:
    path = os.path.join(ROOT, "raw", request.path_params["name"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    size = 0
    with open(path, "wb") as f:
        async for chunk in request.stream():
            f.write(chunk)
            size += len(chunk)
        f.flush()
        os.fsync(f.fileno())
    return JSONResponse({"size": size}, status_code=201)


async def get_raw(request: Request) -> Response:
    return FileResponse(os.path.join(ROOT, "raw", request.path_params["name"]))


async def post_version(request: Request) -> Response:
    _, params = parse_options_header(request.headers["content-type"])
    files: dict[str, bytes] = {}
    current: dict[str, object] = {}
    header: list[bytes] = [b"", b""]

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        if header[0].lower() == b"content-disposition":
            _, opts = parse_options_header(header[1])
            current["name"] = opts.get(b"filename", b"").decode()
            current["data"] = bytearray()
        header[0], header[1] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        buf = current["data"]
        assert isinstance(buf, bytearray)
        buf.extend(data[start:end])

    def on_part_end() -> None:
        if current.get("name"):
            files[str(current["name"])] = bytes(current["data"])  # type: ignore[arg-type]

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    async for chunk in request.stream():
        parser.write(chunk)
    address = f"{request.path_params['spec']}/{request.path_params['task']}"
    version = plainfiles.put(ROOT, address, files)
    return JSONResponse({"version": version}, status_code=201)


app = Starlette(
    routes=[
        Route("/raw/{name:path}", put_raw, methods=["PUT"]),
        Route("/raw/{name:path}", get_raw, methods=["GET"]),
        Route("/versions/{spec}/{task}", post_version, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    port = int(sys.argv[2])
    print(f"listening on {port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, lifespan="off", server_header=False)
