"""/openapi.json generated from the same proto descriptors as the routes (DESIGN §6): they cannot drift."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ..registry import METHODS, Method

_ERROR_CODES = {400: "bad or missing parameter", 401: "bad client or token", 403: "not allowed (IP whitelist, "
                "permission, card state)", 404: "unknown EID, task or number", 409: "conflicting apply",
                429: "rate limited (Retry-After)", 503: "temporarily unavailable"}
_SCALARS = {FieldDescriptor.TYPE_STRING: {"type": "string"}, FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
            FieldDescriptor.TYPE_DOUBLE: {"type": "number"}, FieldDescriptor.TYPE_FLOAT: {"type": "number"},
            FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
            FieldDescriptor.TYPE_INT64: {"type": "integer", "format": "int64"}}
_TOKEN = {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "the token of /api/v1/auth/token (or Authorization: Bearer)"}


def _field_schema(f: FieldDescriptor) -> dict[str, Any]:
    schema = _message_schema(f.message_type) if f.message_type is not None else dict(_SCALARS[f.type])
    if f.is_repeated:
        return {"type": "array", "items": schema}
    if f.has_presence and f.message_type is None:
        schema["nullable"] = True
    return schema


def _message_schema(desc: Descriptor, *, response: bool = False) -> dict[str, Any]:
    props = {f.name: _field_schema(f) for f in desc.fields}
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if response:
        schema["required"] = list(props)
    return schema


def _envelope(desc: Descriptor) -> dict[str, Any]:
    """DESIGN §6: {"code": 200, "message": …, <fields>}."""
    inner = _message_schema(desc, response=True)
    inner["properties"] = {"code": {"type": "integer", "enum": [200]}, "message": {"type": "string"},
                           **inner["properties"]}
    inner["required"] = ["code", "message", *inner["required"]]
    return inner


ERROR_SCHEMA = {"type": "object", "required": ["code", "message", "error"],
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"},
                               "error": {"type": "string", "description": "stable reason code"}}}


def _operation(m: Method, verb: str) -> dict[str, Any]:
    desc = m.input.DESCRIPTOR
    op: dict[str, Any] = {"operationId": m.name if verb == "GET" else m.name + "Post",
                          "summary": f"§{m.clause} {m.name}", "tags": [m.service.rsplit(".", 1)[-1]],
                          "responses": {"200": {"description": "success", "content": {
                              "application/json": {"schema": _envelope(m.output.DESCRIPTOR)}}}}}
    for code, why in _ERROR_CODES.items():
        op["responses"][str(code)] = {"description": why, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    params = [] if m.permission == "public" else [_TOKEN]
    if verb == "GET":
        params += [{"name": f.name, "in": "query", "required": False, "schema": _field_schema(f)}
                   for f in desc.fields]
    else:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": _message_schema(desc)}}}
    op["parameters"] = params
    if m.permission not in ("public", "admin"):
        op["security"] = [{"bearer": []}, {}]
    return op


def document() -> dict[str, Any]:
    """The OpenAPI 3.0 description of every annotated route."""
    paths: dict[str, Any] = {}
    for m in METHODS:
        for verb, path in m.routes:
            paths.setdefault(path, {})[verb.lower()] = _operation(m, verb)
    return {"openapi": "3.0.3",
            "info": {"title": "esimota partner API (T/CIAD §7)", "version": "1.0.0"},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "paths": paths}


_BODY: bytes | None = None


async def handler(request: web.Request) -> web.Response:
    global _BODY
    if _BODY is None:
        _BODY = json.dumps(document(), ensure_ascii=False, indent=1).encode()
    return web.Response(body=_BODY, content_type="application/json", charset="utf-8")
