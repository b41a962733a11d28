"""Read the candidate scenarios of an agreement folder (the ``scenarios:`` list of ``agreement.yaml``).

Each scenario names what it changes; everything else is the agreement's own::

    scenarios:
      - id: frozen                       # [A-Za-z0-9_.-]
        name: Front frozen as is
      - id: salient
        name: Withdrawal from the Pokrovsk salient
        description: ...
        line: {file: scenarios/line-salient.geojson}
        zones:                           # merged into the agreement's zone with the same id
          - {id: buffer, bands: {UA: [0, 20], RU: [0, 20]}}
        sectors: {file: scenarios/sectors-salient.geojson}
      - id: march
        name: The front as mapped in March
        territory: {file: scenarios/control-march.geojson, holder: RU}

A ``territory`` is a control-of-territory map (polygons, as ``agreement from-territory`` reads
them): with ``holder``, that party's ground (polygons without a ``party`` property, or naming it),
the other party holding the rest of the area of application; without, both parties' polygons named
in a ``party`` property (``party_field`` names another). The scenario's line is then where the two
grounds meet (unless it gives its own ``line``), and the planner's land figures are the polygons'.

A folder without ``scenarios:`` has one scenario, ``agreement``: the agreement as it is.
Like agreements, scenarios are read from the files by name (:func:`load_scenarios_files`), a folder
being one way to fill them (:func:`load_scenarios`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import shapely

from truceline.core.agreement import Agreement
from truceline.core.planner import Scenario, apply_scenario
from truceline.core.territory import contact_line, split_outline
from truceline.errors import AgreementError
from truceline.io.agreement_files import (
    _features,
    _Files,
    _geometry,
    _read_yaml,
    _sectors,
    _zones,
    files_of_folder,
    load_agreement_files,
)
from truceline.io.territory_files import control_map_groups

__all__ = ["load_scenarios", "load_scenarios_files"]

_YAML = "agreement.yaml"
_KEYS = {"id", "name", "description", "line", "zones", "sectors", "territory"}
_TERRITORY_KEYS = {"file", "holder", "party_field"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def load_scenarios(path: str | Path, ids: Sequence[str] | None = None) -> list[Scenario]:
    """The scenarios of an agreement folder (or of its ``agreement.yaml``'s folder).

    See :func:`load_scenarios_files`.
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    return load_scenarios_files(files_of_folder(folder), ids, origin=str(folder))


def load_scenarios_files(
    files: Mapping[str, bytes], ids: Sequence[str] | None = None, *, origin: str | None = None
) -> list[Scenario]:
    """The agreement's scenarios, in file order or in the order of ``ids``.

    ``files`` and ``origin`` as for :func:`truceline.io.agreement_files.load_agreement_files`.

    Raises
    ------
    AgreementError
        A scenario that cannot be built (the message names ``scenarios[i]``, the field and the fix),
        or an unknown id in ``ids``.
    """
    fs = _Files(files, origin)
    base = load_agreement_files(files, origin=origin)
    raw = _read_yaml(fs)
    items = raw.get("scenarios")
    if not items:
        out = [Scenario("agreement", base.name, base.description, base)]
    else:
        if not isinstance(items, list):
            raise AgreementError("`scenarios` must be a list", file=_YAML, field="scenarios")
        base_zones = {str(z.get("id")): z for z in (raw.get("zones") or []) if isinstance(z, dict)}
        out = [_scenario(fs, base, base_zones, item, i) for i, item in enumerate(items)]
        seen: set[str] = set()
        for i, sc in enumerate(out):
            if sc.id in seen:
                raise AgreementError(
                    f"scenario id {sc.id!r} is used twice; give each scenario its own id",
                    file=_YAML,
                    field=f"scenarios[{i}].id",
                )
            seen.add(sc.id)
    if not ids:
        return out
    by_id = {sc.id: sc for sc in out}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise AgreementError(
            f"no scenario {', '.join(map(repr, unknown))}; known: {', '.join(by_id)}",
            file=_YAML,
            field="scenarios",
        )
    return [by_id[i] for i in ids]


def _scenario(
    fs: _Files, base: Any, base_zones: dict[str, dict[str, Any]], item: Any, i: int
) -> Scenario:
    where = f"scenarios[{i}]"
    if not isinstance(item, dict):
        raise AgreementError("each scenario must be a mapping", file=_YAML, field=where)
    extra = sorted(set(item) - _KEYS)
    if extra:
        raise AgreementError(
            f"unknown key(s) {', '.join(extra)}; a scenario may set {', '.join(sorted(_KEYS))}",
            file=_YAML,
            field=where,
        )
    sid = str(item.get("id", ""))
    if not _ID.match(sid):
        raise AgreementError(
            f"scenario id {sid!r} is missing or invalid; use letters, digits, '-', '_' or '.'",
            file=_YAML,
            field=f"{where}.id",
        )
    line = None
    if item.get("line") is not None:
        line = _geometry(fs, item["line"], f"{where}.line", ("LineString", "MultiLineString"))
    territory = None
    notes: list[str] = []
    if item.get("territory") is not None:
        territory = _territory(fs, base, item["territory"], f"{where}.territory")
        what = f"land held and changing hands from the polygons of {item['territory']['file']}"
        if line is None:
            line, derived = _contact(base, territory, f"{where}.territory")
            what += f"; {derived}"
        notes.append(what)
    zones_raw = item.get("zones") or []
    if not isinstance(zones_raw, list):
        raise AgreementError("`zones` must be a list", file=_YAML, field=f"{where}.zones")
    merged = []
    for z in zones_raw:
        if not isinstance(z, dict):
            raise AgreementError("each zone must be a mapping", file=_YAML, field=f"{where}.zones")
        old = base_zones.get(str(z.get("id")))
        same_type = old is not None and z.get("type", old.get("type")) == old.get("type")
        merged.append({**old, **z} if old is not None and same_type else z)
    zones = _zones(fs, merged, f"{where}.zones")
    sectors = _sectors(fs, item["sectors"]) if item.get("sectors") else None
    try:
        ag = apply_scenario(base, line=line, zones=zones, sectors=sectors, sides=territory)
    except AgreementError as exc:
        msg = exc.message.removeprefix(f"field {exc.field}: ")
        raise AgreementError(
            msg, file=_YAML, field=f"{where}.{exc.field}" if exc.field else where
        ) from exc
    return Scenario(
        sid,
        str(item.get("name") or sid),
        str(item.get("description") or ""),
        ag,
        territory=territory,
        notes=tuple(notes),
    )


def _territory(fs: _Files, base: Agreement, ref: Any, where: str) -> dict[str, Any]:
    """The ground each party holds in a scenario's control map, cut to the area of application."""
    if not isinstance(ref, dict) or "file" not in ref:
        raise AgreementError(
            "give `territory: {file: PATH, holder: PARTY}` (holder: whose polygons the file holds)",
            file=_YAML,
            field=where,
        )
    extra = sorted(set(ref) - _TERRITORY_KEYS)
    if extra:
        raise AgreementError(
            f"unknown key(s) {', '.join(extra)}; use {', '.join(sorted(_TERRITORY_KEYS))}",
            file=_YAML,
            field=where,
        )
    name, field = str(ref["file"]), str(ref.get("party_field") or "party")
    groups = control_map_groups(_features(fs, name), fs.label(name), field)
    parties = base.party_ids
    stray = sorted(str(k) for k in groups if k is not None and k not in parties)
    if stray:
        raise AgreementError(
            f"the map names {', '.join(stray)}, not a party of the agreement ({', '.join(parties)})",
            file=fs.label(name),
            field=field,
        )
    area = base.compiled(0).area
    holder = ref.get("holder")
    if holder is not None:
        holder = str(holder)
        if holder not in parties:
            raise AgreementError(
                f"holder {holder!r} is not a party; use one of {', '.join(parties)}",
                file=_YAML,
                field=f"{where}.holder",
            )
        polys = [g for k, g in groups.items() if k in (holder, None)]
        if not polys:
            raise AgreementError(
                f"the map holds no polygons of {holder} (nor any without `{field}`)",
                file=fs.label(name),
                field=field,
            )
        try:
            held, rest = split_outline(shapely.union_all(polys), area)
        except AgreementError as exc:
            raise AgreementError(
                exc.message.replace("country's outline", "area of application"),
                file=fs.label(name),
                field=where,
            ) from exc
        other = parties[1] if holder == parties[0] else parties[0]
        return {holder: held, other: rest}
    if None in groups:
        raise AgreementError(
            f"some polygons have no `{field}` property; name whose ground the file holds "
            "(`holder: PARTY`) or set the property on every polygon",
            file=fs.label(name),
            field=field,
        )
    missing = [p for p in parties if p not in groups]
    if missing:
        raise AgreementError(
            f"no polygons of {', '.join(missing)} in the map; give `holder: PARTY` when it holds "
            "one party's ground only",
            file=fs.label(name),
            field=field,
        )
    return {p: shapely.intersection(groups[p], area) for p in parties}


def _contact(base: Agreement, territory: Mapping[str, Any], where: str) -> tuple[Any, str]:
    """The line where the two grounds meet, and a note saying so."""
    area = base.compiled(0).area
    try:
        c = contact_line(territory[base.left], territory[base.right], within=area)
    except AgreementError as exc:
        raise AgreementError(exc.message, file=_YAML, field=where) from exc
    parts = len(c.part_km)
    note = (
        f"the line is where the two grounds meet ({c.raw_length_km:,.1f} km of shared boundary"
        + (f", in {parts} separate parts" if parts > 1 else "")
        + "); the sides are the map's ground"
    )
    if c.others:
        note += (
            f"; {len(c.others)} enclave(s) ({sum(p.length_km for p in c.others):,.1f} km of "
            "shared boundary) are not part of the line, but their land counts in the figures"
        )
    return c.line, note
