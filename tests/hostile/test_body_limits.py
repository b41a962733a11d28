"""A body over the limit is a 413 on every route that takes one (Content-Length or chunked),
never a 400, a 422 or a 500, whatever the route would have done with it; nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from truceline.api import API_PREFIX

from ..api.conftest import Api, make_api, rec

LIMIT = 4096  # the smallest the settings allow; uploads and chunks get their own, as small
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture()
def small_limits(
    db_url: str, sectored_dir: Path, agreement_cache: object, tmp_path: Path
) -> Iterator[Api]:
    a = make_api(
        db_url,
        sectored_dir,
        agreement_cache,  # type: ignore[arg-type]
        attachments_dir=tmp_path / "attachments",
        max_request_bytes=LIMIT,
        attachment_chunk_bytes=LIMIT,
        attachment_max_bytes={"admin": LIMIT, "analyst": LIMIT},
    )
    with a.client:
        yield a
    a.ctx.close()


def _routes(api: Api) -> list[tuple[str, str]]:
    """Every route that may take a body, from the API's own description (OGC's included)."""
    out = []
    for spec_path in (f"{API_PREFIX}/openapi.json", "/ogc/api"):
        r = api.client.get(spec_path, headers=api.h("admin"))
        if r.status_code != 200:
            continue
        for p, ops in r.json().get("paths", {}).items():
            full = p if p.startswith((API_PREFIX, "/ogc")) else "/ogc" + p
            for m in ops:
                if m.upper() not in BODY_METHODS:
                    continue
                path = full.replace("{upload_id}", "0" * 32)
                while "{" in path:  # every other path parameter: a key
                    a, _, rest = path.partition("{")
                    path = a + "1" + rest.partition("}")[2]
                out.append((m.upper(), path))
    return sorted(set(out))


def test_every_route_that_takes_a_body_answers_413_over_the_limit(small_limits: Api) -> None:
    routes = _routes(small_limits)
    # the API's write routes, found from its own description (20 when this was written)
    assert len(routes) >= 20 and ("POST", f"{API_PREFIX}/incidents/batch") in routes, routes
    assert all(p.startswith((API_PREFIX, "/ogc")) for _, p in routes)
    big = b"{" + b" " * (LIMIT + 70 * 1024) + b"}"  # over every route's limit (uploads: +64 KiB)

    def chunked() -> Iterator[bytes]:
        for k in range(0, len(big), 1000):
            yield big[k : k + 1000]

    # a resumable upload to send a chunk to (an unknown one is a 404 before a byte is read)
    assert small_limits.post("/incidents", json=rec(1)).status_code == 201
    begun = small_limits.client.post(
        f"{API_PREFIX}/incidents/1/uploads",
        headers={**small_limits.h("admin"), "Upload-Length": str(LIMIT)},
    )
    assert begun.status_code == 201, begun.text
    routes = [
        (m, begun.headers["Location"] if p.startswith(f"{API_PREFIX}/uploads/") else p)
        for m, p in routes
    ]
    wrong = []
    for method, path in routes:
        headers = {"content-type": "application/json", **small_limits.h("admin")}
        if path.startswith(f"{API_PREFIX}/uploads/"):
            headers |= {"content-type": "application/offset+octet-stream", "Upload-Offset": "0"}
        for how, content in (("content-length", big), ("chunked", chunked())):
            r = small_limits.client.request(method, path, content=content, headers=headers)
            err = (
                r.json().get("error", {})
                if r.headers.get("content-type", "").startswith("application/json")
                else {}
            )
            if r.status_code != 413 or err.get("field") != "body" or not err.get("fix"):
                wrong.append(f"{method} {path} ({how}): {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)
    assert [i["report_id"] for i in small_limits.get("/incidents").json()["items"]] == ["r1"]
