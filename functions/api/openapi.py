"""The OpenAPI document as the API really answers: Custom Vision's `{code, message}` error body
with the statuses it is sent with (never FastAPI's 422 validation shape)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = {
    "type": "object",
    "title": "CustomVisionError",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
_ERROR_REF = {"$ref": "#/components/schemas/CustomVisionError"}
_DESCRIPTIONS = {
    "400": "Bad request: the code says what is wrong (Custom Vision's CustomVisionErrorCodes).",
    "401": "The key header is missing or wrong.",
    "404": "A project, tag, image, iteration or published name in the path does not exist.",
    "413": "The request body is larger than this operation can need (BadRequestImageSizeBytes).",
    "500": "An unexpected fault (ErrorUnknown); the connection stays usable.",
    "503": "Storage is unavailable or a row is under heavy contention: retry (see Retry-After).",
}
# Batch uploads answer 207 (with the same summary) when some images were not stored.
_MULTI_STATUS = ("/images", "/images/files", "/images/urls", "/images/predictions")


def _error(status: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ERROR_REF}},
    }


def _ids_are_uuids(operation: dict[str, Any]) -> None:
    """Ids are GUIDs, as Custom Vision documents them: anything else is a 400."""
    for parameter in operation.get("parameters", []):
        if not parameter["name"].endswith("Id") or parameter["schema"].get("default") == "":
            continue
        schema = parameter["schema"]
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == "string":
                branch["format"] = "uuid"


def describe_errors(document: dict[str, Any], keyed_prefixes: tuple[str, ...]) -> dict[str, Any]:
    document.setdefault("components", {}).setdefault("schemas", {})
    schemas = document["components"]["schemas"]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["CustomVisionError"] = ERROR_SCHEMA
    for path, operations in document.get("paths", {}).items():
        keyed = path.startswith(keyed_prefixes)
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            _ids_are_uuids(operation)
            statuses = ["400", "500", "503"]  # every documented operation reads storage
            if keyed:
                statuses.append("401")
            if "{" in path:
                statuses.append("404")
            if "requestBody" in operation:
                statuses.append("413")
            for status in statuses:
                responses.setdefault(status, _error(status))
            if method == "post" and path.endswith(_MULTI_STATUS) and "200" in responses:
                responses.setdefault("207", {**responses["200"], "description": "Multi-Status"})
    return document


def install_openapi(app: FastAPI, keyed_prefixes: tuple[str, ...]) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = describe_errors(document, keyed_prefixes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
