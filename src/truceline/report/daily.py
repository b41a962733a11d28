"""The daily report: one day's incidents and findings as a self-contained, print-ready HTML page.

:func:`render_daily_html` formats a :class:`DayReport` (built by the store, or by
:func:`day_findings` from a classified batch) with the ``daily.html`` Jinja2 template. The page
carries its own CSS and its figures as base64 PNG data URIs, runs no script and fetches nothing, so
the same HTML can be archived, mailed or printed to PDF unchanged. :func:`render_map_png` and
:func:`render_trend_png` draw the figures with matplotlib's object-oriented API on the Agg canvas
(no pyplot state, nothing to close, safe in threads).

Sections follow a monitoring mission's daily report: summary, map, findings by rule, party and
sector, weapons in violation of withdrawal lines, fire across the line, restrictions of movement,
civilian harm, other findings and the trend over the previous days. An empty section
says "None recorded.".
"""

from __future__ import annotations

import datetime as dt
import math
import textwrap
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import shapely
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch
from matplotlib.patheffects import withStroke
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from truceline.core.agreement import Agreement, CompiledVersion, RuleType
from truceline.core.attribution import UNDETERMINED
from truceline.core.geodesy import GEOD, LineIndex
from truceline.core.incidents import IncidentBatch, Kind
from truceline.core.probability import ICD203_TERMS, VIOLATION_P, icd203_term
from truceline.core.rules import Classification, FindingNumbers
from truceline.core.times import as_utc, utc_now
from truceline.report.basemap import draw_basemap
from truceline.report.figures import data_uri, png_bytes, polygon_path, polygons

__all__ = [
    "DayAttachment",
    "DayFinding",
    "DayReport",
    "LedgerDay",
    "LedgerHead",
    "LedgerSummary",
    "day_findings",
    "map_figure",
    "render_daily_html",
    "render_map_png",
    "render_trend_png",
]

NONE_RECORDED = "None recorded."

_CIVILIAN_KINDS = (Kind.civilian_casualty.value, Kind.damage.value)
#: Rule types with a section of their own; the rest go to "Other findings".
_OWN_SECTION = frozenset(
    {RuleType.withdrawal.value, RuleType.fire_across.value, RuleType.movement_restriction.value}
)

# Colour-blind-safe (Okabe-Ito) colours: the parties first, then third actors.
_LEFT_COLOUR = "#0072B2"
_RIGHT_COLOUR = "#D55E00"
_UNDETERMINED_COLOUR = "#7F7F7F"
_OTHER_COLOURS = ("#CC79A7", "#009E73", "#E69F00", "#56B4E9", "#F0E442", "#000000")
_ZONE_COLOURS = ("#F2D16B", "#B9A3D9", "#9ED4C4", "#E8A6A6", "#C9D97A", "#A9C4E8")
_RULE_MARKERS = {
    RuleType.fire_across.value: "*",
    RuleType.withdrawal.value: "s",
    RuleType.zone_ban.value: "D",
    RuleType.count_cap.value: "P",
    RuleType.drone_flight.value: "v",
    RuleType.movement_restriction.value: "o",
}
_MAP_DPI = 150


@dataclass(frozen=True)
class DayFinding:
    """One finding of the day: the incident's facts and the rule engine's verdict.

    ``distance_km`` is the incident's signed geodesic distance to the line, positive on the left
    side; ``observed_at`` is UTC (a naive datetime is read as UTC). ``numbers`` are the numbers the
    rule engine gave the finding (what its explanation states); None for a finding recorded before
    findings carried them, which the tables show by its explanation alone.
    """

    incident_id: str
    observed_at: dt.datetime
    lon: float
    lat: float
    kind: str
    weapon_class: str | None
    source_type: str
    sector: str
    side_party: str
    distance_km: float
    rule_id: str
    rule_type: str
    responsible: str
    probability: float
    explanation: str
    ledger_ref: str | None = None
    numbers: FindingNumbers | None = None
    #: The second fix of an ambiguous incident (an acoustic event whose likelihood has two modes,
    #: e.g. the mirror image across a near-linear array): position and probability; None when
    #: the incident has one fix.
    alt_lon: float | None = None
    alt_lat: float | None = None
    alt_weight: float | None = None


@dataclass(frozen=True)
class DayAttachment:
    """An evidence file of one of the day's incidents, as the report lists it.

    ``sha256`` is the hash of the file as filed (its ledger entry's key); ``served_sha256`` that
    of the copy released to the parties when it differs (location metadata removed).
    ``incident_id`` is the report's own id in the internal edition, the attachment's number in
    the published one.
    """

    incident_id: str
    media_type: str
    size_bytes: int
    sha256: str
    filed_at: dt.datetime
    consistent: bool | None
    consistency: str
    released: bool
    served_sha256: str | None = None
    filename: str = ""
    ledger_ref: str | None = None


@dataclass(frozen=True)
class LedgerDay:
    """One day of the tamper-evident ledger that holds entries of this report's findings.

    ``day`` is the UTC day the entries were recorded (not the day of the incidents); ``root`` is
    that day's Merkle root, ``None`` while the day is not closed.
    """

    day: dt.date
    n_findings: int
    first_seq: int
    last_seq: int
    root: str | None = None
    n_entries: int | None = None
    checkpoint: bool = False  # ``root`` is a checkpoint of the day so far (it covers these entries)


@dataclass(frozen=True)
class LedgerHead:
    """The ledger's latest signed tree head when the report was made: a closed day's root, or a
    checkpoint of a day not closed yet (the root of its first ``n_entries`` entries)."""

    day: dt.date
    root: str
    n_entries: int
    last_seq: int
    checkpoint: bool = False
    signed: bool = False


@dataclass(frozen=True)
class LedgerSummary:
    """Where the report's findings are in the ledger, and the report day's own root.

    ``root``/``n_entries``: the root of the report's day (``None``: not closed yet, or no entries
    that day); ``days``: the ledger days holding the findings' entries; ``missing``: findings
    without an entry (recorded before the store kept a ledger).
    """

    root: str | None
    n_entries: int | None
    days: tuple[LedgerDay, ...] = ()
    missing: int = 0
    recorded: int = 0  # entries recorded on the report's day so far (closed or not)
    public_key: str | None = None  # the mission's Ed25519 key that signs the daily roots (hex)
    latest: LedgerHead | None = None  # the newest root or checkpoint of the whole ledger


