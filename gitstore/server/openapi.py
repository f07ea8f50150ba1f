"""The OpenAPI 3.1 document of the server, generated from the same operation table as the routes.

Each :class:`~gitstore.server.app.Operation` becomes one path and method; path parameters come
from the route's path (``{name:path}`` is ``{name}`` here), query parameters and bodies from the
operation. Response bodies are the library's wire shapes (``Version.to_dict()`` ...), named in
``components.schemas`` and described, not spelled out field by field: the README and
``gitstore.model`` hold their fields.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gitstore import __version__

if TYPE_CHECKING:
    from gitstore.server.ops import Operation

__all__ = ["openapi_document", "openapi_path"]

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

_SHAPES = {
    "Version": "a version: gitstore.model.Version.to_dict() (the CLI's show --json)",
    "TaskDeletion": "gitstore.model.TaskDeletion.to_dict()",
    "QueueArtifact": 'agent-job artifact: {"id","jobId","name","contentType","sizeBytes",'
    '"digest","storagePath","createdAt"}',
    "QueueArtifactList": '{"items": [QueueArtifact, ...]}, newest first',
    "Problem": "RFC 9457 problem: type, title, status, detail, error (class), exit_code",
}


def openapi_path(path: str) -> str:
    """A Starlette route path as OpenAPI writes it: ``{name:path}`` becomes ``{name}``."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def openapi_document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``operations`` (plus ``GET /openapi.json`` itself)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "x-gitstore-scope": op.scope,
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PARAM.findall(op.path)
            ]
            + [
                {
                    "name": p.name,
                    "in": "query",
                    "description": p.description,
                    "schema": {"type": "array", "items": {"type": "string"}}
                    if p.repeated
                    else {"type": "integer" if p.integer else "string"},
                }
                for p in op.query
            ],
            "responses": {
                str(status): {"description": _SHAPES.get(shape, shape)}
                for status, shape in (op.responses or {200: "JSON"}).items()
            }
            | {"default": {"description": _SHAPES["Problem"]}},
        }
        if op.body == "multipart":
            entry["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": {"type": "object"}}},
            }
        elif op.body == "raw":
            entry["requestBody"] = {
                "required": True,
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        paths.setdefault(openapi_path(op.path), {})[op.method.lower()] = entry
    paths.setdefault("/openapi.json", {})["get"] = {
        "operationId": "openapi",
        "summary": "This document",
        "x-gitstore-scope": "read",
        "responses": {"200": {"description": "OpenAPI 3.1"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gitstore",
            "version": __version__,
            "description": "Artifacts of agent runs, versioned per task, in a Git repository.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{"bearer": []}, {"basic": []}],
        "paths": paths,
    }
