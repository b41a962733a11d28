"""Who may do what: every endpoint against every role, and what each role sees.

Allowed calls must succeed (2xx); every other call gets 403, or 401 without a token, or 404 where
the record exists but its existence must not leak to that caller.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from truceline.services.audit import history
from truceline.services.auth import Principal, Role

from ..media_samples import photo
from .conftest import API, DAY, ROLES, Api, make_api, rec

CALLERS = (*ROLES, None)  # None: no token at all
EVERYONE = frozenset(CALLERS)
READERS = frozenset({"admin", "analyst", "monitor", "liaison"})
SUBMITTERS = frozenset({"admin", "analyst", "monitor", "sensor"})
STAFF = frozenset({"admin", "analyst"})
PUBLISHED = EVERYONE - {"sensor"}  # a sensor token is for ingest only
MAPPED = PUBLISHED  # the map: the public's is of the released findings (issue 19)


@dataclass(frozen=True)
class Seed:
    north: int  # an incident in the monitor's sector
    south: int  # one outside it
    released: int  # a finding released to the parties (north)
    unreleased: int  # a finding not released (north)
    review_pk: dict[str, int]  # a fresh incident per caller, for review calls
    tokens: dict[str, str]  # a token id per caller, for revoke calls
    files: dict[str, str]  # the agreement's own files (re-uploading them changes nothing)
    event: int  # a fused event in the monitor's sector
    event_south: int  # one outside it
    split: dict[str, tuple[int, int]]  # a fresh event per caller, and the report to split off
    merge: dict[str, list[int]]  # two fresh events per caller, to merge
    attachment: int = 0  # an attachment of the north incident, not released
    released_sha: str = ""  # the bytes filed of a released attachment (north)
    unreleased_sha: str = ""  # those of the one not released
    upload: str = ""  # a resumable upload the admin started (north), not finished


def _seed(api: Api, folder: Path) -> Seed:
    res = api.post(
        "/incidents/batch",
        json={
            "incidents": [
                rec("north-1"),
                rec("north-2", lon=36.96),
                rec("south-1", lat=48.4),
                *[rec(f"review-{c}", lon=36.9 + k * 0.001) for k, c in enumerate(CALLERS)],
            ]
        },
    ).json()
    pk = {r["id"]: r["pk"] for r in res["results"]}
    f1 = api.get(f"/incidents/{pk['north-1']}").json()["findings"][0]["pk"]
    f2 = api.get(f"/incidents/{pk['north-2']}").json()["findings"][0]["pk"]
    api.post(f"/incidents/{pk['north-1']}/review", json={"action": "verify"})
    api.post(f"/incidents/{pk['north-1']}/review", json={"action": "release"})
    assert api.post(f"/reports/{DAY}/publish").status_code == 201
    api.clock.now += dt.timedelta(days=1)
    assert api.post("/ledger/close").status_code == 200  # yesterday's root: proofs can be made
    tokens = {}
    for c in CALLERS:
        tokens[str(c)] = api.post("/tokens", json={"role": "sensor", "name": f"spare-{c}"}).json()["id"]
    files = {p.name: p.read_text() for p in folder.iterdir()}
    review = {str(c): pk[f"review-{c}"] for c in CALLERS}
    api.post("/sensors", json={"sensors": [_sensor(k) for k in range(3)]})

    def event(name: str, lon: float, lat: float = 48.6) -> tuple[int, int]:
        """Two reports of one explosion by two sources: one fused event."""
        a = api.post("/incidents", json=_blast(f"{name}-cam", lon, lat, "camera")).json()["pk"]
        b = api.post("/incidents", json=_blast(f"{name}-pat", lon, lat, "patrol"), role="analyst")
        ev = api.get(f"/incidents/{a}").json()["event_id"]
        assert ev is not None and api.get(f"/incidents/{b.json()['pk']}").json()["event_id"] == ev
        return ev, a

    ev_north, _ = event("ev-n", 37.1)
    ev_south, _ = event("ev-s", 37.1, 48.3)
    splits = {str(c): event(f"split-{c}", 37.2 + 0.05 * k) for k, c in enumerate(CALLERS)}
    merges = {
        str(c): [event(f"merge-{c}-{j}", 37.2 + 0.05 * k, 48.7 + 0.05 * j)[0] for j in range(2)]
        for k, c in enumerate(CALLERS)
    }
    filed = []
    for seed in (1, 2):
        r = api.post(
            f"/incidents/{pk['north-1']}/attachments",
            files={"file": (f"p{seed}.jpg", photo(seed=seed), "image/jpeg")},
        )
        assert r.status_code == 201, r.text
        filed.append(r.json()[0])
    assert api.post(f"/attachments/{filed[0]['pk']}/release").status_code == 200
    started = api.client.post(
        f"{API}/incidents/{pk['north-1']}/uploads", headers={**api.h("admin"), "Upload-Length": "9999"}
    )
    assert started.status_code == 201, started.text
    return Seed(
        pk["north-1"], pk["south-1"], f1, f2, review, tokens, files, ev_north, ev_south, splits,
        merges, filed[1]["pk"], filed[0]["sha256"], filed[1]["sha256"],
        started.headers["Location"].removeprefix(API),
    )  # fmt: skip


def _sensor(k: int) -> dict[str, Any]:
    return {"id": f"S-{k}", "network": "net", "lon": 37.0 + 0.05 * k, "lat": 48.0, "kind": "acoustic"}


def _blast(name: str, lon: float, lat: float, source: str) -> dict[str, Any]:
    return rec(name, lon=lon, lat=lat, kind="explosion", source_type=source, uncertainty_m=100)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sectored_dir: Path,
    agreement_cache: Any,
) -> Iterator[tuple[Api, Seed]]:
    if request.param == "sqlite":
        url = str(tmp_path_factory.mktemp("roles") / "roles.db")
    else:
        url = request.getfixturevalue("pg_cluster").new_database()
    api = make_api(url, sectored_dir, agreement_cache, attachments_dir=tmp_path_factory.mktemp("files"))
    with api.client:
        yield api, _seed(api, sectored_dir)
    api.ctx.close()


Call = Callable[[Seed, str], tuple[str, str, dict[str, Any]]]


def _day_for(caller: str) -> str:
    return str(DAY + dt.timedelta(days=1 + CALLERS.index(None if caller == "None" else caller)))


# (name, call, allowed callers, callers that get 404 instead of 403)
MATRIX: list[tuple[str, Call, frozenset[str | None], frozenset[str | None]]] = [
    ("health", lambda s, c: ("GET", "/health", {}), EVERYONE, frozenset()),
    ("ready", lambda s, c: ("GET", "/ready", {}), EVERYONE, frozenset()),
    ("me", lambda s, c: ("GET", "/me", {}), frozenset(CALLERS) - {"public", None}, frozenset()),
    ("agreements", lambda s, c: ("GET", "/agreements", {}), READERS, frozenset()),
    ("agreement", lambda s, c: ("GET", "/agreements/small", {}), READERS, frozenset()),
    ("versions", lambda s, c: ("GET", "/agreements/small/versions", {}), READERS, frozenset()),
    ("zones", lambda s, c: ("GET", "/agreements/small/zones", {}), READERS, frozenset()),
    (
        "upload agreement",
        lambda s, c: ("POST", "/agreements", {"json": {"files": s.files}}),
        frozenset({"admin"}),
        frozenset(),
    ),
    (
        "submit one",
        lambda s, c: ("POST", "/incidents", {"json": rec(f"one-{c}")}),
        SUBMITTERS,
        frozenset(),
    ),
    (
        "submit batch",
        lambda s, c: ("POST", "/incidents/batch", {"json": {"incidents": [rec(f"b-{c}")]}}),
        SUBMITTERS,
        frozenset(),
    ),
    ("list incidents", lambda s, c: ("GET", "/incidents", {}), READERS - {"liaison"}, frozenset()),
    (
        "incident in sector",
        lambda s, c: ("GET", f"/incidents/{s.north}", {}),
        READERS - {"liaison"},
        frozenset(),
    ),
    (
        "incident outside sector",
        lambda s, c: ("GET", f"/incidents/{s.south}", {}),
        STAFF,
        frozenset({"monitor"}),
    ),
    (
        "review",
        lambda s, c: ("POST", f"/incidents/{s.review_pk[c]}/review", {"json": {"action": "verify"}}),
        STAFF,
        frozenset(),
    ),
    ("history", lambda s, c: ("GET", f"/incidents/{s.north}/history", {}), STAFF, frozenset()),
    (
        "submit observations",
        lambda s, c: ("POST", "/incidents/observations", {"json": {"observations": []}}),
        SUBMITTERS,
        frozenset(),
    ),
    (
        "withdrawals",
        lambda s, c: ("POST", "/incidents/withdrawals", {"json": {"status": 200, "data": []}}),
        STAFF,
        frozenset(),
    ),
    ("list findings", lambda s, c: ("GET", "/findings", {}), READERS, frozenset()),
    ("released finding", lambda s, c: ("GET", f"/findings/{s.released}", {}), MAPPED, frozenset()),
    (
        "unreleased finding",
        lambda s, c: ("GET", f"/findings/{s.unreleased}", {}),
        READERS - {"liaison"},
        frozenset({"liaison", "public", None}),
    ),
    (
        "statistics",
        lambda s, c: ("GET", "/statistics/daily", {"params": {"start": str(DAY), "end": str(DAY)}}),
        frozenset({"admin", "analyst", "liaison"}),
        frozenset(),
    ),
    ("published reports", lambda s, c: ("GET", "/reports", {}), PUBLISHED, frozenset()),
    ("published report", lambda s, c: ("GET", f"/reports/{DAY}", {}), PUBLISHED, frozenset()),
    ("draft report", lambda s, c: ("GET", f"/reports/{DAY}/draft", {}), STAFF, frozenset()),
    ("publish report", lambda s, c: ("POST", f"/reports/{_day_for(c)}/publish", {}), STAFF, frozenset()),
    ("list tokens", lambda s, c: ("GET", "/tokens", {}), frozenset({"admin"}), frozenset()),
    (
        "create token",
        lambda s, c: ("POST", "/tokens", {"json": {"role": "monitor", "name": f"m-{c}"}}),
        frozenset({"admin"}),
        frozenset(),
    ),
    ("ledger roots", lambda s, c: ("GET", "/ledger/roots", {}), PUBLISHED, frozenset()),
    ("close days", lambda s, c: ("POST", "/ledger/close", {}), frozenset({"admin"}), frozenset()),
    ("entry proof", lambda s, c: ("GET", "/ledger/entries/1/proof", {}), STAFF, frozenset()),
    (
        "released finding proof",
        lambda s, c: ("GET", f"/findings/{s.released}/proof", {}),
        frozenset({"admin", "analyst", "liaison"}),
        frozenset(),
    ),
    (
        "unreleased finding proof",
        lambda s, c: ("GET", f"/findings/{s.unreleased}/proof", {}),
        STAFF,
        frozenset({"liaison"}),
    ),
    ("verify ledger", lambda s, c: ("GET", "/ledger/verify", {}), frozenset({"admin"}), frozenset()),
    (
        "revoke token",
        lambda s, c: ("DELETE", f"/tokens/{s.tokens[c]}", {}),
        frozenset({"admin"}),
        frozenset(),
    ),
    # the dashboard's data, exports and PDFs (issue 6)
    ("dashboard legend", lambda s, c: ("GET", "/dashboard/legend", {}), MAPPED, frozenset()),
    ("dashboard layers", lambda s, c: ("GET", "/dashboard/layers", {}), MAPPED, frozenset()),
    ("dashboard features", lambda s, c: ("GET", "/dashboard/features", {}), MAPPED, frozenset()),
    ("dashboard timeline", lambda s, c: ("GET", "/dashboard/timeline", {}), MAPPED, frozenset()),
    (
        "dashboard clusters",
        lambda s, c: ("GET", "/dashboard/clusters", {"params": {"zoom": 6}}),
        MAPPED,
        frozenset(),
    ),
    # the patrols' tracks (issue 19): the mission's roles only (a monitor: their own devices)
    (
        "dashboard patrols",
        lambda s, c: ("GET", "/dashboard/patrols", {"params": {"start": str(DAY)}}),
        STAFF | {"monitor"},
        frozenset(),
    ),
    ("review queue", lambda s, c: ("GET", "/dashboard/queue", {}), STAFF, frozenset()),
    ("export", lambda s, c: ("GET", "/export", {"params": {"format": "csv"}}), READERS, frozenset()),
    ("published report pdf", lambda s, c: ("GET", f"/reports/{DAY}/pdf", {}), PUBLISHED, frozenset()),
    ("draft report pdf", lambda s, c: ("GET", f"/reports/{DAY}/draft/pdf", {}), STAFF, frozenset()),
    # the planner's view (issue 7): candidate lines are for the mission's planners only
    ("planner scenarios", lambda s, c: ("GET", "/planner/scenarios", {}), STAFF, frozenset()),
    ("planner compare", lambda s, c: ("GET", "/planner/compare", {}), STAFF, frozenset()),
    # sensors, detections, acoustic localisation, fused events
    ("sensors", lambda s, c: ("GET", "/sensors", {}), STAFF | {"monitor"}, frozenset()),
    (
        "register sensors",
        lambda s, c: ("POST", "/sensors", {"json": {"sensors": [_sensor(0)]}}),
        frozenset({"admin", "sensor"}),
        frozenset(),
    ),
    (
        "submit detections",
        lambda s, c: (
            "POST",
            "/detections",
            {
                "json": {
                    "detections": [
                        {
                            "sensor_id": "S-0",
                            "detection_id": f"d-{c}",
                            "arrival_time": f"{DAY}T10:00:00Z",
                        }
                    ]
                }
            },
        ),
        frozenset({"admin", "sensor"}),
        frozenset(),
    ),
    ("detections", lambda s, c: ("GET", "/detections", {}), STAFF, frozenset()),
    (
        "locate",
        lambda s, c: (
            "POST",
            "/acoustic/locate",
            {"json": {"start": f"{DAY}T11:00:00Z", "end": f"{DAY}T12:00:00Z", "temperature_c": 5}},
        ),
        STAFF,
        frozenset(),
    ),
    (
        "event in sector",
        lambda s, c: ("GET", f"/events/{s.event}", {}),
        STAFF | {"monitor"},
        frozenset(),
    ),
    (
        "event outside sector",
        lambda s, c: ("GET", f"/events/{s.event_south}", {}),
        STAFF,
        frozenset({"monitor"}),
    ),
    (
        "split event",
        lambda s, c: (
            "POST",
            f"/events/{s.split[c][0]}/split",
            {"json": {"incidents": [s.split[c][1]]}},
        ),
        STAFF,
        frozenset(),
    ),
    (
        "merge events",
        lambda s, c: ("POST", "/events/merge", {"json": {"events": s.merge[c]}}),
        STAFF,
        frozenset(),
    ),
    ("possible duplicates", lambda s, c: ("GET", "/duplicates", {}), STAFF, frozenset()),
    # evidence files (issue 21): liaisons and the public see released ones only
    (
        "attach files",
        lambda s, c: (
            "POST",
            f"/incidents/{s.north}/attachments",
            {"files": {"file": ("p.jpg", photo(seed=9), "image/jpeg")}},
        ),
        STAFF | {"monitor"},
        frozenset(),
    ),
    (
        "list attachments",
        lambda s, c: ("GET", f"/incidents/{s.north}/attachments", {}),
        PUBLISHED,
        frozenset(),
    ),
    (
        "list attachments outside sector",
        lambda s, c: ("GET", f"/incidents/{s.south}/attachments", {}),
        PUBLISHED - {"monitor"},
        frozenset({"monitor"}),
    ),
    (
        "released attachment",
        lambda s, c: ("GET", f"/attachments/{s.released_sha}", {}),
        PUBLISHED,
        frozenset(),
    ),
    (
        "unreleased attachment",
        lambda s, c: ("GET", f"/attachments/{s.unreleased_sha}", {}),
        STAFF | {"monitor"},
        frozenset({"liaison", "public", None}),
    ),
    (
        "start a resumable upload",
        lambda s, c: ("POST", f"/incidents/{s.north}/uploads", {"headers": {"Upload-Length": "10"}}),
        STAFF | {"monitor"},
        frozenset(),
    ),
    (
        "start a resumable upload outside sector",
        lambda s, c: ("POST", f"/incidents/{s.south}/uploads", {"headers": {"Upload-Length": "10"}}),
        STAFF,
        frozenset({"monitor"}),
    ),
    (
        # uploads are private to whoever started them (the admin): other staff get 404
        "resumable upload's offset",
        lambda s, c: ("HEAD", s.upload, {}),
        frozenset({"admin"}),
        frozenset({"analyst", "monitor"}),
    ),
    (
        "resumable upload's chunk",
        lambda s, c: (
            "PATCH",
            s.upload,
            {
                "headers": {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
                "content": b"x",
            },
        ),
        frozenset({"admin"}),
        frozenset({"analyst", "monitor"}),
    ),
    (
        "release attachment",
        lambda s, c: ("POST", f"/attachments/{s.attachment}/release", {}),
        STAFF,
        frozenset(),
    ),
    (
        # No pair is seeded: staff pass the permission check and find no such pair (404).
        "decide a possible duplicate",
        lambda s, c: ("POST", "/duplicates/2000000000/decide", {"json": {"same": False}}),
        frozenset(),
        STAFF,
    ),
]


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: str(c))
@pytest.mark.parametrize(("name", "call", "allowed", "hidden"), MATRIX, ids=[m[0] for m in MATRIX])
def test_matrix(
    seeded: tuple[Api, Seed],
    name: str,
    call: Call,
    allowed: frozenset[str | None],
    hidden: frozenset[str | None],
    caller: str | None,
) -> None:
    api, seed = seeded
    method, path, kw = call(seed, str(caller))
    headers = {**api.h(caller), **kw.pop("headers", {})}
    r = api.client.request(method, API + path, headers=headers, **kw)
    if caller in allowed:
        assert 200 <= r.status_code < 300, f"{name} as {caller}: {r.status_code} {r.text[:300]}"
    else:
        expected = 404 if caller in hidden else 401 if caller is None else 403
        assert r.status_code == expected, f"{name} as {caller}: {r.status_code} {r.text[:300]}"
        if method != "HEAD":  # a HEAD answer has no body
            assert r.json()["error"]["status"] == expected


def test_every_route_is_in_the_matrix(seeded: tuple[Api, Seed]) -> None:
    api, _ = seeded
    spec = api.client.get(f"{API}/openapi.json").json()
    # Every /api/v1 route needs a row; OGC API - Features (/ogc) has its own role table in test_ogc.
    routes = {
        (m.upper(), p.removeprefix(API))
        for p, ops in spec["paths"].items()
        if p.startswith(API + "/")
        for m in ops
    }
    seed = seeded[1]
    covered = set()
    for _, call, _, _ in MATRIX:
        method, path, _ = call(seed, "admin")
        covered.add((method, path))
    templates = {(m, p) for m, p in routes}

    # Map concrete paths back to templates by segment count and fixed parts.
    def matches(tpl: str, concrete: str) -> bool:
        a, b = tpl.strip("/").split("/"), concrete.strip("/").split("/")
        return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))

    missing = [(m, p) for m, p in templates if not any(m == cm and matches(p, cp) for cm, cp in covered)]
    assert not missing, f"add a row to MATRIX (who may call it) for each of these routes: {missing}"


# -- what each role sees ----------------------------------------------------------------------


def test_monitor_sees_own_sector_and_own_submissions(api: Api) -> None:
    api.post("/incidents/batch", json={"incidents": [rec("n"), rec("s", lat=48.4)]})
    api.post("/incidents", json=rec("mine-south", lat=48.41), role="monitor")
    seen = {x["report_id"] for x in api.get("/incidents", role="monitor").json()["items"]}
    assert seen == {"n", "mine-south"}
    seen_south = {x["report_id"] for x in api.get("/incidents", role="monitor_south").json()["items"]}
    assert seen_south == {"s", "mine-south"}
    fs = api.get("/findings", role="monitor").json()["items"]
    assert {f["report_id"] for f in fs} <= {"n", "mine-south"}


def test_liaison_sees_released_findings_only_redacted(api: Api) -> None:
    api.post(
        "/incidents/batch",
        json={
            "incidents": [
                rec("a", narrative="patrol 7 at grid 123"),
                rec("b", lat=48.4, source_type="party_complaint"),
            ]
        },
    )
    items = api.get("/findings", role="analyst").json()["items"]
    assert len(items) == 2
    a = next(f for f in items if f["report_id"] == "a")
    assert api.get("/findings", role="liaison").json()["items"] == []
    api.post(f"/incidents/{a['incident_pk']}/review", json={"action": "verify"})
    api.post(f"/incidents/{a['incident_pk']}/review", json={"action": "release"})
    for liaison in ("liaison", "liaison_b"):  # released to both parties alike
        seen = api.get("/findings", role=liaison).json()["items"]
        assert [f["pk"] for f in seen] == [a["pk"]]
        assert seen[0]["report_id"] is None and seen[0]["incident_pk"] is None
        assert seen[0]["source_type"] is None
        assert "patrol 7" not in json.dumps(seen)
    stats = api.get(
        "/statistics/daily", role="liaison", params={"start": str(DAY), "end": str(DAY)}
    ).json()
    assert stats[0]["findings"] == 1 and stats[0]["incidents"] == 2  # counts, never positions
    assert api.get("/incidents", role="liaison").status_code == 403


def test_tokens_through_the_api(api: Api) -> None:
    made = api.post("/tokens", json={"role": "liaison", "name": "lo-b", "party": "B"})
    assert made.status_code == 201
    secret, tok_id = made.json()["token"], made.json()["id"]
    me = api.client.get(f"{API}/me", headers={"Authorization": f"Bearer {secret}"}).json()
    assert me["role"] == "liaison" and me["party"] == "B"
    listed = api.get("/tokens").json()
    assert tok_id in {t["id"] for t in listed} and secret not in json.dumps(listed)
    bad = api.post("/tokens", json={"role": "monitor", "name": "m", "party": "A"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "party"
    assert api.delete(f"/tokens/{tok_id}").json()["revoked_at"] is not None
    r = api.client.get(f"{API}/me", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert api.delete("/tokens/tok_nope").status_code == 404
    with api.ctx.db.read() as session:
        assert [h.action for h in history(session, "token", tok_id)] == ["create", "revoke"]


class HeaderAuthenticator:
    """A stand-in for an OpenID Connect authenticator: claims come from the credential itself."""

    def authenticate(self, session: Session, credential: str) -> Principal | None:
        if not credential.startswith("oidc."):
            return None
        _, role, sector = credential.split(".")
        return Principal(subject=f"oidc:{role}", role=Role(role), sector=sector or None)


def test_another_authenticator_plugs_in(api: Api) -> None:
    api.ctx.authenticators = (HeaderAuthenticator(), *api.ctx.authenticators)
    api.post("/incidents/batch", json={"incidents": [rec("n"), rec("s", lat=48.4)]})
    r = api.client.get(f"{API}/incidents", headers={"Authorization": "Bearer oidc.monitor.south"})
    assert r.status_code == 200 and {x["report_id"] for x in r.json()["items"]} == {"s"}
    r = api.client.get(f"{API}/tokens", headers={"Authorization": "Bearer oidc.analyst."})
    assert r.status_code == 403
    assert api.get("/tokens").status_code == 200  # API tokens still work beside it
