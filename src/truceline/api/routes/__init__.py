"""The API's routers, one module per family of resources (thin: parse, call a service, format)."""

from __future__ import annotations

from typing import Any

from truceline.api.errors import ErrorBody

#: Error responses every route may give, documented once for the OpenAPI spec. Errors are JSON
#: even on routes whose success is HTML, PDF or GeoJSON, so the JSON body is declared explicitly.
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text, "content": _JSON_ERROR}
    for code, text in (
        (400, "Malformed request"),
        (401, "No or unknown credential"),
        (403, "The caller's role may not do this"),
        (404, "Not found (or not visible to the caller)"),
        (409, "Conflicts with the current state"),
        (413, "Request or batch too large"),
        (422, "Invalid input: field, value and fix"),
    )
}
