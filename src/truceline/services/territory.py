"""Build an agreement folder from a published control-of-territory map (``agreement
from-territory``): the line of contact, the area of application, a buffer zone, checked by loading
the folder back as ``agreement check`` does."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path, PurePosixPath
from typing import Any

import shapely

from truceline.core.geodesy import geodesic_area_km2
from truceline.core.territory import contact_line, split_outline
from truceline.errors import AgreementError
from truceline.io.agreement_files import agreement_yaml, files_of_folder, load_agreement
from truceline.io.territory_files import read_control_map, read_outline, write_agreement_folder
from truceline.services.agreement import agreement_summary

__all__ = ["agreement_from_territory"]


def _party_id(name: str) -> str:
    pid = re.sub(r"[^A-Za-z0-9_.\-]+", "-", name).strip("-.")[:32]
    if not pid:
        raise AgreementError(f"cannot make a party id of {name!r}; name it in --parties", field="party")
    return pid


def _territories(
    control: Path,
    parties: tuple[str, str] | None,
    country: Path | None,
    holder: str | None,
    party_field: str,
) -> tuple[tuple[str, str], Any, Any]:
    """The two parties (left, right) and their territories (lon/lat)."""
    groups = read_control_map(control, party_field)
    named = [k for k in groups if k is not None]
    if country is not None:
        if parties is None:
            raise AgreementError(
                "with --country, name both parties: --parties LEFT,RIGHT (one of them holds the "
                "map's polygons, see --holder; the other the rest of the outline)",
                field="--parties",
            )
        stray = [p for p in named if p not in parties]
        if stray:
            raise AgreementError(
                f"the map names parties {', '.join(stray)} not in --parties {','.join(parties)}",
                file=str(control),
                field=party_field,
            )
        if holder is None:
            holder = named[0] if len(named) == 1 else parties[0]
        if holder not in parties:
            raise AgreementError(
                f"--holder {holder} is not one of --parties {','.join(parties)}", field="--holder"
            )
        polys = [g for k, g in groups.items() if k in (holder, None)]
        if not polys:
            raise AgreementError(
                f"the map holds no polygons of {holder} (nor any without `{party_field}`)",
                file=str(control),
                field=party_field,
            )
        held, rest = split_outline(shapely.union_all(polys), read_outline(country))
        other = parties[1] if holder == parties[0] else parties[0]
        by = {holder: held, other: rest}
        return parties, by[parties[0]], by[parties[1]]
    if None in groups:
        raise AgreementError(
            f"some features have no `{party_field}` property; set it on every polygon, name "
            "the property with --party-field, or give the country's outline with --country "
            "(the other party's ground is then the outline minus these polygons)",
            file=str(control),
            field=party_field,
        )
    if parties is None:
        if len(named) != 2:
            raise AgreementError(
                f"the map names {len(named)} parties ({', '.join(named) or 'none'}); pick two "
                "with --parties LEFT,RIGHT",
                file=str(control),
                field=party_field,
            )
        parties = (named[0], named[1])
    for p in parties:
        if p not in groups:
            raise AgreementError(
                f"no polygons of {p!r} in the map (it names {', '.join(named)})",
                file=str(control),
                field=party_field,
            )
    return parties, groups[parties[0]], groups[parties[1]]


#: What a template gives the derived agreement (its line, area and amendments are the map's).
_FROM_TEMPLATE = (
    "weapon_classes",
    "zones",
    "rules",
    "sectors",
    "observation_posts",
    "fusion",
)


def _template(folder: Path, pids: tuple[str, str]) -> tuple[dict[str, Any], dict[str, bytes], Any]:
    """What the template gives (yaml entries), the files they name, and its area (or None)."""
    ag = load_agreement(folder)  # a template must itself be valid
    files = files_of_folder(folder)
    raw = agreement_yaml(files, origin=str(folder))
    if set(ag.party_ids) != set(pids):
        raise AgreementError(
            f"the template's parties are {', '.join(ag.party_ids)}, the map's {', '.join(pids)}; "
            "name the map's parties as the template does with --parties",
            file=str(folder / "agreement.yaml"),
            field="parties",
        )
    taken = {k: raw[k] for k in _FROM_TEMPLATE if raw.get(k)}
    names = [str(z["file"]) for z in taken.get("zones", []) if isinstance(z, dict) and "file" in z]
    for k in ("sectors", "observation_posts"):
        if k in taken:
            ref = taken[k]
            names.append(str(ref["file"] if isinstance(ref, dict) else ref))
    copies = {}
    for n in names:
        key = PurePosixPath(n).as_posix()
        if key in files:
            copies[key] = files[key]
            if key.lower().endswith(".shp"):
                stem = key[: -len(".shp")]
                copies |= {k: v for k, v in files.items() if k.startswith(stem + ".")}
    taken["parties"] = raw["parties"]
    for k in ("name", "description"):
        if raw.get(k):
            taken[k] = raw[k]
    return taken, copies, ag.area


def agreement_from_territory(
    control: str | Path,
    out: str | Path,
    *,
    parties: tuple[str, str] | None = None,
    country: str | Path | None = None,
    holder: str | None = None,
    party_field: str = "party",
    buffer_km: tuple[float, float] | None = None,
    name: str | None = None,
    agreement_id: str | None = None,
    effective_from: dt.date,
    tolerance_m: float = 100.0,
    simplify_m: float = 50.0,
    area_km: float | None = None,
    template: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write an agreement folder derived from a control map and return what was built.

    The result: ``folder``, ``parties`` (left, right ids), ``contact`` (raw and simplified line
    lengths, the Hausdorff distance between them in metres, end snaps, overlap, the pieces left
    out), ``territory_km2`` (each party's ground inside the area, from the map) and ``summary``
    (:func:`~truceline.services.agreement.agreement_summary` of the folder loaded back).

    With ``template`` (an agreement folder whose parties are the map's), the agreement takes the
    template's weapon classes, zones, rules, sectors, observation posts, fusion settings, names
    and descriptions (its files copied), and the area of application is cut to the template's;
    the template's line and amendments are not carried over. ``buffer_km`` None: 15 km a side
    without a template, the template's zones only with one.
    """
    control, out = Path(control), Path(out)
    (left_name, right_name), left, right = _territories(
        control, parties, Path(country) if country else None, holder, party_field
    )
    lid, rid = _party_id(left_name), _party_id(right_name)
    if lid == rid:
        raise AgreementError("the two parties need different names", field="--parties")
    taken: dict[str, Any] = {}
    copies: dict[str, bytes] = {}
    within = None
    if template is not None:
        taken, copies, within = _template(Path(template), (lid, rid))
    if buffer_km is None:
        buffer_km = (0.0, 0.0) if template is not None else (15.0, 15.0)
    if any(km < 0 for km in buffer_km):
        raise AgreementError("--buffer-km must be >= 0 on each side", field="--buffer-km")
    c = contact_line(
        left, right, tolerance_m=tolerance_m, simplify_m=simplify_m, area_km=area_km, within=within
    )
    agreement_id = agreement_id or _party_id(out.resolve().name or "agreement")
    zones = []
    bands = {p: [0.0, km] for p, km in zip((lid, rid), buffer_km, strict=True) if km > 0}
    if bands:
        zones.append(
            {
                "id": "buffer-zone",
                "name": "Buffer zone either side of the line of contact",
                "type": "band",
                "bands": bands,
                "buffer": True,
            }
        )
    source = f"derived by `truceline agreement from-territory` from {control.name}"
    doc: dict[str, Any] = {
        "id": agreement_id,
        "name": name or f"Line of contact between {left_name} and {right_name}",
        "effective_from": effective_from.isoformat(),
        "description": (
            f"The line of contact where {left_name}'s and {right_name}'s territories meet, "
            f"{source} (gaps under {2 * tolerance_m:g} m closed, simplified to {simplify_m:g} m)."
        ),
        "parties": [{"id": lid, "name": left_name}, {"id": rid, "name": right_name}],
        # The sides are the parties' ground: a front in several pieces (or with enclaves) then has
        # each place on the side of the ground it lies in, not of the line continued at its ends.
        "line": {
            "file": "line.geojson",
            "left": lid,
            "right": rid,
            "sides": {"file": "territory.geojson"},
        },
        "area_of_application": {"file": "area.geojson"},
        "zones": zones,
        "rules": [],
    }
    if taken:
        names = {p["id"]: p.get("name", p["id"]) for p in taken.pop("parties")}
        doc["parties"] = [{"id": lid, "name": names[lid]}, {"id": rid, "name": names[rid]}]
        zones = [z for z in taken.pop("zones", []) if z.get("id") != "buffer-zone"] + zones
        doc |= taken | {"zones": zones}
        if name:
            doc["name"] = name
    layers: dict[str, list[tuple[Any, dict[str, Any]]]] = {
        "line.geojson": [(c.line, {"id": "line", "left": lid, "right": rid})],
        "area.geojson": [(c.area, {"id": "area"})],
        "territory.geojson": [(c.left, {"party": lid}), (c.right, {"party": rid})],
    }
    if c.others:
        layers["contact-left-out.geojson"] = [
            (p.geometry, {"kind": p.kind, "length_km": round(p.length_km, 3)}) for p in c.others
        ]
    if template is not None:
        source += f", with the zones, rules and sectors of the template {Path(template).name}"
    rules_note = "" if doc["rules"] else "Rules: none yet; add them (docs/agreement-format.md). "
    parts = len(c.part_km)
    header = (
        f"{source}.\n{rules_note}territory.geojson is the parties' ground as the map gives it, "
        "and the\nsides of the line (`line: {sides: ...}`)"
        + (f"; the line has {parts} parts, one per piece of front" if parts > 1 else "")
        + (
            ";\ncontact-left-out.geojson the enclaves' shared boundary (not in the line; the "
            "sides place them)."
            if c.others
            else "."
        )
    )
    write_agreement_folder(out, doc, layers, header=header, force=force, copies=copies)
    ag = load_agreement(out)
    territory = {
        lid: geodesic_area_km2(shapely.intersection(c.left, c.area)),
        rid: geodesic_area_km2(shapely.intersection(c.right, c.area)),
    }
    return {
        "folder": str(out),
        "parties": (lid, rid),
        "contact": {
            "raw_length_km": c.raw_length_km,
            "hausdorff_m": c.hausdorff_m,
            "snapped_m": c.snapped_m,
            "part_km": list(c.part_km),
            "overlap_km2": c.overlap_km2,
            "left_out": [
                {"kind": p.kind, "length_km": p.length_km, "area_km2": p.area_km2} for p in c.others
            ],
        },
        "territory_km2": territory,
        "summary": agreement_summary(ag),
    }