@dataclass(frozen=True)
class DayReport:
    """Everything the daily report shows, independent of where it was stored.

    ``trend`` lists previous days (this one included) with the count of findings per responsible
    party; ``rejected`` counts reports rejected by analysts that day. ``edition`` says who it is
    for: ``internal`` (the mission's draft: every finding, reviewed or not), ``published`` (only the
    findings released to the parties; ``withheld`` counts the day's findings left out) or ``None``
    (built from a file, without a review workflow).
    """

    agreement: Agreement
    day: dt.date
    n_incidents: int
    incidents_by_kind: dict[str, int]
    findings: list[DayFinding]
    trend: list[tuple[dt.date, dict[str, int]]]
    rejected: int = 0
    generated_at: dt.datetime | None = None
    ledger: LedgerSummary | None = None  # None: built without a store (no ledger to refer to)
    edition: str | None = None  # internal | published | None (see above)
    withheld: int = 0
    #: Of ``n_incidents``: reports outside the area of application, and reports on a day the
    #: agreement was not in force (no rule judged either; the summary states them apart).
    outside_area: int = 0
    not_in_force: int = 0
    #: Reports of the day their source withdrew (ACLED's deletions applied): kept, not counted in
    #: ``n_incidents``, no findings.
    withdrawn: int = 0
    #: The evidence files of the day's incidents (the published edition: the released ones).
    attachments: tuple[DayAttachment, ...] = ()
    #: Distinct events among ``n_incidents`` (the reports of one fused event count once), and
    #: the explosions they stand for (per event the most any report counts); None: not known
    #: (built from a file, without fusion).
    n_events: int | None = None
    n_explosions: int | None = None
    #: The expected number of distinct events among ``n_events``, from the probabilities of the
    #: pairs that may be one event (the lead says "N explosions in about M events"); None: not
    #: known, the lead gives ``n_events``.
    n_events_expected: float | None = None

    def figures(self) -> dict[str, int | float]:
        """The counts of the report's summary, as its publication's ledger entry records them
        (the findings themselves have their own entries)."""
        out: dict[str, int | float] = {
            "incidents": self.n_incidents,
            "rejected": self.rejected,
            "outside_area": self.outside_area,
            "not_in_force": self.not_in_force,
            "withdrawn": self.withdrawn,
            "findings": len(self.findings),
            "violations": sum(f.probability >= VIOLATION_P for f in self.findings),
            "withheld": self.withheld,
        }
        if self.n_events is not None and self.n_explosions is not None:
            out |= {"events": self.n_events, "explosions": self.n_explosions}
        if self.n_events_expected is not None:
            out["events_expected"] = round(self.n_events_expected, 2)
        return out


def _uncertain(r: DayReport) -> bool:
    """Whether the day's expected count of distinct events differs from the events as fused."""
    return (
        r.n_events_expected is not None
        and r.n_events is not None
        and abs(r.n_events_expected - r.n_events) >= 0.005
    )


def day_findings(batch: IncidentBatch, result: Classification) -> list[DayFinding]:
    """The findings of a classified batch as :class:`DayFinding` rows (``ledger_ref`` unset).

    Parameters
    ----------
    batch
        The incidents given to :func:`truceline.core.rules.classify`.
    result
        Its classification.
    """
    f = result.findings
    i = f.incident
    observed = batch.observed_at[i].astype("datetime64[us]").astype(dt.datetime)
    return [
        DayFinding(
            incident_id=str(batch.id[k]),
            observed_at=t.replace(tzinfo=dt.UTC),
            lon=float(batch.lon[k]),
            lat=float(batch.lat[k]),
            kind=str(batch.kind[k]),
            weapon_class=str(batch.weapon_class[k]) or None,
            source_type=str(batch.source_type[k]),
            sector=str(result.sector[k]),
            side_party=str(result.party_side[k]),
            distance_km=float(result.distance_km[k]),
            rule_id=str(f.rule_id[j]),
            rule_type=str(f.rule_type[j]),
            responsible=str(f.responsible[j]),
            probability=float(f.probability[j]),
            explanation=str(f.explanation[j]),
            numbers=f.numbers_at(j),
        )
        for j, (k, t) in enumerate(zip(i.tolist(), observed.tolist(), strict=True))
    ]


# -- HTML -------------------------------------------------------------------------------------


def render_daily_html(report: DayReport) -> str:
    """The daily report as one self-contained HTML page (inline CSS, embedded PNGs, no script).

    Parameters
    ----------
    report
        The day to report.

    Returns
    -------
    str
        The HTML document; every value from the report is escaped.
    """
    ctx = _Context(report)
    return _environment().get_template("daily.html").render(**ctx.template_vars())


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("truceline.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["km"] = _fmt_km
    env.filters["count"] = _fmt_count
    env.filters["prob"] = _fmt_prob
    return env


def _fmt_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _fmt_km(v: float | None, digits: int = 1) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:,.{digits}f} km"


def _fmt_count(v: int) -> str:
    return f"{v:,}"


def _fmt_prob(p: float) -> str:
    """A probability as a figure to two decimals; never rounded up to certainty or down to nil."""
    if p >= 1.0:
        return "1.00"
    if p <= 0.0:
        return "0.00"
    if p > 0.99:
        return "> 0.99"
    if p < 0.01:
        return "< 0.01"
    return f"{p:.2f}"


def _second_fix_note(f: DayFinding) -> str:
    """How a finding row states its incident's second fix ("" when it has one)."""
    if f.alt_lon is None or f.alt_lat is None:
        return ""
    w = "" if f.alt_weight is None else f", probability {f.alt_weight:.2f}"
    return (
        f"ambiguous: two fixes; the other at {f.alt_lat:.5f}\u00b0 N, {f.alt_lon:.5f}\u00b0 E{w} "
        "(the mirror image across the sensors' line)"
    )


