"""The OpenAPI 3.0 document of the OGC API - Features routes (``GET /ogc/api``).

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12: ``anyOf`` with ``null``, ``const``, ``examples``)
while the OGC API - Features ``oas30`` conformance class asks for an OpenAPI 3.0 definition. This
module generates the document of the ``/ogc`` routes only and rewrites those constructs into their
3.0 forms (``nullable``, ``enum``, ``example``, boolean ``exclusiveMinimum``); tests validate the
result with openapi-spec-validator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from truceline import __version__

__all__ = ["OAS30", "openapi30", "to_openapi30"]

#: The media type of an OpenAPI 3.0 document.
OAS30 = "application/vnd.oai.openapi+json;version=3.0"


def openapi30(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``routes`` (the ``/ogc`` router's)."""
    doc = get_openapi(
        title="Truceline - OGC API Features",
        version=__version__,
        openapi_version="3.0.3",
        description="Incidents, findings and the agreement's zones, line, sectors and sensors as "
        "OGC API - Features (Part 1: core, GeoJSON, OpenAPI 3.0). Send the REST API's bearer token.",
        routes=list(routes),
    )
    doc["components"] = {
        **doc.get("components", {}),
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    }
    doc["security"] = [{}, {"bearer": []}]  # anonymous callers are the public role
    out: dict[str, Any] = to_openapi30(doc)
    return out


def to_openapi30(value: Any) -> Any:
    """``value`` with JSON Schema 2020-12 constructs rewritten as OpenAPI 3.0 accepts them."""
    if isinstance(value, list):
        return [to_openapi30(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: to_openapi30(v) for k, v in value.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            out["nullable"] = True
            if len(rest) == 1:
                out.update({k: v for k, v in rest[0].items() if k not in out})
                if "$ref" in out:  # 3.0 ignores siblings of $ref: wrap it
                    out["allOf"] = [{"$ref": out.pop("$ref")}]
            else:
                out[key] = rest
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if "examples" in out and isinstance(out["examples"], list):
        examples = out.pop("examples")
        if examples:
            out.setdefault("example", examples[0])
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[plain] = out[bound]
            out[bound] = True
    if out.get("type") == "null":
        del out["type"]
        out["nullable"] = True
    return out
