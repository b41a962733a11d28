"""OpenAPI links: how a record one operation answers is read, changed or removed by another.

An OpenAPI 3.1 link (``responses.<status>.links``) names a target operation and fills its
parameters (or body) from the source's request or response with runtime expressions such as
``$response.body#/results/0/pk``. Clients and generators follow them (Swagger UI shows them;
schemathesis's stateful run walks them: submit a batch, read the incident, review it, read its
findings and their ledger proofs, publish the day, ...). :data:`LINKS` is the table of them;
:func:`add_links` writes it into the document FastAPI generates and refuses a link whose operation
or parameter does not exist, so a renamed route cannot leave a dangling link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LINKS", "Link", "add_links"]

_A = "/api/v1"


@dataclass(frozen=True)
class Link:
    """One link: ``source`` (method, path, response status) to ``target`` (method, path)."""

    name: str
    source: tuple[str, str, str]
    target: tuple[str, str]
    parameters: dict[str, str] = field(default_factory=dict)
    #: a body (with runtime expressions in its strings) merged into the generated one
    request_body: Any = None
    description: str = ""


def _from(source: tuple[str, str, str], *links: tuple[str, str, str, dict[str, str]]) -> list[Link]:
    """Links that leave ``source``: (name, target method, target path, parameters) each."""
    return [Link(name, source, (m, p), params) for name, m, p, params in links]


def _incident_links(expr: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """Every operation on one incident, its pk taken from ``expr``."""
    pk = {"pk": expr}
    return [
        ("GetIncident", "get", f"{_A}/incidents/{{pk}}", pk),
        ("IncidentHistory", "get", f"{_A}/incidents/{{pk}}/history", pk),
        ("ReviewIncident", "post", f"{_A}/incidents/{{pk}}/review", pk),
        ("ListAttachments", "get", f"{_A}/incidents/{{pk}}/attachments", pk),
        ("Attach", "post", f"{_A}/incidents/{{pk}}/attachments", pk),
        ("BeginUpload", "post", f"{_A}/incidents/{{pk}}/uploads", pk),
    ]


def _attachment_links(prefix: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """Download and release an attachment the response holds at ``prefix`` (a JSON pointer)."""
    return [
        ("DownloadAttachment", "get", f"{_A}/attachments/{{sha256}}",
         {"sha256": f"$response.body#{prefix}/sha256"}),
        ("ReleaseAttachment", "post", f"{_A}/attachments/{{pk}}/release",
         {"pk": f"$response.body#{prefix}/pk"}),
    ]  # fmt: skip


def _report_links(day: str) -> list[tuple[str, str, str, dict[str, str]]]:
    return [
        ("PublishedReport", "get", f"{_A}/reports/{{day}}", {"day": day}),
        ("PublishedReportPdf", "get", f"{_A}/reports/{{day}}/pdf", {"day": day}),
        ("DraftReport", "get", f"{_A}/reports/{{day}}/draft", {"day": day}),
        ("PublishReport", "post", f"{_A}/reports/{{day}}/publish", {"day": day}),
    ]


def _event_links(expr: str) -> list[tuple[str, str, str, dict[str, str]]]:
    return [
        ("GetEvent", "get", f"{_A}/events/{{event_id}}", {"event_id": expr}),
        ("SplitEvent", "post", f"{_A}/events/{{event_id}}/split", {"event_id": expr}),
    ]


def _build() -> tuple[Link, ...]:
    batch = ("post", f"{_A}/incidents/batch", "200")
    one_created = ("post", f"{_A}/incidents", "201")
    one_again = ("post", f"{_A}/incidents", "200")
    incident = ("get", f"{_A}/incidents/{{pk}}", "200")
    review = ("post", f"{_A}/incidents/{{pk}}/review", "200")
    finding = ("get", f"{_A}/findings/{{pk}}", "200")
    findings = ("get", f"{_A}/findings", "200")
    here = "$request.path.pk"
    links = [
        *_from(batch, *_incident_links("$response.body#/results/0/pk")),
        *_from(one_created, *_incident_links("$response.body#/pk")),
        *_from(one_again, *_incident_links("$response.body#/pk")),
        *_from(("post", f"{_A}/incidents/observations", "200"),
               *_incident_links("$response.body#/results/0/pk")),
        *_from(("get", f"{_A}/incidents", "200"), *_incident_links("$response.body#/items/0/pk")),
        *_from(
            incident,
            ("GetFinding", "get", f"{_A}/findings/{{pk}}", {"pk": "$response.body#/findings/0/pk"}),
            ("FindingProof", "get", f"{_A}/findings/{{pk}}/proof",
             {"pk": "$response.body#/findings/0/pk"}),
            ("ReviewIncident", "post", f"{_A}/incidents/{{pk}}/review", {"pk": here}),
            ("IncidentHistory", "get", f"{_A}/incidents/{{pk}}/history", {"pk": here}),
            *_event_links("$response.body#/event_id"),
            *_report_links("$response.body#/day"),
        ),
        *_from(
            review,
            ("GetIncident", "get", f"{_A}/incidents/{{pk}}", {"pk": here}),
            ("IncidentHistory", "get", f"{_A}/incidents/{{pk}}/history", {"pk": here}),
            ("ReviewAgain", "post", f"{_A}/incidents/{{pk}}/review", {"pk": here}),
            ("GetFinding", "get", f"{_A}/findings/{{pk}}", {"pk": "$response.body#/findings/0/pk"}),
            ("FindingProof", "get", f"{_A}/findings/{{pk}}/proof",
             {"pk": "$response.body#/findings/0/pk"}),
            *_report_links("$response.body#/incident/day"),
        ),
        *_from(
            findings,
            ("GetFinding", "get", f"{_A}/findings/{{pk}}", {"pk": "$response.body#/items/0/pk"}),
            ("FindingProof", "get", f"{_A}/findings/{{pk}}/proof",
             {"pk": "$response.body#/items/0/pk"}),
            ("GetIncident", "get", f"{_A}/incidents/{{pk}}",
             {"pk": "$response.body#/items/0/incident_pk"}),
            ("ReviewIncident", "post", f"{_A}/incidents/{{pk}}/review",
             {"pk": "$response.body#/items/0/incident_pk"}),
        ),
        *_from(
            finding,
            ("FindingProof", "get", f"{_A}/findings/{{pk}}/proof", {"pk": here}),
            ("GetIncident", "get", f"{_A}/incidents/{{pk}}", {"pk": "$response.body#/incident_pk"}),
            ("ReviewIncident", "post", f"{_A}/incidents/{{pk}}/review",
             {"pk": "$response.body#/incident_pk"}),
        ),
        *_from(
            ("get", f"{_A}/findings/{{pk}}/proof", "200"),
            ("EntryProof", "get", f"{_A}/ledger/entries/{{seq}}/proof",
             {"seq": "$response.body#/entry/seq"}),
        ),
        # reports: publish a day once, then read it (a second publish is a 409)
        *_from(("post", f"{_A}/reports/{{day}}/publish", "201"),
               *_report_links("$request.path.day")),
        *_from(("get", f"{_A}/reports", "200"), *_report_links("$response.body#/0/day")),
        *_from(("get", f"{_A}/statistics/daily", "200"), *_report_links("$response.body#/0/day")),
        # tokens: create, then revoke (twice: the second answers the same revoked token)
        *_from(("post", f"{_A}/tokens", "201"),
               ("RevokeToken", "delete", f"{_A}/tokens/{{token_id}}",
                {"token_id": "$response.body#/id"})),
        *_from(("delete", f"{_A}/tokens/{{token_id}}", "200"),
               ("RevokeAgain", "delete", f"{_A}/tokens/{{token_id}}",
                {"token_id": "$request.path.token_id"})),
        # ledger: close the days, then prove their entries
        *_from(("post", f"{_A}/ledger/close", "200"),
               ("EntryProof", "get", f"{_A}/ledger/entries/{{seq}}/proof",
                {"seq": "$response.body#/0/last_seq"})),
        *_from(("get", f"{_A}/ledger/roots", "200"),
               ("EntryProof", "get", f"{_A}/ledger/entries/{{seq}}/proof",
                {"seq": "$response.body#/0/first_seq"})),
        # agreements: upload (or list), then read its detail, versions and zones
        *(
            link
            for source, expr in (
                (("post", f"{_A}/agreements", "201"), "$response.body#/agreement/id"),
                (("get", f"{_A}/agreements", "200"), "$response.body#/0/id"),
            )
            for link in _from(
                source,
                ("GetAgreement", "get", f"{_A}/agreements/{{agreement_id}}", {"agreement_id": expr}),
                ("AgreementVersions", "get", f"{_A}/agreements/{{agreement_id}}/versions",
                 {"agreement_id": expr}),
                ("AgreementZones", "get", f"{_A}/agreements/{{agreement_id}}/zones",
                 {"agreement_id": expr}),
            )
        ),
        # acoustic: located events are incidents (and events of fusion)
        *_from(("post", f"{_A}/acoustic/locate", "200"),
               *_incident_links("$response.body#/incidents/0/pk"),
               *_event_links("$response.body#/incidents/0/event_id")),
        # fusion: possible duplicates decided, events merged and split
        *_from(
            ("get", f"{_A}/duplicates", "200"),
            ("DecideDuplicate", "post", f"{_A}/duplicates/{{pair}}/decide",
             {"pair": "$response.body#/items/0/pk"}),
            ("GetIncident", "get", f"{_A}/incidents/{{pk}}", {"pk": "$response.body#/items/0/a/pk"}),
            *_event_links("$response.body#/items/0/a/event_id"),
        ),
        *_from(
            ("post", f"{_A}/duplicates/{{pair}}/decide", "200"),
            ("DecideAgain", "post", f"{_A}/duplicates/{{pair}}/decide", {"pair": "$request.path.pair"}),
            *_event_links("$response.body#/events/0/id"),
        ),
        *_from(("post", f"{_A}/events/merge", "200"), *_event_links("$response.body#/events/0/id")),
        *_from(("post", f"{_A}/events/{{event_id}}/split", "200"),
               *_event_links("$response.body#/events/1/id"),
               ("GetSplitFrom", "get", f"{_A}/events/{{event_id}}",
                {"event_id": "$request.path.event_id"})),
        *_from(("get", f"{_A}/events/{{event_id}}", "200"),
               ("GetMember", "get", f"{_A}/incidents/{{pk}}",
                {"pk": "$response.body#/members/0/pk"})),
        # attachments: filed in one request or by a resumable upload, then downloaded and released
        *_from(("post", f"{_A}/incidents/{{pk}}/attachments", "201"),
               *_attachment_links("/0"),
               ("ListAttachments", "get", f"{_A}/incidents/{{pk}}/attachments", {"pk": here})),
        *_from(("get", f"{_A}/incidents/{{pk}}/attachments", "200"), *_attachment_links("/0")),
        *_from(("post", f"{_A}/attachments/{{pk}}/release", "200"),
               ("DownloadReleased", "get", f"{_A}/attachments/{{sha256}}",
                {"sha256": "$response.body#/released_sha256"})),
        *_from(("post", f"{_A}/incidents/{{pk}}/uploads", "201"),
               ("UploadOffset", "head", f"{_A}/uploads/{{upload_id}}",
                {"upload_id": "$response.body#/id"}),
               ("UploadChunk", "patch", f"{_A}/uploads/{{upload_id}}",
                {"upload_id": "$response.body#/id"})),
        *_from(("patch", f"{_A}/uploads/{{upload_id}}", "204"),
               ("UploadOffset", "head", f"{_A}/uploads/{{upload_id}}",
                {"upload_id": "$request.path.upload_id"}),
               ("UploadChunk", "patch", f"{_A}/uploads/{{upload_id}}",
                {"upload_id": "$request.path.upload_id"})),
        *_from(("patch", f"{_A}/uploads/{{upload_id}}", "201"), *_attachment_links("")),
        # OGC API - Features: collections, then their items and one item
        *_from(
            ("get", "/ogc/collections", "200"),
            *(
                (name, "get", path, {"collection_id": "$response.body#/collections/0/id"})
                for name, path in (
                    ("Collection", "/ogc/collections/{collection_id}"),
                    ("Items", "/ogc/collections/{collection_id}/items"),
                    ("Queryables", "/ogc/collections/{collection_id}/queryables"),
                )
            ),
        ),
        *_from(("get", "/ogc/collections/{collection_id}/items", "200"),
               ("Item", "get", "/ogc/collections/{collection_id}/items/{feature_id}",
                {"collection_id": "$request.path.collection_id",
                 "feature_id": "$response.body#/features/0/id"})),
        # links that fill a body: a finding of the incident reviewed alone, an incident withdrawn
        # by its report id, a duplicate pair's events merged, an event's first member split off,
        # a detection at a registered sensor
        Link("ReviewFinding", incident, ("post", f"{_A}/incidents/{{pk}}/review"), {"pk": here},
             {"findings": ["$response.body#/findings/0/pk"]}),
        Link("WithdrawIncident", incident, ("post", f"{_A}/incidents/withdrawals"),
             request_body={"data": [{"event_id_cnty": "$response.body#/report_id",
                                     "deleted_timestamp": "1741600000"}]}),
        Link("WithdrawFirst", batch, ("post", f"{_A}/incidents/withdrawals"),
             request_body={"data": [{"event_id_cnty": "$response.body#/results/0/id",
                                     "deleted_timestamp": "1741600000"}]}),
        Link("MergePair", ("get", f"{_A}/duplicates", "200"), ("post", f"{_A}/events/merge"),
             request_body={"events": ["$response.body#/items/0/a/event_id",
                                      "$response.body#/items/0/b/event_id"]}),
        Link("SplitMember", ("get", f"{_A}/events/{{event_id}}", "200"),
             ("post", f"{_A}/events/{{event_id}}/split"), {"event_id": "$request.path.event_id"},
             {"incidents": ["$response.body#/members/0/pk"]}),
        Link("DetectAtSensor", ("post", f"{_A}/sensors", "200"), ("post", f"{_A}/detections"),
             request_body={"detections": [{"sensor_id": "$response.body#/results/0/id",
                                           "detection_id": "linked-1",
                                           "arrival_time": "2025-03-01T10:00:00Z"}]}),
    ]  # fmt: skip
    # a source may reach one target by two routes of this table: keep the first
    seen: set[tuple[tuple[str, str, str], str]] = set()
    out: list[Link] = []
    for link in links:
        if (link.source, link.name) not in seen:
            seen.add((link.source, link.name))
            out.append(link)
    return tuple(out)


#: The links the API's OpenAPI document carries.
LINKS = _build()


def add_links(spec: dict[str, Any], links: tuple[Link, ...] = LINKS) -> dict[str, Any]:
    """``spec`` (an OpenAPI 3.1 document as FastAPI writes it) with ``links`` in its responses.

    Raises
    ------
    ValueError
        When a link names an operation, a response status or a parameter the document does not
        have (a route was renamed or removed).
    """
    paths = spec["paths"]
    problems: list[str] = []
    for link in links:
        method, path, status = link.source
        source = paths.get(path, {}).get(method)
        target = paths.get(link.target[1], {}).get(link.target[0])
        where = (
            f"link {link.name} of {method.upper()} {path} -> {link.target[0].upper()} {link.target[1]}"
        )
        if source is None or target is None:
            problems.append(f"{where}: no such operation")
            continue
        response = source["responses"].get(status)
        if response is None:
            problems.append(f"{where}: the source has no {status} response")
            continue
        names = {p["name"] for p in target.get("parameters", [])}
        missing = sorted({n.rpartition(".")[2] for n in link.parameters} - names, key=str)
        if missing:
            problems.append(f"{where}: the target has no parameter {', '.join(missing)}")
            continue
        definition: dict[str, Any] = {
            "operationId": target["operationId"],
            "parameters": dict(link.parameters),
        }
        if link.request_body is not None:
            definition["requestBody"] = link.request_body
        if link.description:
            definition["description"] = link.description
        response.setdefault("links", {})[link.name] = definition
    if problems:
        raise ValueError("OpenAPI links out of date:\n" + "\n".join(problems))
    return spec