def _humanise(kind: str) -> str:
    return kind.replace("_", " ")


class _Context:
    """The report's tables, computed once for the template."""

    def __init__(self, report: DayReport) -> None:
        self.r = report
        ag = report.agreement
        self.ag = ag
        self.names = {p.id: p.name for p in ag.parties}
        self.names[UNDETERMINED] = "Undetermined"
        self.findings = sorted(
            report.findings, key=lambda f: (as_utc(f.observed_at), f.incident_id, f.rule_id)
        )
        self.parties = _party_order(ag, (f.responsible for f in self.findings))
        cv = ag.version_at(report.day)
        self.rules = {r.id: r for r in cv.rules}
        self.sectors = {s.id: s for s in ag.sectors}
        self.weapons = {w.id: (w.name or w.id) for w in ag.weapon_classes}
        self.colours = _report_colours(report)

    def party(self, pid: str) -> str:
        return self.names.get(pid, pid) if pid else "—"

    def when(self, t: dt.datetime) -> str:
        t = as_utc(t)
        return t.strftime("%H:%M") if t.date() == self.r.day else t.strftime("%d %b %H:%M")

    def what(self, f: DayFinding) -> str:
        kind = _humanise(f.kind)
        return f"{kind} ({self.weapons.get(f.weapon_class, f.weapon_class)})" if f.weapon_class else kind

    def sector(self, sid: str, *, short: bool = True) -> str:
        """A sector's name and nation (``short``: without the name's parenthesised detail)."""
        s = self.sectors.get(sid)
        if s is None:
            return sid or "—"
        label = _short_name(s.name) if (short and s.name) else (s.name or s.id)
        return f"{label} ({s.nation})" if s.nation else label

    def row(self, f: DayFinding) -> dict[str, Any]:
        """Fields every finding row shows."""
        return {
            "incident_id": f.incident_id,
            "ledger_ref": f.ledger_ref,
            "time": self.when(f.observed_at),
            "what": self.what(f),
            "sector": self.sector(f.sector),
            "side": self.party(f.side_party),
            "distance_km": abs(f.distance_km),
            "rule_id": f.rule_id,
            "responsible": self.party(f.responsible),
            "colour": self.colours.get(f.responsible, _UNDETERMINED_COLOUR),
            "probability": f.probability,
            "term": str(icd203_term(f.probability)),
            "explanation": f.explanation,
            "source": _humanise(f.source_type) if f.source_type else "",
            "second_fix": _second_fix_note(f),
        }

    def withdrawal_row(self, f: DayFinding) -> dict[str, Any]:
        """A row of the withdrawal table: where the weapon stood (or fired from) and the limit."""
        row = self.row(f)
        row["weapon"] = self.weapons.get(f.weapon_class or "", f.weapon_class or "—")
        n = f.numbers
        row["has_numbers"] = n is not None
        if n is not None:
            row.update(
                distance_km=n.distance_km,
                limit_km=n.limit_km,
                side=self.party(n.side_party),
                fired=n.distance_of == "origin",
            )
        return row

    def fire_row(self, f: DayFinding) -> dict[str, Any]:
        """A row of the fire table: where the fire came from (and how that is known), where it landed."""
        row = self.row(f)
        n = f.numbers
        row["has_numbers"] = n is not None
        if n is not None:
            row.update(
                from_party=self.party(n.origin_side_party),
                from_how=n.origin_method,
                from_km=n.origin_distance_km,
                from_p=n.origin_probability,
                impact_party=self.party(n.side_party),
                impact_km=n.distance_km,
            )
        return row

    def breakdown(self, key: str, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Findings counted by ``key`` (a DayFinding field) and by responsible party."""
        groups: dict[str, list[DayFinding]] = {}
        for f in self.findings:
            groups.setdefault(getattr(f, key), []).append(f)
        rows = []
        for k in sorted(groups, key=lambda k: (-len(groups[k]), k)):
            fs = groups[k]
            by = Counter(f.responsible for f in fs)
            rows.append(
                {
                    "key": k,
                    "label": (labels or {}).get(k, k) or "—",
                    "n": len(fs),
                    "n_violations": sum(f.probability >= VIOLATION_P for f in fs),
                    "by_party": [by.get(p, 0) for p in self.parties],
                }
            )
        return rows

    def template_vars(self) -> dict[str, Any]:
        r, ag = self.r, self.ag
        fs = self.findings
        generated = as_utc(r.generated_at) if r.generated_at else utc_now()
        # The summary names both parties even on a quiet day.
        summary_parties = list(dict.fromkeys([ag.left, ag.right, *self.parties]))
        violations = Counter(f.responsible for f in fs if f.probability >= VIOLATION_P)
        findings_by = Counter(f.responsible for f in fs)
        weapons = [self.withdrawal_row(f) for f in fs if f.rule_type == RuleType.withdrawal.value]
        fire = [self.fire_row(f) for f in fs if f.rule_type == RuleType.fire_across.value]
        restrictions = [
            self.row(f)
            for f in fs
            if f.rule_type == RuleType.movement_restriction.value
            or f.kind == Kind.movement_restriction.value
        ]
        civilian = [self.row(f) for f in fs if f.kind in _CIVILIAN_KINDS]
        other = [self.row(f) for f in fs if f.rule_type not in _OWN_SECTION]
        rule_labels = {
            rid: f"{rid} — {rule.description}" if rule.description else rid
            for rid, rule in self.rules.items()
        }
        by_rule = self.breakdown("rule_id", rule_labels)
        types = {f.rule_id: f.rule_type for f in fs}
        for row in by_rule:
            row["type"] = _humanise(types[row["key"]])
        sector_labels = {sid: self.sector(sid, short=False) for sid in self.sectors}
        by_sector = self.breakdown("sector", sector_labels)
        by_party = [
            {
                "label": self.party(p),
                "id": p,
                "colour": self.colours.get(p, _UNDETERMINED_COLOUR),
                "n": findings_by.get(p, 0),
                "n_violations": violations.get(p, 0),
                "max_p": max((f.probability for f in fs if f.responsible == p), default=None),
            }
            for p in self.parties
        ]
        kinds = sorted(r.incidents_by_kind.items(), key=lambda kv: (-kv[1], kv[0]))
        trend_parties = _party_order(ag, (p for _, c in r.trend for p in c))
        trend = sorted(r.trend, key=lambda t: t[0])
        return {
            "agreement": ag,
            "day": r.day,
            "day_label": f"{r.day:%A} {r.day.day} {r.day:%B %Y}",
            "generated": generated.strftime("%Y-%m-%d %H:%M UTC"),
            "version": ag.version_at(r.day),
            "terms": _terms_table(),
            "threshold": VIOLATION_P,
            "none_text": NONE_RECORDED,
            "edition": r.edition,
            "withheld": r.withheld,
            "n_incidents": r.n_incidents,
            "n_events": r.n_events,
            # "about M events" where some events may be others' duplicates; else the count as fused
            "events_about": None if not _uncertain(r) else round(r.n_events_expected or 0.0),
            "events_expected": f"{r.n_events_expected or 0.0:.1f}",
            "n_explosions": r.n_explosions,
            "outside_area": r.outside_area,
            "not_in_force": r.not_in_force,
            "withdrawn": r.withdrawn,
            "rejected": r.rejected,
            "n_findings": len(fs),
            "n_incidents_with_findings": len({f.incident_id for f in fs}),
            "n_violations": sum(violations.values()),
            "summary_parties": [
                {
                    "label": self.party(p),
                    "id": p,
                    "n": findings_by.get(p, 0),
                    "n_violations": violations.get(p, 0),
                }
                for p in summary_parties
            ],
            "kinds": [{"label": _humanise(k), "n": n} for k, n in kinds],
            "civilian_kinds": [
                {"label": _humanise(k), "n": r.incidents_by_kind.get(k, 0)} for k in _CIVILIAN_KINDS
            ],
            "map_png": data_uri(render_map_png(r)),
            "parties": [self.party(p) for p in self.parties],
            "by_rule": by_rule,
            "by_party": by_party,
            "by_sector": by_sector,
            "weapons": weapons,
            "fire": fire,
            "restrictions": restrictions,
            "civilian": civilian,
            "other": other,
            "ledger": r.ledger,
            "attachments": [
                {
                    "incident": a.incident_id,
                    "file": a.filename,
                    "type": a.media_type,
                    "size": _fmt_bytes(a.size_bytes),
                    "sha256": a.sha256,
                    "served": a.served_sha256 if a.served_sha256 != a.sha256 else None,
                    "filed": as_utc(a.filed_at).strftime("%Y-%m-%d %H:%M UTC"),
                    "flag": {True: "consistent", False: "inconsistent", None: "—"}[a.consistent],
                    "why": a.consistency,
                    "released": a.released,
                    "ledger_ref": a.ledger_ref,
                }
                for a in r.attachments
            ],
            "n_traceable": sum(1 for f in fs if f.ledger_ref),
            "trend_png": data_uri(render_trend_png(r)) if trend else None,
            "trend_parties": [self.party(p) for p in trend_parties],
            "trend": [
                {
                    "day": d.strftime("%d %b"),
                    "counts": [c.get(p, 0) for p in trend_parties],
                    "total": sum(c.values()),
                    "today": d == r.day,
                }
                for d, c in trend
            ],
        }


def _terms_table() -> list[dict[str, str]]:
    out, lo = [], 0.0
    for hi, name in ICD203_TERMS:
        out.append({"term": name, "range": f"{lo:.2f}–{min(hi, 1.0):.2f}"})
        lo = hi
    return out


def _party_order(ag: Agreement, seen: Iterable[str]) -> list[str]:
    """The parties in a stable order: left, right, third actors (sorted), undetermined last."""
    present = set(seen)
    first = [p for p in (ag.left, ag.right) if p in present]
    others = sorted(present - {ag.left, ag.right, UNDETERMINED})
    return first + others + ([UNDETERMINED] if UNDETERMINED in present else [])


def _report_colours(report: DayReport) -> dict[str, str]:
    """One colour per party for the whole report (tables, map and trend agree)."""
    ag = report.agreement
    colours = {ag.left: _LEFT_COLOUR, ag.right: _RIGHT_COLOUR, UNDETERMINED: _UNDETERMINED_COLOUR}
    seen = [f.responsible for f in report.findings] + [p for _, c in report.trend for p in c]
    others = [p for p in _party_order(ag, seen) if p not in colours]
    for i, p in enumerate(others):
        colours[p] = _OTHER_COLOURS[i % len(_OTHER_COLOURS)]
    return colours


# -- figures ----------------------------------------------------------------------------------


def _line_parts(idx: LineIndex) -> list[tuple[np.ndarray, np.ndarray]]:
    """The densified vertices of each part of a line (parts are not to be joined when drawn)."""
    cuts = np.flatnonzero(idx.is_part_start)[1:]
    return list(zip(np.split(idx.lon, cuts), np.split(idx.lat, cuts), strict=True))


def _view(report: DayReport, cv: CompiledVersion) -> tuple[float, float, float, float]:
    """Map extent (lon/lat box): the line, the zones, the posts and the findings, padded."""
    geoms = [cv.version.line]
    for z in cv.zones.values():
        geoms.extend(g for g in cv.zone_polygons(z).values() if not g.is_empty)
    pts = [(f.lon, f.lat) for f in report.findings if math.isfinite(f.lon + f.lat)]
    pts += [(o.lon, o.lat) for o in report.agreement.observation_posts]
    if pts:
        # A stray point far outside the area of application must not zoom the map out.
        mp = shapely.intersection(shapely.multipoints(pts), shapely.envelope(cv.area))
        if not mp.is_empty:
            geoms.append(mp)
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    # Pad by a share of the larger span, measured in comparable units (lon shrinks with cos lat).
    coslat = math.cos(math.radians((miny + maxy) / 2))
    span = max((maxx - minx) * coslat, maxy - miny, 0.05)
    pad_y = 0.06 * span
    pad_x = pad_y / max(coslat, 0.1)
    return minx - pad_x, miny - pad_y, maxx + pad_x, maxy + pad_y


def _nice_km(target: float) -> float:
    """A round scale-bar length (1, 2, 5 x 10^n km) not above ``target``."""
    if target <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(target))
    return float(max(m * e for m in (1, 2, 5) if m * e <= target))


def render_map_png(report: DayReport, *, width_px: int = 1400) -> bytes:
    """The day's map (:func:`map_figure`) as PNG bytes."""
    return png_bytes(map_figure(report, width_px=width_px), _MAP_DPI)


def map_figure(report: DayReport, *, width_px: int = 1400) -> Figure:
    """The day's map: the line, zones, sectors, observation posts and findings, over Natural Earth
    land, coastlines and borders.

    Parameters
    ----------
    report
        The day to draw; the agreement version in force on ``report.day`` gives the geometry.
    width_px
        Width of the image in pixels; the height follows the area's shape.

    Returns
    -------
    Figure
        The map axes first (lon/lat, aspect corrected for latitude), the legend column on the right.
    """
    ag = report.agreement
    cv = ag.version_at(report.day)
    x0, y0, x1, y1 = _view(report, cv)
    coslat = math.cos(math.radians((y0 + y1) / 2))
    # Layout in inches: the map on the left, the legend column on the right.
    width_in = width_px / _MAP_DPI
    left, right, bottom, top = 0.75, 0.1, 0.4, 0.4
    legend_w = min(2.8, 0.3 * width_in)
    map_w = width_in - left - legend_w - right
    title = textwrap.wrap(f"{ag.name} — {report.day.day} {report.day:%B %Y}", max(int(map_w * 12.5), 20))
    top += 0.17 * len(title)  # and a line for the count of findings
    ratio = (y1 - y0) / ((x1 - x0) * coslat)  # height / width on the ground
    map_h = min(max(map_w * ratio, 4.0), 1.3 * width_in)
    # Widen the view along one axis so that it fills the map box at the true aspect.
    if map_h / map_w > ratio:
        grow = (map_h / map_w * (x1 - x0) * coslat - (y1 - y0)) / 2
        y0, y1 = y0 - grow, y1 + grow
    else:
        grow = (map_w / map_h * (y1 - y0) / coslat - (x1 - x0)) / 2
        x0, x1 = x0 - grow, x1 + grow
    height_in = map_h + bottom + top
    fig = Figure(figsize=(width_in, height_in), dpi=_MAP_DPI)
    FigureCanvasAgg(fig)  # labels and legends measure themselves with its renderer
    ax = fig.add_axes((left / width_in, bottom / height_in, map_w / width_in, map_h / height_in))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(1.0 / coslat, adjustable="box", anchor="W")
    ax.grid(True, color="#DDDDDD", linewidth=0.5, zorder=0)
    # Natural Earth land, coast and borders under the agreement's layers (the sea shows the grid).
    land = draw_basemap(ax, (x0, y0, x1, y1))
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.1f}°E" if v >= 0 else f"{-v:.1f}°W")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.1f}°N" if v >= 0 else f"{-v:.1f}°S")
    view = shapely.box(x0, y0, x1, y1)
    handles: list[Any] = []

    zone_geoms: list[Any] = []
    for i, z in enumerate(cv.zones.values()):
        colour = _ZONE_COLOURS[i % len(_ZONE_COLOURS)]
        geom = shapely.union_all([g for g in cv.zone_polygons(z).values() if not g.is_empty])
        # The two sides' outlines meet along the line with zero-width slivers; close them (~0.1 m).
        geom = shapely.buffer(shapely.buffer(geom, 1e-6), -1e-6)
        geom = shapely.intersection(geom, view)
        zone_geoms.append(geom)
        path = polygon_path(geom)
        if path is None:
            continue
        # add_artist: the view is set (add_patch would walk every vertex to grow the limits)
        ax.add_artist(PathPatch(path, facecolor=colour, edgecolor="none", alpha=0.6, zorder=2))
        ax.add_artist(PathPatch(path, facecolor="none", edgecolor=colour, lw=0.8, zorder=2))
        handles.append(Patch(facecolor=colour, edgecolor=colour, alpha=0.6, label=_wrap(z.name or z.id)))
        # A zone too small to see at this scale (a disengagement area) gets a ring around it.
        minx, miny, maxx, maxy = geom.bounds
        if max(maxx - minx, (maxy - miny) / coslat) < 0.025 * (x1 - x0):
            c = geom.centroid
            ax.scatter(
                [c.x],
                [c.y],
                s=160,
                marker="o",
                facecolors="none",
                edgecolors=colour,
                linewidths=2.0,
                zorder=4,
            )

    for s in ag.sectors:
        path = polygon_path(shapely.intersection(s.geometry, view.buffer(1.0)))
        if path is None:
            continue
        ax.add_artist(
            PathPatch(path, facecolor="none", edgecolor="#555555", lw=0.9, ls=(0, (5, 3)), zorder=3)
        )
    if ag.sectors:
        handles.append(Line2D([], [], color="#555555", lw=0.9, ls=(0, (5, 3)), label="Sector boundary"))

    for lon, lat in _line_parts(cv.line):
        ax.plot(lon, lat, color="black", lw=1.8, zorder=5, solid_capstyle="round")
    handles.insert(0, Line2D([], [], color="black", lw=1.8, label="Line of contact"))
    for side, ref in cv.reference.items():
        for lon, lat in _line_parts(ref):
            ax.plot(lon, lat, color="#333333", lw=1.0, ls=":", zorder=5)
        handles.insert(
            1,
            Line2D(
                [],
                [],
                color="#333333",
                lw=1.0,
                ls=":",
                label=_wrap(f"Reference line ({_name(ag, ag.party_on_side(side))})"),
            ),
        )

    ops = ag.observation_posts
    if ops:
        ax.scatter(
            [o.lon for o in ops],
            [o.lat for o in ops],
            marker="^",
            s=36,
            c="white",
            edgecolors="black",
            linewidths=0.9,
            zorder=7,
        )
        handles.append(
            Line2D([], [], marker="^", ls="", mfc="white", mec="black", ms=7, label="Observation post")
        )

    fs = [
        f
        for f in report.findings
        if math.isfinite(f.lon + f.lat) and x0 <= f.lon <= x1 and y0 <= f.lat <= y1
    ]
    outside = len(report.findings) - len(fs)
    parties = _party_order(ag, (f.responsible for f in fs))
    colours = _report_colours(report)
    rule_types = sorted(
        {f.rule_type for f in fs},
        key=lambda t: list(_RULE_MARKERS).index(t) if t in _RULE_MARKERS else 99,
    )
    for t in reversed(rule_types):  # fire across the line, the headline, drawn on top
        sub = [f for f in fs if f.rule_type == t]
        ax.scatter(
            [f.lon for f in sub],
            [f.lat for f in sub],
            marker=_RULE_MARKERS.get(t, "o"),
            s=[90 if _RULE_MARKERS.get(t) == "*" else 42 for _ in sub],
            c=[
                to_rgba(
                    colours.get(f.responsible, _UNDETERMINED_COLOUR),
                    0.45 + 0.55 * min(max(f.probability, 0.0), 1.0),
                )
                for f in sub
            ],
            edgecolors="black",
            linewidths=0.5,
            zorder=8,
        )

    # the second fixes of ambiguous incidents: hollow, joined to the first
    alts = np.array(
        [(f.lon, f.lat, f.alt_lon, f.alt_lat) for f in fs if f.alt_lon is not None],
        dtype=np.float64,
    ).reshape(-1, 4)
    if len(alts):
        segs = np.stack([alts[:, :2], alts[:, 2:]], axis=1)
        lines = LineCollection(list(segs), linestyles=":", linewidths=0.8, colors="#b00000", zorder=7)
        ax.add_collection(lines)
        ax.scatter(
            alts[:, 2],
            alts[:, 3],
            marker="o",
            s=42,
            facecolors="none",
            edgecolors="#b00000",
            linewidths=1.0,
            linestyle="--",
            zorder=8,
        )
        handles.append(
            Line2D([], [], marker="o", ls=":", color="#b00000", mfc="none", ms=6,
                   label="Second fix (ambiguous)")
        )  # fmt: skip
    markers = [(o.lon, o.lat) for o in ag.observation_posts] + [(f.lon, f.lat) for f in fs]
    _label_map(ax, ag, cv, view, coslat, np.asarray(markers, dtype=np.float64).reshape(-1, 2), land)

    handles_party = [
        Line2D(
            [],
            [],
            marker="o",
            ls="",
            mfc=colours[p],
            mec="black",
            mew=0.5,
            ms=7,
            label=_wrap(f"{_name(ag, p)} ({sum(f.responsible == p for f in fs)})"),
        )
        for p in parties
    ]
    handles_rule = [
        Line2D(
            [],
            [],
            marker=_RULE_MARKERS.get(t, "o"),
            ls="",
            mfc="#BBBBBB",
            mec="black",
            mew=0.5,
            ms=9 if _RULE_MARKERS.get(t) == "*" else 6,
            label=_humanise(t),
        )
        for t in rule_types
    ]
    n = len(report.findings)
    _scale_bar(ax, view, shapely.union_all([cv.version.line, *zone_geoms]))
    count = f"{n} finding{'s' * (n != 1)}" + (f", {outside} outside the map" if outside else "")
    ax.set_title("\n".join([*title, count]), fontsize=10, loc="left")

    # The legend column: the map's furniture, then who (colour) and which rule (shape).
    lax = fig.add_axes(
        (
            (left + map_w + 0.2) / width_in,
            bottom / height_in,
            (legend_w - 0.2) / width_in,
            map_h / height_in,
        )
    )
    lax.axis("off")
    legend_kw: dict[str, Any] = {
        "frameon": False,
        "fontsize": 8,
        "title_fontsize": 8.5,
        "alignment": "left",
        "borderaxespad": 0.0,
    }
    leg1 = lax.legend(handles=handles, title="Map", loc="upper left", **legend_kw)
    lax.add_artist(leg1)
    y = 1.0 - _legend_height(leg1, lax) - 0.04
    if handles_party:
        leg2 = lax.legend(
            handles=handles_party,
            title="Finding: responsible party",
            loc="upper left",
            bbox_to_anchor=(0.0, y),
            **legend_kw,
        )
        lax.add_artist(leg2)
        y -= _legend_height(leg2, lax) + 0.04
        leg3 = lax.legend(
            handles=handles_rule,
            title="Finding: rule type",
            loc="upper left",
            bbox_to_anchor=(0.0, y),
            **legend_kw,
        )
        lax.add_artist(leg3)
        y -= _legend_height(leg3, lax) + 0.04
        lax.text(
            0.0,
            y,
            "Fainter markers: lower probability.",
            fontsize=7,
            color="#555555",
            va="top",
            transform=lax.transAxes,
        )
    else:
        lax.text(0.0, y, "No findings on this day.", fontsize=8, va="top", transform=lax.transAxes)
    return fig


