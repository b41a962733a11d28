"""Adjudicating incident batches and formatting the results (shared by the CLI, API and web)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident, IncidentBatch
from truceline.core.rules import Classification, classify
from truceline.io.incidents_io import Reject

__all__ = ["Adjudication", "adjudicate", "classification_rows"]


@dataclass(frozen=True, slots=True)
class Adjudication:
    """Incidents that passed the agreement-level checks, their classification, and the rest."""

    incidents: list[Incident]
    rows: list[int]
    classification: Classification
    rejects: list[Reject]
    batch: IncidentBatch  # ``incidents`` as columns, as classified


def agreement_rejects(
    agreement: Agreement, incidents: Sequence[Incident], rows: Sequence[int]
) -> tuple[list[int], list[Reject]]:
    """Checks that need the agreement: known weapon classes, positions that look swapped.

    Returns the positions (into ``incidents``) that pass, and the rejects.
    """
    if not incidents:
        return [], []
    known = agreement.weapon_class_ids
    wcs = [i.weapon_class or "" for i in incidents]
    lon = np.array([i.lon for i in incidents])
    lat = np.array([i.lat for i in incidents])
    area = agreement.compiled(0).area
    inside = shapely.contains_xy(area, lon, lat)
    # a set lookup per record (the records are Python objects here already): cheaper than np.isin
    bad_wc = np.fromiter((w != "" and w not in known for w in wcs), dtype=bool, count=len(wcs))
    if inside.all():  # the usual case: nothing can look swapped
        swapped = np.zeros(len(incidents), dtype=bool)
    else:
        swapped_inside = shapely.contains_xy(area, lat, lon) & (np.abs(lat) <= 180) & (np.abs(lon) <= 90)
        swapped = ~inside & swapped_inside & ~bad_wc
    names = ", ".join(sorted(known)) or "none defined"
    rejects: list[Reject] = []
    for k in np.flatnonzero(bad_wc | swapped).tolist():  # messages for the bad records only
        inc = incidents[k]
        if bad_wc[k]:
            reason = (
                f"unknown weapon class {inc.weapon_class!r} for agreement {agreement.id}; "
                f"use one of: {names}"
            )
            rejects.append(Reject(rows[k], inc.id, "weapon_class", reason))
        else:
            reason = (
                f"position lon {inc.lon}, lat {inc.lat} is outside the area of application but "
                "inside it with lon and lat swapped; swap the columns"
            )
            rejects.append(Reject(rows[k], inc.id, "lon", reason))
    keep = np.flatnonzero(~(bad_wc | swapped)).tolist()
    return keep, rejects


def adjudicate(agreement: Agreement, incidents: Sequence[Incident], rows: Sequence[int]) -> Adjudication:
    """Validate against the agreement, then run the vectorised rule engine on the batch."""
    keep, rejects = agreement_rejects(agreement, incidents, rows)
    good = [incidents[k] for k in keep]
    good_rows = [rows[k] for k in keep]
    batch = IncidentBatch.from_incidents(good)
    return Adjudication(good, good_rows, classify(agreement, batch), rejects, batch)


CLASSIFY_COLUMNS = (
    "id",
    "side",
    "distance_km",
    "p_side",
    "zones",
    "sector",
    "in_force",
    "in_area",
    "findings",
    "responsible",
    "probability",
    "likelihood",
    "explanation",
)


def classification_rows(incidents: Sequence[Incident], cls: Classification) -> list[dict[str, object]]:
    """One output row per incident; several findings are joined with ';' (explanations with ' | ')."""
    f = cls.findings
    by_inc: dict[int, list[int]] = {}
    for j, i in enumerate(f.incident.tolist()):
        by_inc.setdefault(i, []).append(j)
    likelihood = f.likelihood
    out = []
    for i, inc in enumerate(incidents):
        js = by_inc.get(i, [])
        out.append(
            {
                "id": inc.id,
                "side": cls.party_side[i],
                "distance_km": round(float(cls.distance_km[i]), 4),
                "p_side": round(float(cls.p_side[i]), 4),
                "zones": cls.zones[i],
                "sector": cls.sector[i],
                "in_force": bool(cls.in_force[i]),
                "in_area": bool(cls.in_area[i]),
                "findings": ";".join(f.rule_id[j] for j in js),
                "responsible": ";".join(f.responsible[j] for j in js),
                "probability": ";".join(f"{f.probability[j]:.3f}" for j in js),
                "likelihood": ";".join(likelihood[j] for j in js),
                "explanation": " | ".join(f.explanation[j] for j in js),
            }
        )
    return out
