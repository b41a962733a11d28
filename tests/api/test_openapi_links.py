"""The OpenAPI document: valid OpenAPI 3.1, its links resolve, and it says where a token is needed."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from truceline.api import build_context, create_app
from truceline.api.links import LINKS, Link, add_links
from truceline.settings import load_settings

from .conftest import Api


def _doc(client: TestClient) -> dict[str, Any]:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The document of a server that lets the public role in without a token (the default)."""
    return _app_doc(anonymous_public=True)


def test_the_document_is_valid_openapi_3_1_with_every_link(doc: dict[str, Any]) -> None:
    validate(doc)  # openapi-spec-validator: OpenAPI 3.1, links included
    found = {
        (method, path, status, name)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        for status, response in op["responses"].items()
        for name in response.get("links", {})
    }
    assert found == {(*link.source, link.name) for link in LINKS}
    assert len(LINKS) >= 100
    # each link targets an operation by its id, with the parameters that operation has
    links = doc["paths"]["/api/v1/incidents/batch"]["post"]["responses"]["200"]["links"]
    assert links["ReviewIncident"] == {
        "operationId": doc["paths"]["/api/v1/incidents/{pk}/review"]["post"]["operationId"],
        "parameters": {"pk": "$response.body#/results/0/pk"},
    }


def test_schemathesis_builds_a_state_machine_from_the_links(doc: dict[str, Any]) -> None:
    """Every link is a transition schemathesis accepts (it raises on a link it cannot follow)."""
    schema = schemathesis.openapi.from_dict(doc)
    machine = schema.as_state_machine()
    ours = {
        f"{link.source[0].upper()} {link.source[1]} -> [{link.source[2]}] {link.name} -> "
        f"{link.target[0].upper()} {link.target[1]}"
        for link in LINKS
    }
    transitions = {
        link.full_name
        for ops in machine._transitions.operations.values()
        for link in ops.outgoing
        if not link.is_inferred
    }
    assert transitions == ours


def _app_doc(anonymous_public: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        s = load_settings(db=str(Path(d) / "x.db"), agreements=[], anonymous_public=anonymous_public)
        ctx = build_context(s)
        try:
            return create_app(ctx).openapi()
        finally:
            ctx.close()


def test_the_token_is_optional_exactly_where_the_public_role_may_call(api: Api) -> None:
    """Each operation's bearer requirement names the permission it checks; those the public role
    holds (and OGC's, which filter by role) accept a caller without a token. An anonymous call
    to one of those is not refused, to any other is a 401."""
    doc = _doc(api.client)
    optional = {
        (m, p)
        for p, ops in doc["paths"].items()
        for m, op in ops.items()
        if op.get("security") and {} in op["security"]
    }
    assert ("get", "/api/v1/reports") in optional
    assert ("get", "/api/v1/dashboard/features") in optional
    assert ("get", "/ogc/collections") in optional
    assert ("post", "/api/v1/incidents") not in optional
    review = doc["paths"]["/api/v1/incidents/{pk}/review"]["post"]["security"]
    assert review == [{"HTTPBearer": ["incidents:review"]}]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if not op.get("security") or "{" in path or method != "get":
                continue
            r = api.client.get(path)
            if (method, path) in optional:
                assert r.status_code not in (401, 403), (path, r.text)
            else:
                assert r.status_code == 401, (path, r.text)
    # a server that needs a token for every call says so
    strict = _app_doc(anonymous_public=False)
    assert not any(
        {} in op.get("security", [{"x": []}]) for ops in strict["paths"].values() for op in ops.values()
    )


@pytest.mark.parametrize(
    "link,says",
    [
        (Link("Nowhere", ("post", "/api/v1/incidents/batch", "200"), ("get", "/api/v1/nope")),
         "no such operation"),
        (Link("NoStatus", ("post", "/api/v1/incidents/batch", "299"), ("get", "/api/v1/incidents")),
         "no 299 response"),
        (Link("NoParam", ("post", "/api/v1/incidents/batch", "200"),
              ("get", "/api/v1/incidents/{pk}"), {"id": "$response.body#/results/0/pk"}),
         "no parameter id"),
    ],
)  # fmt: skip
def test_a_link_to_nothing_is_refused(doc: dict[str, Any], link: Link, says: str) -> None:
    """A renamed or removed route cannot leave a dangling link: building the document fails."""
    base = copy.deepcopy(doc)
    for ops in base["paths"].values():
        for op in ops.values():
            for response in op["responses"].values():
                response.pop("links", None)
    with pytest.raises(ValueError, match=says):
        add_links(base, (link,))