def _name(ag: Agreement, pid: str) -> str:
    if pid == UNDETERMINED:
        return "Undetermined"
    return next((p.name for p in ag.parties if p.id == pid), pid)


def _legend_height(leg: Any, ax: Any) -> float:
    """A legend's height as a fraction of its axes (to stack legends without overlap)."""
    return float(leg.get_window_extent().height / ax.get_window_extent().height)


def _side_label_point(part: Any) -> tuple[float, float]:
    """A point of one side far from the line (where a label overlaps the least)."""
    poly = max(polygons(part), key=lambda g: g.area)
    # The centre of the largest inscribed circle stays clear of the line and the view's edge.
    c = shapely.maximum_inscribed_circle(poly, tolerance=0.01)
    x, y = shapely.get_coordinates(c)[0]
    return float(x), float(y)


#: A white outline that keeps small text readable where it crosses the line or a zone edge.
_HALO = [withStroke(linewidth=2.0, foreground="white")]
_LABEL_BOX = {
    "boxstyle": "round,pad=0.25",
    "fc": "white",
    "ec": "#888888",
    "lw": 0.5,
    "alpha": 0.85,
}


class _Labeller:
    """Greedy label placement: each label takes the first candidate position that stays inside
    the map and overlaps neither a label already placed nor a marker (posts, findings)."""

    def __init__(self, ax: Any, markers_xy: NDArray[np.float64]) -> None:
        self.ax = ax
        ax.apply_aspect()
        self.frame = ax.get_window_extent()
        self.placed: list[Any] = []
        self.markers = ax.transData.transform(markers_xy) if len(markers_xy) else np.zeros((0, 2))

    def _clashes(self, bb: Any, anchor: tuple[float, float] | None) -> int:
        n = sum(bool(bb.overlaps(o)) for o in self.placed)
        if self.markers.size:
            m = self.markers
            inside = (m[:, 0] > bb.x0 - 3) & (m[:, 0] < bb.x1 + 3)
            inside &= (m[:, 1] > bb.y0 - 3) & (m[:, 1] < bb.y1 + 3)
            if anchor is not None:  # the marker a label belongs to is not a clash
                inside &= np.hypot(m[:, 0] - anchor[0], m[:, 1] - anchor[1]) > 1.0
            n += int(inside.sum())
        return n

    def _inside(self, bb: Any) -> bool:
        f = self.frame
        return bool(bb.x0 >= f.x0 and bb.x1 <= f.x1 and bb.y0 >= f.y0 and bb.y1 <= f.y1)

    def _annotate(self, text: str, lon: float, lat: float, dx: float, dy: float, **kw: Any) -> Any:
        """``text`` offset by (dx, dy) points from (lon, lat), aligned away from the anchor."""
        return self.ax.annotate(
            text,
            (lon, lat),
            xytext=(dx, dy),
            textcoords="offset points",
            ha="center" if abs(dx) < 1e-9 else ("left" if dx > 0 else "right"),
            va="center" if abs(dy) < 1e-9 else ("bottom" if dy > 0 else "top"),
            annotation_clip=False,
            **kw,
        )

    def place(
        self,
        text: str,
        candidates: list[tuple[float, float, float, float]],
        *,
        required: bool,
        own_marker: bool = False,
        **kw: Any,
    ) -> None:
        """Place ``text`` at the first free candidate ``(lon, lat, dx_pt, dy_pt)``.

        Without a free candidate, a required label takes the least crowded position inside the
        map; an optional one is dropped.
        """
        best: tuple[int, Any] | None = None
        for lon, lat, dx, dy in candidates:
            t = self._annotate(text, lon, lat, dx, dy, **kw)
            bb = t.get_window_extent().expanded(1.04, 1.08)
            if not self._inside(bb):
                t.remove()
                continue
            anchor = tuple(self.ax.transData.transform((lon, lat))) if own_marker else None
            n = self._clashes(bb, anchor)
            if n == 0:
                self.placed.append(bb)
                if best is not None:
                    best[1].remove()
                return
            if required and (best is None or n < best[0]):
                if best is not None:
                    best[1].remove()
                best = (n, t)
                t.set_visible(False)
            else:
                t.remove()
        if best is None and required and candidates:
            # Nowhere fits inside the map: take the first position, pushed back inside.
            lon, lat, dx, dy = candidates[0]
            t = self._annotate(text, lon, lat, dx, dy, **kw)
            bb, f = t.get_window_extent(), self.frame
            sx = max(f.x0 - bb.x0, 0.0) - max(bb.x1 - f.x1, 0.0)
            sy = max(f.y0 - bb.y0, 0.0) - max(bb.y1 - f.y1, 0.0)
            pt = 72.0 / self.ax.figure.dpi
            t.set_position((dx + sx * pt, dy + sy * pt))
            best = (0, t)
        if best is not None:
            best[1].set_visible(True)
            self.placed.append(best[1].get_window_extent())


def _wrap(label: str) -> str:
    """Legend labels wrapped to the legend column's width."""
    return textwrap.fill(label, 30)


def _short_name(name: str) -> str:
    """A sector's name without its parenthesised detail ("Sector Kharkiv (Lyptsi - ...)")."""
    return name.split(" (", 1)[0].strip() or name


def _label_map(
    ax: Any,
    ag: Agreement,
    cv: CompiledVersion,
    view: Any,
    coslat: float,
    markers_xy: NDArray[np.float64],
    land: Any = None,
) -> None:
    """Write the sides' names, the sectors' names and nations, and the observation posts' ids.

    A side's name goes on its land (side ∩ ``land``), never out at sea, where there is any."""
    lab = _Labeller(ax, markers_xy)
    x0, y0, x1, y1 = view.bounds
    # Which side is whose, faintly, in the open part of each side.
    for side in (1, -1):
        part = shapely.intersection(cv.side_polygon(side), view)
        if part.is_empty:
            continue
        on_land = part if land is None else shapely.intersection(part, land)
        if not polygons(on_land):
            on_land = part  # a side all at sea in this view (it should not happen): label it there
        px, py = _side_label_point(on_land)
        cands = [(px, py, 0.0, 0.0)] + [
            (px + fx * (x1 - x0), py + fy * (y1 - y0), 0.0, 0.0)
            for fx, fy in ((0, 0.08), (0, -0.08), (0.1, 0), (-0.1, 0), (0.1, 0.1), (-0.1, -0.1))
        ]
        # The other candidates only where they are on that side's land too.
        keep = shapely.contains_xy(on_land, [c[0] for c in cands], [c[1] for c in cands])
        cands = [c for c, k in zip(cands, keep, strict=True) if k] or cands[:1]
        pid = ag.party_on_side(side)
        name = _name(ag, pid)
        lab.place(
            f"{name if len(name) <= 24 else pid} side",  # a long name crowds the map: its id
            cands,
            required=True,
            fontsize=11,
            color=_LEFT_COLOUR if side > 0 else _RIGHT_COLOUR,
            alpha=0.6,
            style="italic",
            zorder=1,
        )
    # Sectors: beside the line inside each, on either side of it, near the middle first.
    line = shapely.intersection(cv.version.line, view)
    for s in ag.sectors:
        pieces = [g for g in shapely.get_parts(shapely.intersection(line, s.geometry)) if g.length > 0]
        if not pieces:
            continue
        piece = max(pieces, key=lambda g: g.length)
        cands = []
        for fr in (0.5, 0.35, 0.65, 0.2, 0.8, 0.1, 0.9):
            a, p, b = shapely.line_interpolate_point(
                piece, [max(fr - 0.05, 0), fr, min(fr + 0.05, 1)], normalized=True
            )
            # Across the line on screen: the normal of its local direction (lon scaled by cos lat).
            tx, ty = (b.x - a.x) * coslat, b.y - a.y
            norm = math.hypot(tx, ty) or 1.0
            nx, ny = -ty / norm, tx / norm
            for sign in (1, -1):
                dx, dy = 10 * sign * nx, 10 * sign * ny
                # Snap to the eight compass offsets so that the text aligns on its box edge.
                dx, dy = (dx if abs(dx) >= 4 else 0.0), (dy if abs(dy) >= 4 else 0.0)
                cands.append((p.x, p.y, dx, dy))
        text = _short_name(s.name or s.id) + (f"\n{s.nation}" if s.nation else "")
        lab.place(text, cands, required=True, fontsize=7, color="#222222", zorder=6, bbox=_LABEL_BOX)
    # Observation posts: an id where it fits, none where it would hide something.
    for o in ag.observation_posts:
        if not (x0 <= o.lon <= x1 and y0 <= o.lat <= y1):
            continue
        cands = [(o.lon, o.lat, dx, dy) for dx, dy in ((5, -3), (5, 3), (-5, -3), (-5, 3))]
        lab.place(
            o.id,
            cands,
            required=False,
            own_marker=True,
            fontsize=6,
            color="#222222",
            zorder=7,
            path_effects=_HALO,
        )


def _scale_bar(ax: Any, view: Any, avoid: Any) -> None:
    """A round-length scale bar in the map corner that ``avoid`` (line, zones) leaves most free."""
    x0, y0, x1, y1 = view.bounds
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # The round length: a fifth of the map's width on its central parallel, geodesic (WGS84).
    length_km = _nice_km(float(GEOD.inv(x0, cy, x1, cy)[2]) / 1000.0 / 5)

    def span(lat: float) -> float:
        """Degrees of longitude that measure ``length_km`` along the parallel at ``lat``: the
        bar is true where it is drawn (a lon/lat map's scale changes with latitude)."""
        lon1, _, _ = GEOD.fwd(cx, lat, 90.0, length_km * 1000.0 / 2)
        lon0, _, _ = GEOD.fwd(cx, lat, 270.0, length_km * 1000.0 / 2)
        return float(lon1 - lon0)

    lo, hi = y0 + 0.04 * h, y1 - 0.08 * h
    dx_lo, dx_hi = span(lo), span(hi)
    corners = [
        (x0 + 0.04 * w, lo, dx_lo),
        (x1 - 0.04 * w - dx_lo, lo, dx_lo),
        (x0 + 0.04 * w, hi, dx_hi),
        (x1 - 0.04 * w - dx_hi, hi, dx_hi),
    ]

    def clutter(c: tuple[float, float, float]) -> float:
        box = shapely.box(c[0] - 0.01 * w, c[1] - 0.01 * h, c[0] + c[2] + 0.01 * w, c[1] + 0.05 * h)
        return float(shapely.intersection(avoid, box).area + shapely.intersection(avoid, box).length)

    bx, by, dx = min(corners, key=clutter)
    ax.plot([bx, bx + dx], [by, by], color="black", lw=2.5, solid_capstyle="butt", zorder=9)
    ax.text(
        bx + dx / 2,
        by + 0.012 * h,
        f"{length_km:g} km",
        ha="center",
        va="bottom",
        fontsize=7,
        zorder=9,
        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
    )


def render_trend_png(report: DayReport, *, width_px: int = 1100) -> bytes:
    """Findings per day and responsible party over the report's trend window, as PNG bytes.

    Parameters
    ----------
    report
        Its ``trend`` gives the days and counts; the report's day is outlined.
    width_px
        Width of the image in pixels.
    """
    ag = report.agreement
    trend = sorted(report.trend, key=lambda t: t[0])
    parties = _party_order(ag, (p for _, c in trend for p in c))
    colours = _report_colours(report)
    width_in = width_px / _MAP_DPI
    fig = Figure(figsize=(width_in, 2.6), dpi=_MAP_DPI)
    ax = fig.add_axes((0.07, 0.2, 0.9, 0.68))
    x = np.arange(len(trend))
    bottom = np.zeros(len(trend))
    for p in parties:
        h = np.array([c.get(p, 0) for _, c in trend], dtype=float)
        ax.bar(x, h, bottom=bottom, color=colours[p], width=0.7, label=_name(ag, p), zorder=3)
        bottom += h
    for i, (d, _) in enumerate(trend):
        if d == report.day:
            ax.bar(i, bottom[i], width=0.82, fill=False, edgecolor="black", lw=1.0, zorder=4)
    ax.set_xticks(x)
    step = max(1, math.ceil(len(trend) / 14))
    ax.set_xticklabels(
        [d.strftime("%d %b") if i % step == 0 else "" for i, (d, _) in enumerate(trend)], fontsize=7
    )
    ax.tick_params(axis="y", labelsize=7)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("findings", fontsize=8)
    ax.set_ylim(0, max(float(bottom.max(initial=0.0)) * 1.12, 1.0))
    ax.grid(True, axis="y", color="#DDDDDD", lw=0.5, zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlim(-0.6, max(len(trend) - 0.4, 0.6))
    if parties:
        ax.legend(
            fontsize=7,
            ncols=min(len(parties), 6),
            loc="lower left",
            bbox_to_anchor=(0, 1.0),
            frameon=False,
            borderaxespad=0.2,
        )
    return png_bytes(fig, _MAP_DPI)
